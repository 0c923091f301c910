"""`adder train --seeds`: the sweep mode of `adder train`, one process per seed, one row per seed."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape

from .common import INTERRUPTED_EXIT, console, err_console, print_json, table

SWEEP_COLUMNS = ("seed", "grokked (step)", "best exact", "at step", "official 10,010", "params", "wall time", "checkpoint")


def run_sweep(rec, seeds: str, seed_list: list[int], jobs: int, base: Path, hyper, force: bool, final_test: bool,
           warm_start: Optional[str], compile_: bool, json_out: bool) -> None:
    """Train once per seed in parallel processes, then print one row per seed."""
    from ..train.loop import BEST
    from ..train.sweep import seed_folder, sweep

    try:
        with err_console.status(f"training {escape(rec.name)} on seeds {escape(seeds)} ({jobs} at a time)"):
            rows = sweep(rec.name, seed_list, base, hyper, jobs, force, final_test, warm_start, compile_)
    except KeyboardInterrupt:
        err_console.print(f"interrupted: each seed's best checkpoint so far is {seed_folder(base, 'N') / BEST}",
                          markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(INTERRUPTED_EXIT) from None
    grokked = sum(r["grokked_step"] is not None for r in rows)
    if json_out:
        print_json({"recipe": rec.name, "params": rec.params, "seeds": rows, "grokked": grokked})
        return
    console.print(table(f"{rec.name} sweep", SWEEP_COLUMNS, (
        (str(r["seed"]), str(r["grokked_step"] or "no"), _fmt(r["best_exact"], ".4f"), str(r["best_step"]),
         _fmt(r.get("official"), ".4f"), str(rec.params), f"{r['seconds']:.0f}s", str(r["checkpoint"]))
        for r in rows)))
    console.print(f"grokked (>= 99% held-out exact): {grokked}/{len(rows)}")


def _fmt(x: Optional[float], spec: str) -> str:
    return "-" if x is None else format(x, spec)
