"""The boards: the table of registered constructions (`adder list`, docs/constructions.md) and the
verdict of every public model (`adder board`, docs/board.md).

`list_rows()` gives each construction's claimed and counted parameters; `board_rows()` adds
its architecture, the official 10,010 cases run on it and, with a search budget, the
prover's verdict (the Markdown table of docs/constructions.md). Rows are strings, ready to
print, and come one construction at a time, as each is checked.

`board_entries()` and `model_row()` are `adder board`: every construction, and every model of a
manifest (`verify/manifest.py`) whose local copy is present, through the official cases, the
adversarial suites and, for a model in the IR, the prover. Published weights in their authors'
formats are read by a loader the caller passes (`adder import`'s, which lives in train/, a layer
this one does not import). A `ModelRow` is data (counts,
counterexample, verdict); `ModelRow.cells()` is its line of the table.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from ...compiler import checkpoint
from ..submissions.blackbox import DEFAULT_TIMEOUT, BlackBox, check_submission
from ...compiler.decode import add
from ...compiler.errors import AdderError
from ...compiler.ledger import ledger
from ...compiler.module import AdderModel, compile_spec
from ...compiler.spec import ModelSpec
from ...constructions import REGISTRY, Entry, build_spec, get
from ..api import verify_model, verify_submission
from ..cases import ADVERSARIAL, ADVERSARIAL_K, DEFAULT_SUITE, SuiteOptions
from ..manifest import ManifestModel
from ..report import Report
from ..runner import SuiteResult, run_suite
from ..verdicts import Verdict

#: The suite the board reports (AdderBoard's qualification cases).
BOARD_SUITE = DEFAULT_SUITE
LIST_COLUMNS = ["name", "author", "claimed", "AdderBoard", "strict", "dtype", "from"]
BOARD_COLUMNS = ["name", "author", "source", "layers / d_model / heads", "positions", "dtype", "AdderBoard params",
                 "strict params", "official 10,010", "smallest margin (official)"]
PROOF_COLUMN = "proof"


def compiled_constructions() -> Iterator[tuple[Entry, ModelSpec, AdderModel]]:
    """Every registered construction, by name: its entry, spec and compiled model."""
    for name in sorted(REGISTRY):
        spec = build_spec(name)
        yield REGISTRY[name], spec, compile_spec(spec)


def list_rows() -> Iterator[list[str]]:
    """One row of LIST_COLUMNS per construction ("from": adder itself or the plugin's distribution)."""
    for e, spec, model in compiled_constructions():
        led = ledger(model)
        yield [e.name, e.author, str(e.claimed_params), str(led.adderboard), str(led.strict), spec.dtype, e.origin]


def board_columns(prove_timeout: float = 0.0) -> list[str]:
    """The columns of `board_rows(prove_timeout)`."""
    return BOARD_COLUMNS + ([PROOF_COLUMN] if prove_timeout > 0 else [])


def board_rows(prove_timeout: float = 0.0) -> Iterator[list[str]]:
    """One row of `board_columns(prove_timeout)` per construction; the official suite runs on each, and the
    prover with `prove_timeout` seconds of search when it is positive."""
    for e, spec, model in compiled_constructions():
        led, r, m = ledger(model), run_suite(model, BOARD_SUITE), spec.meta
        row = [e.name, e.author, f"[link]({e.source})", f"{m.get('layers', '?')} / {spec.d_model} / {m.get('heads', '?')}",
               str(m.get("positions", "?")), spec.dtype, f"{led.adderboard} (claimed {e.claimed_params})",
               str(led.strict), passed_of(r), f"{min(r.worst_margin):.3g}"]
        if prove_timeout > 0:
            row.append(prove_model(model, e.name, prove_timeout)["verdict"])
        yield row


def passed_of(result: SuiteResult) -> str:
    """'10,001/10,010': a suite's passed cases of all."""
    return f"{result.passed:,}/{result.cases:,}"


def prove_model(model: AdderModel, name: str, timeout: float) -> dict:
    """The prover's verdict on `model` with `timeout` seconds of search: verdict, counterexample, summary, why it
    is not decided (`reason`, and whether the budget ran out), seconds."""
    from ..prove import prove

    return proof_cell_data(prove(model, name, timeout=timeout, sampled=False))


def proof_cell_data(report) -> dict:
    """What a board row keeps of a proof report (`prove_model`)."""
    return {"verdict": report.verdict, "counterexample": report.counterexample, "summary": report.summary(),
            "reason": report.reason, "budget_ran_out": report.budget_ran_out, "seconds": round(report.seconds, 1)}


# ----------------------------------------------------------------------------- adder board
#: The board's kinds of row: a model in the IR (construction or checkpoint) or a black-box submission.
IN_IR, BLACK_BOX = "in the IR", "black box"
#: What became of a row's model.
CHECKED, NOT_OBTAINED, COULD_NOT_RUN = "checked", "not obtained", "could not run"
MODEL_COLUMNS = ["name", "author", "kind", "source", "AdderBoard params", "official 10,010", "adversarial",
                 "published counterexample", "proof", "reproduce"]
#: Suites a black-box submission gets instead of --adversarial (which needs a compiled model), and their
#: default options: a submission answers one call at a time (tens to hundreds of calls a second).
BLACK_BOX_SUITES = ("chains", "window")
BLACK_BOX_OPTIONS = SuiteOptions(k=1, window=1)
#: The Hypothesis examples of `adder verify --adversarial` (its --examples default).
SEARCH_EXAMPLES = 2000


@dataclass(frozen=True)
class BoardSettings:
    """How `adder board` checks each model: the suites' `seed`, the options of the compiled models'
    adversarial suites (`options`, `examples` of search) and of the black boxes' (`black_box`),
    the prover's budget (s), and a submission's call timeout and sandbox."""

    seed: int = 0
    options: SuiteOptions = SuiteOptions(k=ADVERSARIAL_K)
    examples: int = SEARCH_EXAMPLES
    black_box: SuiteOptions = BLACK_BOX_OPTIONS
    prove_timeout: float = 60.0
    call_timeout: float = DEFAULT_TIMEOUT
    sandbox: bool = False

    @classmethod
    def from_json(cls, d: dict) -> "BoardSettings":
        """The settings `to_json` wrote (a previous run's, to render its rows again)."""
        return cls(seed=d["seed"], options=SuiteOptions(**d["adversarial_options"]), examples=d["examples"],
                   black_box=SuiteOptions(**d["black_box_options"]), prove_timeout=d["prove_timeout"],
                   call_timeout=d["call_timeout"], sandbox=d["sandbox"])

    def to_json(self) -> dict:
        return {"seed": self.seed, "adversarial_options": self.options.to_json(), "examples": self.examples,
                "black_box_suites": [BOARD_SUITE, *BLACK_BOX_SUITES], "black_box_options": self.black_box.to_json(),
                "prove_timeout": self.prove_timeout, "call_timeout": self.call_timeout, "sandbox": self.sandbox}


@dataclass(frozen=True)
class BoardEntry:
    """One model the board will check: its description, what `target` to run (a construction name or
    a local path), whether the local copy is `present`, and what the manifest adds."""

    name: str
    author: str
    kind: str
    source: str
    location: str  # "construction", "checkpoint", "published" or "submission"
    target: str
    shown_target: str  # the target as the reproduce command writes it (MODELS/... for local copies)
    present: bool = True
    published_counterexample: tuple[int, int] | None = None
    note: str = ""
    import_as: str | None = None  # a published file's recipe (`adder import --as`)
    prove_timeout: float | None = None  # its own search budget; None: the board's

    def budget(self, settings: "BoardSettings") -> float:
        """The prover's search budget for this model."""
        return self.prove_timeout or settings.prove_timeout


@dataclass
class ModelRow:
    """What the board found for one model (data; `cells()` renders it)."""

    name: str
    author: str
    kind: str
    source: str
    status: str = CHECKED
    box: str = IN_IR
    params: int | None = None
    params_claimed: bool = False  # the submission's metadata, not a count
    official_passed: int | None = None
    official_cases: int | None = None
    adversarial_cases: int | None = None
    adversarial_failed: int | None = None
    counterexample: dict | None = None  # {"a", "b", "printed", "expected", "found_by"}
    published: dict | None = None  # {"a", "b", "printed", "expected"}
    proof: dict | None = None  # prove_model's dict; None for a black box
    command: str = ""
    note: str = ""
    seconds: float = 0.0
    seed: int = 0
    problem: str = ""  # why it could not run
    prove_timeout: float | None = None  # the search budget of this row's proof, where it is not the board's

    def to_json(self) -> dict:
        return asdict(self)

    def cells(self, prove_timeout: float) -> list[str]:
        """The row's cells, in MODEL_COLUMNS order (`prove_timeout`: the board's budget, unless the row has its own)."""
        head = [self.name, self.author, self.kind, f"[link]({self.source})" if self.source else ""]
        if self.status != CHECKED:
            why = self.status + (f": {self.problem}" if self.problem else "")
            return head + ["", "", why, "", "", f"`{self.command}`"]
        params = "?" if self.params is None else f"{self.params}" + (" (claimed)" if self.params_claimed else "")
        official = f"{self.official_passed:,}/{self.official_cases:,} ({100 * self.official_passed / self.official_cases:.2f}%)"
        return head + [params, official, self.adversarial_cell(), self.published_cell(),
                       self.proof_cell(prove_timeout), f"`{self.command}`"]

    def adversarial_cell(self) -> str:
        if not self.adversarial_failed:
            return f"pass: no counterexample in {self.adversarial_cases:,} cases"
        c = self.counterexample
        first = f"{show_case(c)} ({c['found_by']})" if c else "(not kept)"
        return f"FAIL: {self.adversarial_failed:,} wrong of {self.adversarial_cases:,}; first: {first}"

    def published_cell(self) -> str:
        if self.published is None:
            return ""
        p = self.published
        return show_case(p) + (" (right)" if p["printed"] == p["expected"] else " (wrong)")

    def proof_cell(self, prove_timeout: float) -> str:
        prove_timeout = self.prove_timeout or prove_timeout
        if self.box == BLACK_BOX:
            return "not in the IR (black box)"
        p = self.proof
        if p["verdict"] == Verdict.REFUTED and p["counterexample"]:
            return f"refuted: {show_case(p['counterexample'])} ({p['seconds']:g} s)"
        if p["verdict"] in (Verdict.UNDECIDED, Verdict.REAL_ONLY):
            if p.get("reason") and not p.get("budget_ran_out"):  # an obstruction, not the budget: name it
                return f"{p['verdict']} ({p['seconds']:g} s): {obstruction(p['reason'])}"
            return f"{p['verdict']} at {prove_timeout:g} s" + (" (the budget ran out)" if p.get("budget_ran_out") else "")
        if p["verdict"] == Verdict.CONDITIONAL:  # rests on a sampled library check (float64): not the word proven
            return f"conditional: library functions sampled, not enumerated ({p['seconds']:g} s)"
        return f"{p['verdict']} ({p['seconds']:g} s; search budget {prove_timeout:g} s)"


def obstruction(reason: str) -> str:
    """The first clause of a prover's reason, short enough for a table cell ("not provable yet: attn0's input
    norm is a layer norm, which has no bound rule yet")."""
    return reason.split(";")[0].split(" (")[0]


def show_case(c: dict) -> str:
    """'a + b -> printed (expected s)'."""
    return f"{c['a']} + {c['b']} -> {c['printed']} (expected {c['expected']})"


def board_entries(manifest: list[ManifestModel], models_dir: Path, shown_dir: str = "MODELS",
                  only: list[str] | None = None) -> list[BoardEntry]:
    """What the board checks, in order: the manifest's models, each local copy looked for under `models_dir`
    (shown in the reproduce commands as `shown_dir`), then every registered construction (with what the
    manifest adds to it). `only` keeps the named ones. Unknown names are errors."""
    about = {m.where: m for m in manifest if m.location == "construction"}
    for name in about:
        get(name)  # an unknown construction: one line with a did-you-mean
    entries = []
    for m in manifest:
        if m.location == "construction":
            continue
        path = m.local_path(models_dir)
        entries.append(BoardEntry(name=m.name, author=m.author, kind=m.kind, source=m.source, location=m.location,
                                  target=str(path), shown_target=f"{shown_dir}/{m.where}", present=path.is_file(),
                                  published_counterexample=m.published_counterexample, note=m.note,
                                  import_as=m.import_as, prove_timeout=m.prove_timeout))
    for name in sorted(REGISTRY):
        e, m = REGISTRY[name], about.get(name)
        entries.append(BoardEntry(name=name, author=(m and m.author) or e.author, kind=(m and m.kind) or "hand-coded",
                                  source=(m and m.source) or e.source, location="construction", target=name,
                                  shown_target=name, published_counterexample=m and m.published_counterexample,
                                  note=(m and m.note) or "", prove_timeout=m and m.prove_timeout))
    if only:
        names = {e.name for e in entries}
        unknown = [n for n in only if n not in names]
        if unknown:
            raise AdderError(f"--only {', '.join(unknown)}: not on the board; choose from `adder list` and the "
                             "manifest's names")
        entries = [e for e in entries if e.name in only]
    return entries


def reproduce_command(entry: BoardEntry, settings: BoardSettings) -> str:
    """The commands that redo `entry`'s row by hand (`adder verify`, and `adder prove` for a model in the IR)."""
    seed = f" --seed {settings.seed}"
    if entry.location == "submission":
        o = settings.black_box
        suites = "".join(f" --suite {s}" for s in (BOARD_SUITE, *BLACK_BOX_SUITES))
        sandbox = " --sandbox" if settings.sandbox else ""
        timeout = f" --timeout {settings.call_timeout:g}" if settings.call_timeout != DEFAULT_TIMEOUT else ""
        return f"adder verify {entry.shown_target}{suites} --k {o.k} --window {o.window}{seed}{timeout}{sandbox}"
    target, imported = entry.shown_target, ""
    if entry.location == "published":  # read into the IR first, as the board does in memory
        target = f"{entry.name}.pt"
        imported = f"adder import {entry.shown_target} --as {entry.import_as} -o {target}; "
    o = settings.options
    given = "".join(f" --{key} {value}" for key, value, default in (
        ("k", o.k, ADVERSARIAL_K), ("window", o.window, SuiteOptions.window), ("examples", settings.examples,
                                                                                 SEARCH_EXAMPLES)) if value != default)
    return (f"{imported}adder verify {target} --suite {BOARD_SUITE} --adversarial{given}{seed}; "
            f"adder prove {target} --timeout {entry.budget(settings):g}")


#: Reads a published weights file into the IR: (path, recipe) -> model (`adder import`'s reader).
PublishedLoader = Callable[[Path, str], AdderModel]


def model_row(entry: BoardEntry, settings: BoardSettings, load_published: PublishedLoader | None = None) -> ModelRow:
    """Check one model (see the module docstring); a model that cannot be had or run is a row that says so.
    A `published` entry needs `load_published`."""
    t0 = time.perf_counter()
    row = ModelRow(name=entry.name, author=entry.author, kind=entry.kind, source=entry.source, note=entry.note,
                   command=reproduce_command(entry, settings), seed=settings.seed,
                   box=BLACK_BOX if entry.location == "submission" else IN_IR, prove_timeout=entry.prove_timeout)
    if not entry.present:
        row.status, row.problem = NOT_OBTAINED, f"no local copy at {entry.shown_target}"
        return row
    try:
        if row.box == BLACK_BOX:
            _check_submission(entry, settings, row)
        else:
            _check_compiled(_compiled(entry, load_published), entry, settings, row)
    except AdderError as e:
        row.status, row.problem = COULD_NOT_RUN, str(e).splitlines()[0].replace(entry.target, entry.shown_target)
    row.seconds = round(time.perf_counter() - t0, 1)
    return row


def _compiled(entry: BoardEntry, load_published: PublishedLoader | None) -> AdderModel:
    if entry.location == "checkpoint":
        return checkpoint.load(Path(entry.target))
    if entry.location == "published":
        if load_published is None:
            raise AdderError(f"{entry.name} is published weights: pass a loader (`adder board` uses adder import's)")
        return load_published(Path(entry.target), entry.import_as)
    return compile_spec(build_spec(entry.target))


def _check_compiled(model: AdderModel, entry: BoardEntry, settings: BoardSettings, row: ModelRow) -> None:
    row.params = ledger(model).adderboard
    report = verify_model(model, entry.target, suites=[BOARD_SUITE, *ADVERSARIAL], seed=settings.seed,
                          options=settings.options, search_examples=settings.examples)
    _fold(report, row)
    if entry.published_counterexample:
        a, b = entry.published_counterexample
        row.published = {"a": a, "b": b, "printed": add(model, a, b)[0], "expected": a + b}
    row.proof = prove_model(model, entry.name, entry.budget(settings))


def _check_submission(entry: BoardEntry, settings: BoardSettings, row: ModelRow) -> None:
    path = Path(entry.target)
    check_submission(path)
    report = verify_submission(path, suites=[BOARD_SUITE, *BLACK_BOX_SUITES], seed=settings.seed,
                               options=settings.black_box, timeout=settings.call_timeout, sandbox=settings.sandbox)
    claimed = (report.audit or {}).get("metadata params")
    row.params, row.params_claimed = (claimed if isinstance(claimed, int) else None), True
    _fold(report, row)
    if entry.published_counterexample:
        a, b = entry.published_counterexample
        with BlackBox(path, timeout=settings.call_timeout, sandbox=settings.sandbox, workers=1) as box:
            printed = box.run([(a, b)])[0].shown()
        row.published = {"a": a, "b": b, "printed": printed, "expected": a + b}


def _fold(report: Report, row: ModelRow) -> None:
    """The official and adversarial counts of `report`, and its first adversarial counterexample: the
    first failing case of the first failing suite in the order they ran, then the search's."""
    official = next(s for s in report.suites if s.suite == BOARD_SUITE)
    row.official_passed, row.official_cases = official.passed, official.cases
    adversarial = [s for s in report.suites if s.suite != BOARD_SUITE]
    search = report.search
    row.adversarial_cases = sum(s.cases for s in adversarial) + (search.examples if search else 0)
    row.adversarial_failed = sum(s.failed for s in adversarial) + (1 if search and search.counterexample else 0)
    for s in adversarial:
        if s.failures:
            a, b = s.failures[0]
            row.counterexample = {"a": a, "b": b, "printed": s.outputs.get(f"{a}+{b}", "?"), "expected": a + b,
                                  "found_by": f"{s.suite} suite"}
            return
    if search and search.counterexample:
        a, b = search.counterexample
        row.counterexample = {"a": a, "b": b, "printed": search.output, "expected": a + b, "found_by": "search"}


def board_headline(rows: list[ModelRow], kind: str | None = None) -> dict[str, int]:
    """How many rows (of `kind`, or all) came to what: proven / refuted / undecided (in the IR),
    correct / wrong on every case run (black boxes), not obtained, could not run."""
    counts: dict[str, int] = {}
    for r in rows:
        if kind is not None and r.kind != kind:
            continue
        if r.status != CHECKED:
            key = r.status
        elif r.box == IN_IR:
            key = r.proof["verdict"]
        else:
            wrong = r.adversarial_failed or r.official_passed != r.official_cases
            key = "black box, wrong on some case" if wrong else "black box, no wrong case found"
        counts[key] = counts.get(key, 0) + 1
    return counts
