"""`adder board`: a verdict for every public model (docs/board.md): official cases, adversarial
suites, and the prover where the model is in the IR; black-box submission files for the rest.

Everything a user can get wrong (the manifest, the output file, the options) is refused in one
line before the first model is checked. Each row is printed on stderr as it completes (a run of
the whole board takes an hour or more); the table goes to stdout or to `-o`.
"""

from __future__ import annotations

import platform
import time
from pathlib import Path
from typing import Optional

import typer

from ..compiler.errors import AdderError
from ..compiler.files import write_whole
from ..compiler.limits import check_count, check_finite, check_seed, check_threads
from .common import console, err_console, json_text, table, writable
from .verify import MAX_EXAMPLES

#: The order of kinds on the board.
KIND_ORDER = ("hand-coded", "trained")
#: How the reproduce commands and the header name the --models-dir folder.
MODELS_DIR_SHOWN = "MODELS"


def run(models: Optional[Path] = typer.Option(None, "--models", help="Manifest (TOML) of the public models that are "
                                                                     "not constructions, e.g. docs/board-models.toml."),
        models_dir: Path = typer.Option(Path("."), "--models-dir", help="Folder holding the manifest models' local "
                                                                        "copies (paths in the manifest are under it)."),
        only: list[str] = typer.Option([], "--only", help="Check only this model (repeatable)."),
        seed: int = typer.Option(0, help="Seed of every generated case and of the search (recorded)."),
        k: int = typer.Option(16, help="Compiled models: instances per carry pattern and chain (--adversarial's 16)."),
        window: int = typer.Option(2, help="Compiled models: window width of the window suite."),
        examples: int = typer.Option(2000, help="Compiled models: Hypothesis examples of the search."),
        black_box_k: int = typer.Option(1, help="Submission files: instances per chain (one call per case)."),
        black_box_window: int = typer.Option(1, help="Submission files: window width of the window suite."),
        prove_timeout: float = typer.Option(60.0, help="The prover's search budget per model (seconds)."),
        timeout: float = typer.Option(10.0, help="Submission files: seconds each call of add() may take."),
        sandbox: bool = typer.Option(False, "--sandbox", help="Submission files: run them with resource limits."),
        threads: int = typer.Option(1, help="CPU threads for torch."),
        markdown: bool = typer.Option(False, "--markdown", help="Write the Markdown document of docs/board.md."),
        json_out: bool = typer.Option(False, "--json", help="Write the rows and settings as JSON."),
        out: Optional[Path] = typer.Option(None, "-o", "--out", help="Write the document here instead of stdout."),
        force: bool = typer.Option(False, "--force", help="Overwrite an existing -o file."),
        rows_from: Optional[Path] = typer.Option(None, "--rows", help="Check nothing: render the rows of a run that "
                                                                      "`adder board --json` wrote.")):
    """A verdict for every public model: official accuracy, adversarial suites, proof (docs/board.md).

    Submission files named by the manifest run as black boxes, their code with your user's rights (--sandbox
    confines it).
    """
    import torch

    from ..verify.submissions.blackbox import check_timeout
    from ..verify.board import BoardSettings, board_entries, model_row
    from ..verify.cases import SuiteOptions
    from ..verify.manifest import read_manifest

    if markdown and json_out:
        raise AdderError("--markdown and --json are two formats of the same rows; choose one")
    check_seed(seed)
    check_threads(threads)
    check_count(examples, "--examples", high=MAX_EXAMPLES)
    check_finite(prove_timeout, "--prove-timeout", 0, low_open=True)
    settings = BoardSettings(seed=seed, options=SuiteOptions(k=k, window=window), examples=examples,
                             black_box=SuiteOptions(k=black_box_k, window=black_box_window),
                             prove_timeout=prove_timeout, call_timeout=check_timeout(timeout), sandbox=sandbox)
    if out is not None:
        writable(out, force)
    if rows_from is not None:
        _render(_read_run(rows_from), markdown, json_out, out)
        return
    manifest = read_manifest(models) if models is not None else []
    if models is not None and not models_dir.is_dir():
        raise AdderError(f"--models-dir {models_dir} is not a folder")
    entries = board_entries(manifest, models_dir, MODELS_DIR_SHOWN, only)
    torch.set_num_threads(threads)
    run = {"command": _command(settings, models, only, json_out), "machine": _machine(), "settings": settings.to_json(),
           "manifest": str(models) if models else None, "models": len(entries), "seconds": 0.0, "rows": []}
    t0 = time.perf_counter()
    for i, entry in enumerate(entries, 1):
        err_console.print(f"[{i}/{len(entries)}] {entry.name}: checking", markup=False, highlight=False)
        row = model_row(entry, settings)
        run["rows"].append(row.to_json())
        run["seconds"] = round(time.perf_counter() - t0, 1)
        err_console.print(f"[{i}/{len(entries)}] {entry.name}: " + _progress_line(row, settings), markup=False,
                          highlight=False, soft_wrap=True)
        if out is not None and i < len(entries):  # a stopped run keeps the rows it checked (marked partial)
            _write_text(out, _document(run, markdown, json_out))
    _render(run, markdown, json_out, out)


