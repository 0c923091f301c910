"""What the command files share: the two consoles, output-path checks, rendering (progress: progress.py).

Results go to `console` (stdout); progress and errors to `err_console` (stderr), so that
stdout can be piped or parsed. Output is for scripts as much as for eyes:

* a console whose stream is not a terminal (a pipe, a file) is `UNWRAPPED_WIDTH` wide, so
  tables print whole and lines are never cut (rich would otherwise cut at 80 columns); on a
  terminal, table cells wrap (`overflow="fold"`) instead of ending in an ellipsis;
* table cells and user text are printed literally, never read as rich markup (`[x]` stays);
* `--json` flags print one JSON document on stdout (`print_json`), nothing else.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from ..compiler.errors import AdderError
from ..compiler.files import check_writable, json_text
from ..compiler.files import write_json as write_json_whole

#: Width of a console that writes to a pipe or a file: wide enough that no table cell is cut.
UNWRAPPED_WIDTH = 100_000
#: Exit status of a run ended by Ctrl-C (128 + SIGINT, as shells report it); what it did is kept.
INTERRUPTED_EXIT = 130


def is_terminal(stream: IO) -> bool:
    """Whether `stream` is an interactive terminal (a pipe, a file or a captured stream is not)."""
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def _console(stderr: bool) -> Console:
    """A console on stdout or stderr: terminal width on a terminal, unwrapped otherwise."""
    return Console(stderr=stderr, width=None if is_terminal(sys.stderr if stderr else sys.stdout) else UNWRAPPED_WIDTH)


console = _console(stderr=False)
err_console = _console(stderr=True)


#: Refuse, before any long work, an output file that exists (without --force) or cannot be written.
writable = check_writable


def creatable_folder(path: Path, option: str) -> None:
    """Refuse, before any long work, an output folder (`option`, e.g. --out) that is a file or cannot be
    created (its nearest existing parent is a file or not writable). Missing parents are created later."""
    if path.exists() and not path.is_dir():
        raise AdderError(f"{option} {path} exists and is not a folder")
    parent = path
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise AdderError(f"cannot create {option} {path}: {parent} is not a writable folder")


def writable_folder(path: Path, force: bool, option: str) -> None:
    """`creatable_folder`, and one that already holds files is refused without --force."""
    creatable_folder(path, option)
    if path.is_dir() and any(path.iterdir()) and not force:
        raise AdderError(f"{option} {path} already holds files; pass --force to write into it anyway")


def table(title: str, columns: Iterable[str], rows: Iterable[Iterable[str]], **column_style) -> Table:
    """A table with these columns and rows, every cell printed literally (no markup). Cells wrap rather
    than being cut (`overflow="fold"`, unless `column_style` says otherwise)."""
    t = Table(title=Text(title))
    for col in columns:
        t.add_column(Text(col), **{"overflow": "fold", **column_style})
    for row in rows:
        t.add_row(*(Text(str(cell)) for cell in row))
    return t




def print_final_test(result: dict | None, never_used_for: str = "selection") -> None:
    """The one line a training command ends with: the official cases, run once after training."""
    if result is not None:
        console.print(f"official AdderBoard cases (final test, never used for {never_used_for}): "
                      f"{result['passed']:,}/{result['cases']:,} = {result['accuracy']:.2%}")


def print_json(data: Any) -> None:
    """Print `data` as one JSON document on stdout (the `--json` flags)."""
    sys.stdout.write(json_text(data) + "\n")
    sys.stdout.flush()


def write_json(path: Path, data: dict) -> None:
    """Write a report's JSON (whole or not at all: a temporary file renamed into place) and say so."""
    write_json_whole(path, data)
    console.print(f"wrote {escape(str(path))}", highlight=False)


def dtype_name(model) -> str:
    """'float32' for a model in torch.float32."""
    return str(model.dtype).replace("torch.", "")
