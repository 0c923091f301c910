"""The many-seed modes of `adder train`: `--seeds` (a sweep, one process per seed) and
`--population` (the seeds as one batched computation in this process); with `--ray`, either on a
Ray cluster (train/cluster.py); one row per seed."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape

from ..compiler.errors import AdderError
from .common import INTERRUPTED_EXIT, console, creatable_folder, err_console, print_json, table
from .progress import progress_bar

SWEEP_COLUMNS = ("seed", "grokked (step)", "best exact", "at step", "official 10,010", "params", "wall time", "checkpoint")


def run_population(rec, size: int, seed: int, seeds: Optional[str], base: Path, hyper, device: str, force: bool,
                   warm_start: Optional[str], json_out: bool, *, ray: Optional[str] = None,
                   shard_size: Optional[int] = None, threads: int = 1, jobs: int = 2) -> None:
    """Train the population (here, or in shards on a Ray cluster), then the same per-seed table as a sweep."""
    from ..train.sweep import parse_seeds

    seed_list = parse_seeds(seeds) if seeds else list(range(seed, seed + size))
    if size < 1 or len(seed_list) != size:
        raise AdderError(f"--population must be at least 1 and match --seeds ({len(seed_list)} seeds), got {size}")
    creatable_folder(base, "--out")
    if ray is not None:
        res = _ray_population(rec, seed_list, base, hyper, device, force, warm_start, ray, shard_size, threads, jobs)
    else:
        res = _local_population(rec, seed_list, base, hyper, device, force, warm_start)
    rows = [{**r.to_json(), "official": None} for r in res.runs]
    _print_rows(rec, rows, json_out, {"seed_steps_per_s": res.seed_steps_per_s, "ended": res.ended})
    if res.interrupted:
        err_console.print(f"interrupted: each member's checkpoints of its last evaluation are in {base}",
                          markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(INTERRUPTED_EXIT)


def _local_population(rec, seed_list: list[int], base: Path, hyper, device: str, force: bool,
                      warm_start: Optional[str]):
    """The population in this process, one bar for all members."""
    from ..train.population import train_population
    from ..train.sweep import warm_start_model

    size = len(seed_list)
    warm = warm_start_model(warm_start) if warm_start else None
    with progress_bar("{task.fields[info]}") as bar:
        task = bar.add_task(f"{rec.name} x{size}", total=hyper.steps, info="")

        def on_row(row):
            best = f"best exact {row['best_exact']:.3f} (seed {row['best_seed']})" if row["best_seed"] is not None else ""
            doing = (f"L-BFGS finishing {row['finishing'][0]}/{row['finishing'][1]} members done" if "finishing" in row
                     else f"{row['active']}/{row['members']} training")
            bar.update(task, completed=row["step"], info=f"{doing}, {row['grokked']} grokked, {best} "
                       f"{row['seed_steps_per_s']:.0f} seed-steps/s")

        return train_population(rec, seed_list, base, hyper, device=device, force=force, warm_start=warm,
                                on_row=on_row)


def _ray_population(rec, seed_list: list[int], base: Path, hyper, device: str, force: bool,
                    warm_start: Optional[str], ray: str, shard_size: Optional[int], threads: int, jobs: int):
    """The population in shards on a Ray cluster; the bar counts the members of the shards that came back."""
    from ..train.cluster import ray_population

    try:
        with progress_bar("{task.fields[info]}") as bar:
            task = bar.add_task(f"{rec.name} x{len(seed_list)} on Ray ({ray})", total=len(seed_list), info="")

            def on_shard(res):
                bar.update(task, advance=len(res.runs), info=f"{res.seed_steps_per_s:.0f} seed-steps/s in the last shard")

            return ray_population(rec.name, seed_list, base, hyper, ray, shard_size=shard_size, device=device,
                                  force=force, warm_start=warm_start, threads=threads, num_cpus=jobs, on_shard=on_shard)
    except KeyboardInterrupt:
        _ray_interrupted(base)


def _ray_interrupted(base: Path) -> None:
    err_console.print(f"interrupted: the seeds whose Ray task had come back are in {base}; the others' work is lost",
                      markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(INTERRUPTED_EXIT) from None


def run_sweep(rec, seeds: str, seed_list: list[int], jobs: int, base: Path, hyper, force: bool, final_test: bool,
           warm_start: Optional[str], compile_: bool, json_out: bool, ray: Optional[str] = None) -> None:
    """Train once per seed in parallel processes (or Ray tasks), then print one row per seed."""
    from ..train.loop import BEST
    from ..train.sweep import seed_folder, sweep

    if ray is not None:
        from ..train.cluster import ray_sweep

        try:
            with err_console.status(f"training {escape(rec.name)} on seeds {escape(seeds)} on Ray ({escape(ray)})"):
                rows = ray_sweep(rec.name, seed_list, base, hyper, ray, force, final_test, warm_start, compile_,
                                 num_cpus=jobs)
        except KeyboardInterrupt:
            _ray_interrupted(base)
        _print_rows(rec, rows, json_out)
        return
    try:
        with err_console.status(f"training {escape(rec.name)} on seeds {escape(seeds)} ({jobs} at a time)"):
            rows = sweep(rec.name, seed_list, base, hyper, jobs, force, final_test, warm_start, compile_)
    except KeyboardInterrupt:
        err_console.print(f"interrupted: each seed's best checkpoint so far is {seed_folder(base, 'N') / BEST}",
                          markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(INTERRUPTED_EXIT) from None
    _print_rows(rec, rows, json_out)


def _print_rows(rec, rows: list[dict], json_out: bool, extra: Optional[dict] = None) -> None:
    """One row per seed (a table, or the JSON document with --json) and how many grokked."""
    grokked = sum(r["grokked_step"] is not None for r in rows)
    if json_out:
        print_json({"recipe": rec.name, "params": rec.params, "seeds": rows, "grokked": grokked, **(extra or {})})
        return
    console.print(table(f"{rec.name} sweep", SWEEP_COLUMNS, (
        (str(r["seed"]), str(r["grokked_step"] or "no"), _fmt(r["best_exact"], ".4f"), str(r["best_step"]),
         _fmt(r.get("official"), ".4f"), str(rec.params), f"{r['seconds']:.0f}s", str(r["checkpoint"]))
        for r in rows)))
    console.print(f"grokked (>= 99% held-out exact): {grokked}/{len(rows)}")


def _fmt(x: Optional[float], spec: str) -> str:
    return "-" if x is None else format(x, spec)
