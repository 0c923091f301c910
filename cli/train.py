"""`adder train`: train a learned variant (one seed, or a sweep of seeds); `--list` shows the recipes."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..compiler.errors import AdderError
from .common import console, progress_bar, table

RECIPE_COLUMNS = ("name", "params", "steps", "summary")
SWEEP_COLUMNS = ("seed", "grokked (step)", "best exact", "at step", "official 10,010", "params", "wall time", "checkpoint")
#: Runs in a folder of their own under this one unless --out names it.
RUNS = Path("runs")


def run(recipe: Optional[str] = typer.Argument(None, help="Recipe name (see --list)."),
        list_: bool = typer.Option(False, "--list", help="List the recipes."),
        seed: int = typer.Option(0, help="Seed of initialisation and data (recorded in the checkpoint)."),
        seeds: Optional[str] = typer.Option(None, help="Sweep: '1-8' or '1,5,777' (one process per seed)."),
        jobs: int = typer.Option(2, help="Parallel single-thread processes for a sweep."),
        steps: Optional[int] = typer.Option(None, help="Override the recipe's step count."),
        out: Optional[Path] = typer.Option(None, "--out", help="Run folder [runs/RECIPE-seedN]."),
        resume: Optional[Path] = typer.Option(None, help="Continue from a checkpoint of the same recipe."),
        curriculum: Optional[str] = typer.Option(None, help="e.g. '1-3:2000,1-6:5000,1-10:rest'."),
        lr: Optional[float] = typer.Option(None, help="Override the recipe's peak learning rate."),
        plot: bool = typer.Option(False, "--plot", help="Write curves.png (needs matplotlib)."),
        warm_start: Optional[str] = typer.Option(None, "--warm-start", help="Construction or checkpoint whose "
                                                 "same-named, same-shaped parameters initialise the run."),
        compile_: bool = typer.Option(False, "--compile", help="torch.compile the training forward pass "
                                      "(10-26 s to compile; -30%..+50% speed here, so off by default)."),
        force: bool = typer.Option(False, "--force", help="Overwrite an existing run folder."),
        threads: int = typer.Option(1, help="torch threads for a single run (a 57p model gains nothing from more)."),
        final_test: bool = typer.Option(True, "--final-test/--no-final-test",
                                        help="Run the official 10,010 cases once on the best checkpoint.")):
    """Train a learned variant; keeps the best held-out checkpoint (never selected on official cases)."""
    from ..train.recipes import RECIPES, Hyper, get_recipe

    if list_:
        rows = ((r.name, str(r.params), f"{r.hyper.steps:,}", r.summary) for r in RECIPES.values())
        console.print(table("recipes", RECIPE_COLUMNS, rows, overflow="fold"))
        return
    if recipe is None:
        raise AdderError("name a recipe (adder train --list shows them)")
    rec = get_recipe(recipe)
    hyper = Hyper.recorded_in(resume, rec.hyper) if resume is not None else rec.hyper  # go on as the run went
    hyper = hyper.override(steps=steps, lr=lr, curriculum=curriculum)
    if seeds:
        _sweep(rec, seeds, jobs, out or RUNS / f"{recipe}-sweep", hyper, force, final_test, warm_start, compile_)
        return
    import torch

    from ..train.loop import train
    from ..train.sweep import warm_start_model

    torch.set_num_threads(max(1, threads))
    warm_model = warm_start_model(warm_start) if warm_start else None
    run_dir = out or (resume.parent if resume else RUNS / f"{recipe}-seed{seed}")
    if plot:
        from ..compiler.optional import pyplot
        from ..train.plot import PURPOSE

        pyplot(PURPOSE)  # a missing matplotlib is found now, not after training
    with progress_bar("{task.fields[info]}") as bar:
        task = bar.add_task(f"{recipe} seed {seed}", total=hyper.steps, info="")

        def on_row(row):
            info = f"loss {row['loss']:.3f} lr {row['lr']:.2g} {row.get('steps_per_s', 0):.0f} steps/s"
            if "exact" in row:
                info += f" | exact {row['exact']:.3f} tok {row['token_acc']:.3f}"
                console.print(f"step {row['step']:>6}: loss {row['loss']:.4f}  held-out exact {row['exact']:.4f}  "
                              f"token acc {row['token_acc']:.4f}  lr {row['lr']:.3g}", highlight=False)
            bar.update(task, completed=row["step"], info=info)

        res = train(rec, seed=seed, out=run_dir, hyper=hyper, resume=resume, on_row=on_row, force=force,
                    warm_start=warm_model, compile=compile_)
    if warm_model is not None:
        console.print(f"warm-started from {warm_start}: {', '.join(res.warm_started)}")
    console.print(f"best held-out exact {res.best_exact:.4f} at step {res.best_step}; "
                  f"grokked (>= 99%): {res.grokked_step or 'no'}; {res.steps:,} steps in {res.seconds:.0f}s "
                  f"-> {res.checkpoint} (metrics: {run_dir / 'metrics.csv'})")
    if final_test:
        from ..train.loop import final_test as run_final_test

        ft = run_final_test(res.checkpoint)
        console.print(f"official AdderBoard cases (final test, never used for selection): "
                      f"{ft['passed']:,}/{ft['cases']:,} = {ft['accuracy']:.2%}")
    if plot:
        from ..train.plot import plot_curves

        console.print(f"wrote {plot_curves(run_dir / 'metrics.csv', run_dir / 'curves.png', res.grokked_step)}")


def _sweep(rec, seeds: str, jobs: int, base: Path, hyper, force: bool, final_test: bool, warm_start: Optional[str],
           compile_: bool) -> None:
    """Train once per seed in parallel processes, then print one row per seed."""
    from ..train.sweep import parse_seeds, sweep

    with console.status(f"training {rec.name} on seeds {seeds} ({jobs} at a time)"):
        rows = sweep(rec.name, parse_seeds(seeds), base, hyper, jobs, force, final_test, warm_start, compile_)
    console.print(table(f"{rec.name} sweep", SWEEP_COLUMNS, (
        (str(r["seed"]), str(r["grokked_step"] or "no"), f"{r['best_exact']:.4f}", str(r["best_step"]),
         f"{r['official']:.4f}" if r.get("official") is not None else "-", str(rec.params), f"{r['seconds']:.0f}s",
         r["checkpoint"]) for r in rows)))
    console.print(f"grokked (>= 99% held-out exact): {sum(r['grokked_step'] is not None for r in rows)}/{len(rows)}")
