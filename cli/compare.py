"""`adder compare`: do two models add the same way? Routing, carry probes, margins and parameters."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..compiler.errors import AdderError
from .common import console, table

#: Linear probes need data: fewer probe additions than this are refused.
MIN_PROBES = 50
ROUTING_COLUMNS = ("model", "head", "top class", "mass", "content dependence")


def run(a: str = typer.Argument(..., help="First model: checkpoint path or construction name."),
        b: str = typer.Argument(..., help="Second model: checkpoint path or construction name."),
        out: Optional[Path] = typer.Option(None, "--out", help="Folder for PNG plots, report.html and comparison.json."),
        probes: int = typer.Option(2000, help="Number of carry-balanced probe additions."),
        seed: int = typer.Option(0, help="Seed of the probe set (recorded in the report).")):
    """Do two models add the same way? Routing, carry probes, margins and parameters side by side."""
    from ..constructions.targets import resolve
    from ..verify.compare import compare, headlines, routing_rows

    if probes < MIN_PROBES:
        raise AdderError(f"--probes must be at least {MIN_PROBES} (linear probes need data), got {probes}")
    if out is not None and out.exists() and not out.is_dir():
        raise AdderError(f"--out {out} exists and is not a folder")
    if out is not None:
        from ..compiler.optional import pyplot
        from ..verify.compare.plots import PURPOSE

        pyplot(PURPOSE)  # a missing matplotlib is found now, not after profiling
    with console.status(f"profiling {a} and {b} on {probes} probes"):
        c = compare(resolve(a).model(), resolve(b).model(), probes=probes, seed=seed)
    console.print(f"[bold]{c.a.name}[/] vs [bold]{c.b.name}[/] on {probes} carry-balanced probes (seed {seed})")
    for line in headlines(c):
        console.print(" • " + line, highlight=False)
    rows = ((r.model, r.head, r.top_class, f"{r.mass:.2f}", f"{r.content_dependence:.3f}") for r in routing_rows(c))
    console.print(table("attention routing: top position class per head (digits 0..9)", ROUTING_COLUMNS, rows))
    if out is not None:
        from ..verify.compare.plots import write_report

        files = write_report(c, out)
        console.print(f"wrote {len(files)} files to [bold]{out}[/] (open {out / 'report.html'})")