def _render(run: dict, markdown: bool, json_out: bool, out: Path | None) -> None:
    """A run's rows: the document (to `out`, or stdout with --markdown / --json), or a table on the terminal."""
    from ..verify.board import MODEL_COLUMNS

    if out is not None:
        _write_text(out, _document(run, markdown, json_out))
        console.print(f"wrote {out}", markup=False, highlight=False)
    elif markdown or json_out:
        console.print(_document(run, markdown, json_out), markup=False, highlight=False, soft_wrap=True, end="")
    else:
        timeout = run["settings"]["prove_timeout"]
        console.print(table("the board (adder board --markdown for docs/board.md)", MODEL_COLUMNS,
                            (r.cells(timeout) for r in _rows(run))))


def _document(run: dict, markdown: bool, json_out: bool) -> str:
    """The Markdown document of docs/board.md, or (--json) the run as JSON: command, settings, rows."""
    return json_text(run) + "\n" if json_out else _markdown_document(run)


def _rows(run: dict) -> list:
    from ..verify.board import ModelRow

    return sorted((ModelRow(**r) for r in run["rows"]), key=_board_order)


def _read_run(path: Path) -> dict:
    """A run that `adder board --json` wrote, checked enough to render."""
    import json

    from ..verify.board import BoardSettings, ModelRow

    try:
        run = json.loads(path.read_text())
        BoardSettings.from_json(run["settings"])
        for r in run["rows"]:
            ModelRow(**r)
        run["command"], run["models"], run["seconds"]  # noqa: B018 (present)
    except FileNotFoundError:
        raise AdderError(f"--rows {path}: no such file") from None
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise AdderError(f"--rows {path} is not a run written by `adder board --json` ({type(e).__name__}: {e})") from None
    return run


def _progress_line(row, settings) -> str:
    cells = row.cells(settings.prove_timeout)
    if row.status != "checked":
        return cells[6]
    return f"{cells[5]} official; adversarial {cells[6]}; proof {cells[8]} ({row.seconds:g} s)"


def _board_order(row) -> tuple:
    kind = KIND_ORDER.index(row.kind) if row.kind in KIND_ORDER else len(KIND_ORDER)
    return kind, row.params is None, row.params or 0, row.name.lower()


def _headline(rows) -> str:
    from ..verify.board import board_headline

    counts = board_headline(rows)
    return "; ".join(f"{n} {what}" for what, n in counts.items())


def _command(settings, models: Path | None, only: list[str], json_out: bool) -> str:
    o, b = settings.options, settings.black_box
    parts = ["adder board"] + ([f"--models {models}", f"--models-dir {MODELS_DIR_SHOWN}"] if models else [])
    parts += [f"--only {n}" for n in only]
    parts += [f"--seed {settings.seed}", f"--k {o.k}", f"--window {o.window}", f"--examples {settings.examples}",
              f"--black-box-k {b.k}", f"--black-box-window {b.window}", f"--prove-timeout {settings.prove_timeout:g}",
              "--json" if json_out else "--markdown"]
    return " ".join(parts)


