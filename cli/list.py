"""`adder list`: the registered constructions with their counts, or docs/constructions.md's Markdown table."""

from __future__ import annotations

import typer

from ..compiler.errors import AdderError
from .common import console, print_json, table


def run(markdown: bool = typer.Option(False, "--markdown", help="Print the Markdown table of docs/constructions.md "
                                                                "(also runs the official cases on each)."),
        prove_timeout: float = typer.Option(0.0, help="With --markdown: add a proof column, proving each "
                                                      "construction with this search budget (s) [0: no column]."),
        json_out: bool = typer.Option(False, "--json", help="Print the rows as JSON on stdout: one object per "
                                                            "construction, keyed by column.")):
    """List the registered constructions with their parameter counts."""
    from ..verify.board import LIST_COLUMNS, board_columns, board_rows, list_rows

    if markdown and json_out:
        raise AdderError("--markdown and --json are two formats of the same rows; choose one")
    if json_out:
        print_json([{col: _typed(cell) for col, cell in zip(LIST_COLUMNS, row)} for row in list_rows()])
        return
    if not markdown:
        console.print(table("constructions (adder info NAME for the ledger)", LIST_COLUMNS, list_rows()))
        return
    cols = board_columns(prove_timeout)
    _markdown_row(cols)
    console.print("|" + "---|" * len(cols), markup=False, highlight=False)
    for row in board_rows(prove_timeout):
        _markdown_row(row)


def _typed(cell: str) -> int | str | None:
    """A table cell as a JSON value: a count as a number, a missing one as null, text as text."""
    if cell == "None":
        return None
    return int(cell) if cell.lstrip("-").isdigit() else cell


def _markdown_row(cells: list[str]) -> None:
    console.print("| " + " | ".join(cells) + " |", markup=False, highlight=False, soft_wrap=True)
