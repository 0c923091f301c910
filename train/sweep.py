"""Seed sweeps: one single-thread process per seed, `jobs` at a time.

On a 2-core CPU two single-thread runs give 1.2-1.7x the throughput of one two-thread run.
"""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

from ..compiler.errors import AdderError
from ..compiler.limits import MAX_SEED
from ..compiler.module import AdderModel
from ..constructions.targets import resolve
from .recipes import Hyper

#: Arithmetic a warm-start model is read in: the recipes train in float32.
WARM_START_DTYPE = "float32"


def parse_seeds(text: str) -> list[int]:
    """'1-8' or '1,5,777' -> seeds."""
    try:
        seeds = []
        for part in text.split(","):
            if "-" in part.strip()[1:]:
                lo, hi = part.split("-")
                seeds += list(range(int(lo), int(hi) + 1))
            else:
                seeds.append(int(part))
    except ValueError:
        raise AdderError(f"--seeds takes '1-8' or '1,5,777', got {text!r}") from None
    if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0 or max(seeds) > MAX_SEED:
        raise AdderError(f"--seeds must list distinct seeds in [0, 2^63 - 1], got {text!r}")
    return seeds


def seed_folder(base: Path, seed: int | str) -> Path:
    """The run folder of one seed of a sweep in `base`."""
    return base / f"seed{seed}"


def warm_start_model(target: str) -> AdderModel:
    """The model named by `target` whose parameters initialise a run (`--warm-start`), in float32 as runs train."""
    return resolve(target).model(dtype=WARM_START_DTYPE)


def train_seed(args) -> dict:
    """One seed of a sweep, single-threaded: its `RunResult.to_json()` and official accuracy ("official", None
    unless asked). `args` is one tuple (name, seed, out, hyper, force, final_test, warm_start, compile) so that a
    process pool or a Ray task (train/cluster.py) can run it as it is."""
    import torch

    from .loop import train
    from .loop import final_test
    from .recipes import get_recipe

    name, seed, out, hyper, force, test, warm_start, compile = args
    torch.set_num_threads(1)
    warm = warm_start_model(warm_start) if warm_start else None
    r = train(get_recipe(name), seed=seed, out=Path(out), hyper=hyper, force=force, warm_start=warm, compile=compile)
    return {**r.to_json(), "official": final_test(r.checkpoint)["accuracy"] if test and not r.interrupted else None}


def sweep(name: str, seeds: list[int], out: Path, hyper: Hyper, jobs: int, force: bool,
          final_test: bool = False, warm_start: str | None = None, compile: bool = False) -> list[dict]:
    """Train `name` once per seed in `jobs` parallel single-thread processes; one `RunResult.to_json()` per seed,
    with its official accuracy (`final_test`)."""
    if jobs < 1:
        raise AdderError(f"--jobs must be at least 1, got {jobs}")
    tasks = [(name, s, str(seed_folder(out, s)), hyper, force, final_test, warm_start, compile) for s in seeds]
    with mp.get_context("spawn").Pool(jobs) as pool:
        return list(pool.imap(train_seed, tasks))
