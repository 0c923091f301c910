"""The board's manifest: the public models that are not constructions of this package, and where
their local copies are expected (`adder board --models`, docs/board-models.toml).

Published weights and submission files are not ours and are never committed; the manifest only
names them, with the source a reader can fetch them from and the path, under a `--models-dir`
folder, where the board looks for the local copy. An entry names exactly one of:

* `submission`: an AdderBoard submission file (`build_model()` / `add()`), run as a black box;
* `checkpoint`: an adder checkpoint (.pt), e.g. published weights brought in by `adder import`;
  it is in the IR, so it is verified like a construction and proven;
* `published`: a published weights file in its author's format, with `import_as = "RECIPE"`, the
  recipe whose layout it holds (docs/import.md): the board reads it as `adder import` does, in
  memory, so it too is in the IR;
* `construction`: a registered construction, which the board checks anyway; the entry only adds
  what the manifest knows of it (a published counterexample, a note).

`published_counterexample = [a, b]` records a pair someone published as wrong; the board re-runs
that one pair and shows what the model prints, in its own column, apart from the suites (which
never hold it). `prove_timeout = SECONDS` gives a model in the IR its own search budget instead of
the board's (trained models' proofs take minutes: the budget is part of the verdict, so it is
printed with it). The file is TOML; every problem is one line naming the entry and the key.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from ..compiler.digits import MAX_ADDEND
from ..compiler.errors import AdderError

#: The kinds of model the board tabulates.
KINDS = ("hand-coded", "trained")
#: What an entry can point at; each entry names exactly one.
LOCATIONS = ("submission", "checkpoint", "published", "construction")
REQUIRED = ("name",)
#: The longest per-model search budget a manifest may ask for (a day).
MAX_PROVE_TIMEOUT = 86_400
#: Keys every entry but a `construction` one must give (a construction has them in the registry).
DESCRIBED = ("author", "kind", "source")
OPTIONAL = ("published_counterexample", "note", "import_as", "prove_timeout")
KNOWN = set(REQUIRED + DESCRIBED + LOCATIONS + OPTIONAL)


class ManifestError(AdderError):
    """A manifest that cannot be read or has a wrong entry."""


@dataclass(frozen=True)
class ManifestModel:
    """One entry: a model's name, who made it, its kind, where it is published, and which of
    LOCATIONS it is (`location`) with its value (`where`: a path under the models folder, or a
    construction name)."""

    name: str
    location: str
    where: str
    author: str | None = None
    kind: str | None = None
    source: str | None = None
    published_counterexample: tuple[int, int] | None = None
    note: str = ""
    import_as: str | None = None  # the recipe a `published` file is read into
    prove_timeout: float | None = None  # this model's search budget, where the board's is not enough

    def local_path(self, models_dir: Path) -> Path:
        """Where the local copy of a submission or checkpoint is expected."""
        return models_dir / self.where


def read_manifest(path: Path) -> list[ManifestModel]:
    """The entries of the manifest at `path` (`[[model]]` tables), checked; a ManifestError otherwise."""
    if not path.is_file():
        raise ManifestError(f"no manifest at {path}; pass --models with a TOML file of [[model]] entries")
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ManifestError(f"{path} is not valid TOML: {e}") from None
    extra = set(data) - {"model"}
    if extra:
        raise ManifestError(f"{path}: unknown top-level key(s) {', '.join(sorted(extra))}; the manifest holds "
                            "[[model]] entries only")
    entries = data.get("model", [])
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise ManifestError(f"{path}: 'model' must be an array of tables ([[model]] entries)")
    models = [_entry(path, i, e) for i, e in enumerate(entries, 1)]
    seen: set[str] = set()
    for m in models:
        if m.name in seen:
            raise ManifestError(f"{path}: two entries are named {m.name!r}; names must be unique")
        seen.add(m.name)
    return models


def _entry(path: Path, i: int, e: dict) -> ManifestModel:
    where = f"{path}: entry {i}" + (f" ({e['name']})" if isinstance(e.get("name"), str) else "")

    def fail(problem: str) -> ManifestError:
        return ManifestError(f"{where}: {problem}")

    unknown = set(e) - KNOWN
    if unknown:
        raise fail(f"unknown key(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(KNOWN))}")
    located = [k for k in LOCATIONS if k in e]
    if len(located) != 1:
        raise fail(f"give exactly one of {', '.join(LOCATIONS)} (got {', '.join(located) or 'none'})")
    location = located[0]
    required = REQUIRED + (() if location == "construction" else DESCRIBED)
    for key in (*required, location, "author", "kind", "source", "note", "import_as"):
        if key in e and not (isinstance(e[key], str) and e[key].strip()):
            raise fail(f"{key} must be a non-empty string")
    missing = [k for k in required if k not in e]
    if missing:
        raise fail(f"missing {', '.join(missing)}")
    if "kind" in e and e["kind"] not in KINDS:
        raise fail(f"kind must be one of {', '.join(KINDS)}, got {e['kind']!r}")
    if location != "construction" and (Path(e[location]).is_absolute() or ".." in Path(e[location]).parts):
        raise fail(f"{location} must be a path inside the models folder (relative, no '..'), got {e[location]!r}")
    if (location == "published") != ("import_as" in e):
        raise fail("import_as (the recipe whose layout the file holds, as `adder import --as` takes it) goes with "
                   "a published entry, and a published entry needs it")
    budget = e.get("prove_timeout")
    if budget is not None:
        if location == "submission":
            raise fail("prove_timeout is for models in the IR; a submission file is a black box and is not proven")
        if isinstance(budget, bool) or not isinstance(budget, (int, float)) or not 0 < budget <= MAX_PROVE_TIMEOUT:
            raise fail(f"prove_timeout must be a number of seconds in (0, {MAX_PROVE_TIMEOUT}], got {budget!r}")
        budget = float(budget)
    pair = e.get("published_counterexample")
    if pair is not None:
        if not (isinstance(pair, list) and len(pair) == 2
                and all(isinstance(x, int) and not isinstance(x, bool) and 0 <= x <= MAX_ADDEND for x in pair)):
            raise fail(f"published_counterexample must be [a, b], two integers in 0..{MAX_ADDEND}, got {pair!r}")
        pair = (pair[0], pair[1])
    return ManifestModel(name=e["name"], location=location, where=e[location], author=e.get("author"),
                         kind=e.get("kind"), source=e.get("source"), published_counterexample=pair,
                         note=e.get("note", ""), import_as=e.get("import_as"), prove_timeout=budget)
