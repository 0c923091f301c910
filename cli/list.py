"""`adder list`: the registered constructions with their counts, or docs/constructions.md's Markdown table."""

from __future__ import annotations

import typer

from .common import console, table


def run(markdown: bool = typer.Option(False, "--markdown", help="Print the Markdown table of docs/constructions.md "
                                                                "(also runs the official cases on each)."),
        prove_timeout: float = typer.Option(0.0, help="With --markdown: add a proof column, proving each "
                                                      "construction with this search budget (s) [0: no column].")):
    """List the registered constructions with their parameter counts."""
    from ..verify.board import LIST_COLUMNS, board_columns, board_rows, list_rows

    if not markdown:
        console.print(table("constructions (adder info NAME for the ledger)", LIST_COLUMNS, list_rows(), no_wrap=True))
        return
    cols = board_columns(prove_timeout)
    _markdown_row(cols)
    console.print("|" + "---|" * len(cols), markup=False, highlight=False)
    for row in board_rows(prove_timeout):
        _markdown_row(row)


def _markdown_row(cells: list[str]) -> None:
    console.print("| " + " | ".join(cells) + " |", markup=False, highlight=False, soft_wrap=True)
