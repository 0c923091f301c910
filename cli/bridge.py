"""`adder train RECIPE --bridge-from CKPT`: carry a trained model of the family into RECIPE's
tied layout (train/bridge.py): fit, anneal the ties' differences to zero, write the tied model."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..compiler.errors import AdderError
from .common import INTERRUPTED_EXIT, console, creatable_folder, err_console, print_final_test, print_json
from .progress import progress_bar

#: The annealing run's defaults: long enough for the model to follow the shrinking differences.
STEPS, LR = 40_000, 3e-4


def run_bridge_cli(rec, *, source: str, seed: int, run_dir: Path, steps: Optional[int], lr: Optional[float],
                   threads: int, force: bool, final_test: bool, json_out: bool) -> None:
    """Bridge, with a progress bar over the annealing run, then the summary and the official final test."""
    import torch

    from ..train.bridge import BRIDGED, bridge_recipe, run_bridge
    from ..train.sweep import warm_start_model

    bridge_recipe(rec)  # a recipe without a bridge layout is refused now
    steps, lr = steps or STEPS, lr or LR
    if steps < 1 or not lr > 0:
        raise AdderError(f"--bridge-from needs --steps >= 1 and --lr > 0, got {steps} and {lr}")
    creatable_folder(run_dir, "--out")
    if (run_dir / BRIDGED).exists() and not force:
        raise AdderError(f"{run_dir / BRIDGED} exists; pass --force to overwrite it, or another --out")
    warm_start_model(source)  # a bad source is refused before any work
    torch.set_num_threads(threads)
    rows_to = err_console if json_out else console
    with progress_bar("{task.fields[info]}") as bar:
        task = bar.add_task(f"bridge to {rec.name}", total=steps, info="")

        def on_row(row):
            if "exact" in row:
                rows_to.print(f"step {row['step']:>6}: loss {row['loss']:.4f}  held-out exact {row['exact']:.4f}  "
                              f"smallest margin {row['min_margin']:.3f}", highlight=False)
            bar.update(task, completed=row["step"], info=f"loss {row['loss']:.3f}")

        def on_fit(fitted, start):
            rows_to.print(f"fit ({fitted['matched']}): relative logit gap {fitted['gap']:.2g} (the ties alone "
                          f"{fitted['tied_gap']:.2g}); held-out exact {start['exact']:.4f}; annealing the "
                          f"differences ({', '.join(f'{n} {v:.3g}' for n, v in fitted['slack_norms'].items())}) "
                          f"to zero over {steps:,} steps", markup=False, highlight=False)

        try:
            res = run_bridge(rec, source, seed=seed, out=run_dir, steps=steps, lr=lr, force=force, on_row=on_row,
                             on_fit=on_fit)
        except KeyboardInterrupt:
            err_console.print(f"interrupted; the annealing run's checkpoints are in {run_dir / 'bridge'}",
                              markup=False, highlight=False)
            raise typer.Exit(INTERRUPTED_EXIT)
    summary = {"recipe": rec.name, "source": source, "seed": seed, "steps": steps, "lr": lr, **res.to_json(),
               "final_test": None}
    if final_test:
        from ..train.loop import final_test as run_final_test

        summary["final_test"] = run_final_test(res.checkpoint)
    if json_out:
        print_json(summary)
        return
    console.print(f"held-out exact {res.start['exact']:.4f} at the start, {res.end['exact']:.4f} tied (smallest "
                  f"margin {res.end['min_margin']:.3f}) -> {res.checkpoint} ({res.seconds:.0f}s)", markup=False,
                  highlight=False)
    print_final_test(summary["final_test"])
