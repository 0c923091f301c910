"""Progress of long commands, on stderr: a live bar on a terminal, plain lines when piped.

When stderr is not a terminal (a log file, CI), a live display would be noise or nothing at
all; `PlainProgress` prints the bar's text instead, at the first update, then at most every
`PLAIN_PROGRESS_SECONDS`, and once at the end, so a log shows that a long run is alive.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn, SpinnerColumn, TaskID, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)
from rich.text import Text

from .common import err_console, is_terminal

#: Seconds between two plain progress lines when stderr is not a terminal.
PLAIN_PROGRESS_SECONDS = 10.0


class PlainProgress(Progress):
    """The progress of a piped run: no live display, a plain line on stderr at the first update, then at most
    every `every` seconds, and a last one when the run ends. The line is the text columns of the bar
    (description, done/total, time, fields); the bar and the spinner are left out."""

    def __init__(self, *columns: ProgressColumn, console: Console, every: float = PLAIN_PROGRESS_SECONDS):
        super().__init__(*columns, console=console, disable=True)
        self.every = every
        self._printed: dict[TaskID, tuple[float, float]] = {}  # task -> (time, completed) of its last line

    def update(self, task_id: TaskID, **kwargs: Any) -> None:
        super().update(task_id, **kwargs)
        self._maybe_print(task_id)

    def advance(self, task_id: TaskID, advance: float = 1) -> None:
        super().advance(task_id, advance)
        self._maybe_print(task_id)

    def stop(self) -> None:
        for task_id, task in self._tasks.items():
            if task_id in self._printed and self._printed[task_id][1] != task.completed:
                self._print(task_id)
        super().stop()

    def _maybe_print(self, task_id: TaskID) -> None:
        last = self._printed.get(task_id)
        if last is None or time.monotonic() - last[0] >= self.every:
            self._print(task_id)

    def _print(self, task_id: TaskID) -> None:
        task = self._tasks[task_id]
        cells = (col(task) for col in self.columns if not isinstance(col, (BarColumn, SpinnerColumn)))
        line = "  ".join(c.plain.strip() if isinstance(c, Text) else str(c) for c in cells)
        self.console.print(line.strip(), markup=False, highlight=False, soft_wrap=True)
        self._printed[task_id] = (time.monotonic(), task.completed)


def progress(*columns: ProgressColumn, transient: bool = False) -> Progress:
    """Progress on stderr with these columns: a live display on a terminal, plain lines when piped."""
    if is_terminal(sys.stderr):
        return Progress(*columns, console=err_console, transient=transient)
    return PlainProgress(*columns, console=err_console)


def progress_bar(*fields: str, transient: bool = False) -> Progress:
    """A bar: description, bar, done/total, time left, then a text column per `fields` template."""
    return progress(TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(),
                    TimeRemainingColumn(), *(TextColumn(f, markup=False) for f in fields), transient=transient)


def progress_spinner(template: str) -> Progress:
    """A spinner for work of unknown length: `template` (e.g. "{task.completed:,} cases"), time elapsed."""
    return progress(SpinnerColumn(), TextColumn(template, markup=False), TimeElapsedColumn(), transient=True)


def phase_spinner(title: str):
    """A spinner for work in named phases, and its callback `(n, phase)`: the line reads
    "title · phase: count", the count restarting at each new phase (hidden while it is 0)."""
    bar = progress_spinner("{task.fields[text]}")
    task = bar.add_task(title, total=None, text=title)
    seen = {"phase": None, "count": 0}

    def advance(n: int, phase: str) -> None:
        if phase != seen["phase"]:
            seen["phase"], seen["count"] = phase, 0
        seen["count"] += n
        text = f"{title} · {phase}" + (f": {seen['count']:,}" if seen["count"] else "")
        bar.update(task, advance=n, text=text)

    return bar, advance
