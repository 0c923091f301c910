"""What the command files share: the two consoles, the progress bar, output-path checks, rendering.

Results go to `console` (stdout); progress and errors to `err_console` (stderr), so that
stdout can be piped or parsed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from ..compiler.errors import AdderError

console = Console()
err_console = Console(stderr=True)


def progress_bar(*fields: str, transient: bool = False) -> Progress:
    """A bar on stderr: description, bar, done/total, time left, then a text column per `fields` template."""
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                    *map(TextColumn, fields), console=err_console, transient=transient)


def writable(path: Path, force: bool) -> None:
    """Refuse, before any long work, an output path that exists (without --force) or cannot be written."""
    if path.exists() and not force:
        raise AdderError(f"{path} already exists; pass --force to overwrite it")
    if not path.parent.exists():
        raise AdderError(f"cannot write {path}: folder {path.parent} does not exist")
    if path.is_dir():
        raise AdderError(f"cannot write {path}: it is a folder")


def table(title: str, columns: Iterable[str], rows: Iterable[Iterable[str]], **column_style) -> Table:
    """A rich table with these columns (each styled with `column_style`, e.g. overflow="fold") and rows."""
    t = Table(title=title)
    for col in columns:
        t.add_column(col, **column_style)
    for row in rows:
        t.add_row(*row)
    return t


def write_json(path: Path, data: dict) -> None:
    """Write a report's JSON and say so."""
    path.write_text(json.dumps(data, indent=1))
    console.print(f"wrote {path}")


def dtype_name(model) -> str:
    """'float32' for a model in torch.float32."""
    return str(model.dtype).replace("torch.", "")
