"""`adder board`: a verdict for every public model (docs/board.md): official cases, adversarial
suites, and the prover where the model is in the IR; black-box submission files for the rest.

Everything a user can get wrong (the manifest, the output file, the options) is refused in one
line before the first model is checked. Each row is printed on stderr as it completes (a run of
the whole board takes an hour or more); the table goes to stdout or to `-o`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..compiler.errors import AdderError
from ..compiler.files import write_whole
from ..compiler.limits import check_count, check_finite, check_seed, check_threads
from .common import console, err_console, table, writable
from .verify import MAX_EXAMPLES

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

    from ..verify.board import BoardSettings, board_entries
    from ..verify.board.document import MODELS_DIR_SHOWN, command_line, progress_line, read_run, run_board
    from ..verify.cases import SuiteOptions
    from ..verify.manifest import read_manifest
    from ..verify.submissions.blackbox import check_timeout

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
        _render(read_run(rows_from), markdown, json_out, out)
        return
    manifest = read_manifest(models) if models is not None else []
    if models is not None and not models_dir.is_dir():
        raise AdderError(f"--models-dir {models_dir} is not a folder")
    entries = board_entries(manifest, models_dir, MODELS_DIR_SHOWN, only)
    torch.set_num_threads(threads)

    def on_start(i, entry):
        err_console.print(f"[{i}/{len(entries)}] {entry.name}: checking", markup=False, highlight=False)

    def on_row(i, entry, row, run):
        err_console.print(f"[{i}/{len(entries)}] {entry.name}: " + progress_line(row, settings), markup=False,
                          highlight=False, soft_wrap=True)
        if out is not None and i < len(entries):  # a stopped run keeps the rows it checked (marked partial)
            _write_text(out, _document(run, markdown, json_out))

    run = run_board(entries, settings, command_line(settings, models, only, json_out),
                    str(models) if models else None, on_start, on_row, load_published=_imported)
    _render(run, markdown, json_out, out)


def _imported(path: Path, recipe: str):
    """A published weights file read into the IR, as `adder import --as RECIPE` reads it."""
    from ..train.importers import import_checkpoint

    return import_checkpoint(path, recipe)[0]


def _render(run: dict, markdown: bool, json_out: bool, out: Path | None) -> None:
    """A run's rows: the document (to `out`, or stdout with --markdown / --json), or a table on the terminal."""
    from ..verify.board import MODEL_COLUMNS
    from ..verify.board.document import rows_of

    if out is not None:
        _write_text(out, _document(run, markdown, json_out))
        console.print(f"wrote {out}", markup=False, highlight=False)
    elif markdown or json_out:
        console.print(_document(run, markdown, json_out), markup=False, highlight=False, soft_wrap=True, end="")
    else:
        timeout = run["settings"]["prove_timeout"]
        console.print(table("the board (adder board --markdown for docs/board.md)", MODEL_COLUMNS,
                            (r.cells(timeout) for r in rows_of(run))))


def _document(run: dict, markdown: bool, json_out: bool) -> str:
    from ..verify.board.document import document

    return document(run, markdown, json_out)


def _write_text(path: Path, text: str) -> None:
    """Write whole or not at all: a temporary file renamed into place."""
    write_whole(path, text)