def _markdown_document(run: dict) -> str:
    from ..verify.api import suite_count
    from ..verify.board import BLACK_BOX_SUITES, MODEL_COLUMNS
    from ..verify.cases import ADVERSARIAL

    from ..verify.board import BoardSettings

    settings, rows = BoardSettings.from_json(run["settings"]), _rows(run)
    o, b = settings.options, settings.black_box
    compiled_cases = suite_count(list(ADVERSARIAL), o)
    black_cases = suite_count(list(BLACK_BOX_SUITES), b)
    lines = [
        "# The board: a verdict for every public model",
        "",
        "Generated by a command, not typed by hand (do not edit; rerun it):",
        "",
        f"    {run['command']}",
        "",
        *(["and rendered from that JSON with `adder board --rows RUN.json --markdown -o docs/board.md`.", ""]
          if run["command"].endswith("--json") else []),
        f"Run on {run.get('machine', '?')} in {run['seconds'] / 60:.0f} min"
        + (f" (PARTIAL: {len(rows)} of {run['models']} models checked so far)." if len(rows) < run["models"] else "."),
        "",
        "How each row was checked:",
        "",
        f"* **In the IR** (registered constructions, and checkpoints): the official 10,010 cases, then "
        f"`adder verify --adversarial` with seed {settings.seed}: carry, chains, window (k = {o.k}, w = {o.window}; "
        f"{compiled_cases:,} cases) and the margin-steered Hypothesis search ({settings.examples:,} examples, "
        f"seed {settings.seed}); then `adder prove` with a search budget of {settings.prove_timeout:g} s "
        f"(\"undecided at {settings.prove_timeout:g} s\" means the budget ran out, not that the model is wrong). "
        "AdderBoard params: adder's own ledger of the compiled model.",
        f"* **Black boxes** (AdderBoard submission files, run in worker processes, one `add()` call per case): the "
        f"official 10,010 cases, then the suites {', '.join(BLACK_BOX_SUITES)} with seed {settings.seed} "
        f"(k = {b.k}, w = {b.window}; {black_cases:,} cases; `--adversarial` needs a compiled model: the search "
        "steers by margins). AdderBoard params: the file's own metadata, marked claimed. No proof: the weights are "
        "not in the IR.",
        "* **Adversarial**: the number of wrong cases and the first one found (first failing case of the first "
        "failing suite, in the order carry, chains, window, then the search), as `a + b -> printed (expected sum)`.",
        "* **Published counterexample**: a pair someone published as wrong for this model "
        "(docs/board-models.toml), re-run alone; it is in no suite.",
        f"* **not obtained**: the model's local copy was not under {MODELS_DIR_SHOWN} (published weights and "
        "submission files are never committed; docs/board-models.toml says where each comes from).",
        f"* {MODELS_DIR_SHOWN}: the `--models-dir` folder holding those local copies.",
        "",
        f"**Headline**: {_headline(rows)}.",
        "",
        "| " + " | ".join(MODEL_COLUMNS) + " |",
        "|" + "---|" * len(MODEL_COLUMNS),
    ]
    lines += ["| " + " | ".join(_md_cell(c) for c in r.cells(settings.prove_timeout)) + " |" for r in rows]
    notes = [r for r in rows if r.note]
    if notes:
        lines += ["", "Notes:", ""] + [f"* {r.name}: {r.note}" for r in notes]
    return "\n".join(lines) + "\n"


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _machine() -> str:
    import torch

    return f"{platform.machine()} ({platform.python_implementation()} {platform.python_version()}, torch {torch.__version__})"


def _write_text(path: Path, text: str) -> None:
    """Write whole or not at all: a temporary file renamed into place."""
    write_whole(path, text)
