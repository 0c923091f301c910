"""Sweeps and populations on a Ray cluster (`adder train R --seeds 1-64 --ray auto`).

One Ray task per seed of a sweep (`sweep.train_seed`, the function a local sweep's processes
run) and one per shard of a population (`population.train_population` on a slice of the seeds),
so a seed trains exactly as it does locally and writes the same files.

Where the files go: a task trains into a temporary folder on its worker and returns the files of
each seed folder (metrics.csv, best.pt, last.pt, last.state.pt: a few KB for the recipes here)
as bytes; the driver writes them into `out/seed<N>/`, each file whole or not at all. So a
cluster needs no shared storage and `--out` may be a local folder of the machine that runs
`adder train`; what a task had done when it was lost (a node died, Ctrl-C) is lost with it, and
it is run again from its start. Every node needs the same `adder` (`pip install 'adder[ray]'`)
and torch; a `--warm-start` checkpoint must be at the same path on every node.

Ray is imported only here, and only by `connect`: `import adder` and the default tests never
need it; without it `--ray` is refused in one line that names the extra.
"""

from __future__ import annotations

import math
import socket
import tempfile
import time
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Callable, Iterator

from ..compiler.errors import AdderError
from ..compiler.files import write_whole
from ..compiler.optional import require
from .loop import refuse_existing_run
from .recipes import Hyper
from .sweep import seed_folder, train_seed, warm_start_model

#: What `--ray` needs, as the one-line refusal names it.
PURPOSE = "--ray"
#: The `--ray` value that starts a private Ray instance on this machine (Ray's own name for it).
LOCAL = "local"
#: Seconds to wait for a HOST:PORT to answer before --ray is refused.
CONNECT_TIMEOUT_S = 5


def require_ray():
    """The ray module, or an AdderError naming the extra (`pip install 'adder[ray]'`). Called before any work."""
    return require("ray", PURPOSE)


@contextmanager
def connect(address: str, num_cpus: int | None = None) -> Iterator:
    """Ray, connected to the cluster at `address` ("auto": the one `ray start` runs here; "HOST:PORT";
    "local": a private instance of `num_cpus` CPUs, shut down afterwards). A Ray already initialised in
    this process (a test's, a notebook's) is used as it is and left running."""
    ray = require_ray()
    if ray.is_initialized():
        yield ray
        return
    local = address == LOCAL
    _check_reachable(address)
    try:
        ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level="WARNING",
                 **({"num_cpus": num_cpus} if local else {}))
    except (ConnectionError, RuntimeError, ValueError) as e:
        why = "" if isinstance(e, ConnectionError) else f" ({str(e).strip().splitlines()[0] if str(e).strip() else e!r})"
        raise AdderError(f"--ray {address}: no Ray cluster found there{why}; start one with `ray start --head` "
                         f"and pass --ray auto or HOST:6379, or use --ray {LOCAL}") from None
    try:
        yield ray
    finally:
        ray.shutdown()


def _check_reachable(address: str) -> None:
    """A HOST:PORT that nothing answers on is one line at once (Ray itself retries it for minutes)."""
    host, sep, port = address.rpartition(":")
    if not sep or "://" in address or not port.isdigit():
        return  # auto, local, ray://...: left to Ray
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as e:
        raise AdderError(f"--ray {address}: nothing answers there ({e.strerror or e}); start the head with "
                         f"`ray start --head` and pass its HOST:6379, or use --ray auto on the head") from None


def _gather(ray, refs: list, on_done: Callable) -> None:
    """Wait for `refs`, calling `on_done(result)` as each finishes (so its files are written at once);
    a task's AdderError (a diverged run) is raised as the local run raises it, in one line."""
    pending = list(refs)
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        try:
            result = ray.get(done[0])
        except ray.exceptions.RayTaskError as e:
            if isinstance(e.cause, AdderError):
                raise e.cause from None
            raise
        on_done(result)


def _folder_files(folder: Path) -> dict[str, bytes]:
    """Every file under `folder`, by its path relative to `folder`."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def write_files(folder: Path, files: dict[str, bytes]) -> None:
    """Write a task's returned files into `folder`, each whole or not at all (a temporary name, then a rename)."""
    for rel, data in files.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        write_whole(path, data)


def _moved(path: str | None, old: Path, new: Path) -> str | None:
    return None if path is None else str(new / Path(path).relative_to(old))


# ---------------------------------------------------------------------- sweeps: one task per seed
def _seed_task(args: tuple) -> tuple[dict, dict[str, bytes]]:
    """On a worker: `train_seed` into a temporary folder; its summary (or the AdderError it ended with,
    a diverged run's) and the files it wrote, which the driver writes either way as a local run keeps them."""
    name, seed, hyper, final_test, warm_start, compile = args
    with tempfile.TemporaryDirectory(prefix="adder-ray-") as tmp:
        folder = Path(tmp) / f"seed{seed}"
        try:
            row = train_seed((name, seed, str(folder), hyper, True, final_test, warm_start, compile))
        except AdderError as e:
            row = {"seed": seed, "error": e}
        row["tmp"] = str(folder)
        return row, _folder_files(folder) if folder.exists() else {}


