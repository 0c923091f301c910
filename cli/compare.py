"""`adder compare`: do two models add the same way? Routing, carry probes, margins and parameters."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape

from ..compiler.errors import AdderError
from ..compiler.limits import check_count, check_seed
from .common import console, err_console, print_json, table, writable_folder

#: Linear probes need data: fewer probe additions than this are refused.
MIN_PROBES = 50
#: Each probe keeps every site's activations of both models: a million is ~GBs, and far past what a probe needs.
MAX_PROBES = 1_000_000
ROUTING_COLUMNS = ("model", "head", "top class", "mass", "content dependence")


def run(a: str = typer.Argument(..., help="First model: checkpoint path or construction name."),
        b: str = typer.Argument(..., help="Second model: checkpoint path or construction name."),
        out: Optional[Path] = typer.Option(None, "--out", help="Folder for PNG plots, report.html and comparison.json."),
        probes: int = typer.Option(2000, help="Number of carry-balanced probe additions."),
        seed: int = typer.Option(0, help="Seed of the probe set (recorded in the report)."),
        json_out: bool = typer.Option(False, "--json", help="Print the comparison's numbers as JSON on stdout."),
        force: bool = typer.Option(False, "--force", help="Write into an --out folder that already holds files.")):
    """Do two models add the same way? Routing, carry probes, margins and parameters side by side."""
    from ..constructions.targets import resolve
    from ..verify.compare import compare, headlines, routing_rows

    if probes < MIN_PROBES:
        raise AdderError(f"--probes must be at least {MIN_PROBES} (linear probes need data), got {probes}")
    check_count(probes, "--probes", MIN_PROBES, MAX_PROBES)
    check_seed(seed)
    if out is not None:
        from ..compiler.optional import pyplot
        from ..verify.compare.plots import PURPOSE

        writable_folder(out, force, "--out")
        pyplot(PURPOSE)  # a missing matplotlib is found now, not after profiling
    model_a, model_b = resolve(a).model(), resolve(b).model()
    with err_console.status(f"profiling {escape(a)} and {escape(b)} on {probes} probes"):
        c = compare(model_a, model_b, probes=probes, seed=seed)
    files = None
    if out is not None:
        from ..verify.compare.plots import write_report

        files = write_report(c, out)
    if json_out:
        print_json({**c.to_json(), "headlines": headlines(c), "files": [str(f) for f in files or []]})
        return
    console.print(f"[bold]{escape(c.a.name)}[/] vs [bold]{escape(c.b.name)}[/] on {probes} carry-balanced probes "
                  f"(seed {seed})", highlight=False)
    for line in headlines(c):
        console.print(" • " + line, markup=False, highlight=False)
    rows = ((r.model, r.head, r.top_class, f"{r.mass:.2f}", f"{r.content_dependence:.3f}") for r in routing_rows(c))
    console.print(table("attention routing: top position class per head (digits 0..9)", ROUTING_COLUMNS, rows))
    if files is not None:
        console.print(f"wrote {len(files)} files to [bold]{escape(str(out))}[/] "
                      f"(open {escape(str(out / 'report.html'))})", highlight=False)