def ray_sweep(name: str, seeds: list[int], out: Path, hyper: Hyper, address: str, force: bool,
              final_test: bool = False, warm_start: str | None = None, compile: bool = False,
              num_cpus: int | None = None, on_seed: Callable[[dict], None] | None = None) -> list[dict]:
    """`sweep.sweep` on a Ray cluster: one single-thread task per seed; the same rows, in seed order, and the
    same files in out/seed<N>/ (written here as each task returns)."""
    for s in seeds:
        refuse_existing_run(seed_folder(out, s), force=force)
    rows: dict[int, dict] = {}

    def done(result):
        row, files = result
        folder, tmp = seed_folder(out, row["seed"]), Path(row.pop("tmp"))
        write_files(folder, files)
        if "error" in row:
            raise row["error"]
        row.update(checkpoint=_moved(row["checkpoint"], tmp, folder), metrics=_moved(row["metrics"], tmp, folder))
        rows[row["seed"]] = row
        if on_seed:
            on_seed(row)

    with connect(address, num_cpus) as ray:
        task = ray.remote(num_cpus=1)(_seed_task)
        _gather(ray, [task.remote((name, s, hyper, final_test, warm_start, compile)) for s in seeds], done)
    return [rows[s] for s in seeds]


# ---------------------------------------------------------------------- populations: one task per shard
def shards(seeds: list[int], size: int) -> list[list[int]]:
    """`seeds` cut in order into shards of `size` (the last one shorter)."""
    if size < 1:
        raise AdderError(f"--shard-size must be at least 1, got {size}")
    return [seeds[i:i + size] for i in range(0, len(seeds), size)]


def default_shard_size(members: int, slots: int) -> int:
    """One shard per slot the cluster has (CPUs over --threads, or GPUs with --device cuda), as even as can be."""
    return math.ceil(members / max(1, slots))


def _shard_task(args: tuple) -> tuple:
    """On a worker: `train_population` of one shard into a temporary folder; its result and each seed's files."""
    import torch

    from .population import train_population
    from .recipes import get_recipe

    name, seeds, hyper, device, warm_start, threads = args
    torch.set_num_threads(threads)
    warm = warm_start_model(warm_start) if warm_start else None
    with tempfile.TemporaryDirectory(prefix="adder-ray-") as tmp:
        res = train_population(get_recipe(name), seeds, Path(tmp), hyper, device=device, force=True, warm_start=warm)
        return res, Path(tmp), {s: _folder_files(seed_folder(Path(tmp), s)) for s in seeds}


def ray_population(name: str, seeds: list[int], out: Path, hyper: Hyper, address: str, *, shard_size: int | None,
                   device: str = "cpu", force: bool = False, warm_start: str | None = None, threads: int = 1,
                   num_cpus: int | None = None, on_shard: Callable | None = None):
    """`train_population` on a Ray cluster, cut into shards of `shard_size` members (None: one per slot), one
    task each; one `PopulationResult` for all seeds, their files in out/seed<N>/ as a local population writes
    them. A member's metrics are its single run's to float rounding, as in a local population."""
    from .population import PopulationResult

    for s in seeds:
        refuse_existing_run(seed_folder(out, s), force=force)
    if shard_size is not None and shard_size < 1:
        raise AdderError(f"--shard-size must be at least 1, got {shard_size}")
    results = []

    def done(result):
        res, tmp, files = result
        for run in res.runs:
            folder = seed_folder(out, run.seed)
            write_files(folder, files[run.seed])
            results.append(replace(run, checkpoint=Path(_moved(str(run.checkpoint), tmp, out)),
                                   metrics=Path(_moved(str(run.metrics), tmp, out))))
        ended.update(res.ended)
        counts.append((res.steps, res.seed_steps))
        if on_shard:
            on_shard(res)

    t0, ended, counts = time.perf_counter(), {}, []
    with connect(address, num_cpus) as ray:
        resources = ray.cluster_resources()
        gpu = device != "cpu"
        if gpu and not resources.get("GPU"):
            raise AdderError(f"--device {device} --ray {address}: the Ray cluster has no GPU")
        if resources.get("CPU", 0) < threads:
            raise AdderError(f"--threads {threads}: the Ray cluster has {resources.get('CPU', 0):g} CPUs")
        slots = int(resources.get("GPU", 0)) if gpu else int(resources.get("CPU", 1)) // threads
        parts = shards(seeds, shard_size or default_shard_size(len(seeds), slots))
        task = ray.remote(num_cpus=threads, num_gpus=1 if gpu else 0)(_shard_task)
        _gather(ray, [task.remote((name, part, hyper, device, warm_start, threads)) for part in parts], done)
    order = {s: i for i, s in enumerate(seeds)}
    return PopulationResult(runs=sorted(results, key=lambda r: order[r.seed]), ended=ended,
                            steps=max(c[0] for c in counts), seed_steps=sum(c[1] for c in counts),
                            seconds=time.perf_counter() - t0)

