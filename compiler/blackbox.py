"""Run an AdderBoard submission file black-box: `build_model()` / `add(model, a, b)`.

The file is imported in worker processes (two, one per core), never in the caller; each
call has a timeout, so a submission that hangs or crashes is reported, not fatal. The
file is checked for `build_model` and `add` by reading it (no execution) first.
"""

from __future__ import annotations

import importlib.util
import multiprocessing as mp
import signal
from pathlib import Path

from .errors import AdderError
from .pysource import read_python, top_level_names

#: Pairs sent to a worker per task.
TASK_SIZE = 50
_state: dict = {}


def check_submission(path: Path) -> None:
    """One-line errors for a file that is missing, not Python, or lacks the two functions."""
    if not path.exists():
        raise AdderError(f"no submission file at {path}")
    names = top_level_names(read_python(path))
    missing = [f for f in ("build_model", "add") if f not in names]
    if missing:
        raise AdderError(f"{path} defines no {' and no '.join(missing)}(); an AdderBoard submission needs "
                         "build_model() -> (model, metadata) and add(model, a, b) -> int")


def _init(path: str) -> None:
    import torch

    torch.set_num_threads(1)
    spec = importlib.util.spec_from_file_location("submission", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    model, meta = mod.build_model()
    _state.update(mod=mod, model=model, meta=meta)


def _alarm(signum, frame):
    raise TimeoutError("call timed out")


def _run(pairs: list[tuple[int, int]], timeout: float) -> list:
    signal.signal(signal.SIGALRM, _alarm)
    out = []
    for a, b in pairs:
        signal.setitimer(signal.ITIMER_REAL, timeout)
        try:
            out.append(("ok", _state["mod"].add(_state["model"], a, b)))
        except TimeoutError:
            out.append(("timeout", None))
        except Exception as e:  # a submission's own error is a result, not our crash
            out.append(("error", f"{type(e).__name__}: {e}"[:200]))
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    return out


def _metadata(path: str) -> dict:
    _init(path)
    meta = _state["meta"]
    return {k: (v if isinstance(v, (int, float, str, list)) else str(v)) for k, v in dict(meta).items()}


def run_submission(path: Path, pairs: list[tuple[int, int]], *, timeout: float = 10.0, workers: int = 2,
                   progress=None) -> tuple[dict, list]:
    """(metadata, results) where results[i] is ("ok", value) | ("timeout", None) | ("error", msg)."""
    check_submission(path)
    ctx = mp.get_context("spawn")
    with ctx.Pool(1) as p:
        try:
            meta = p.apply_async(_metadata, (str(path),)).get(timeout=max(60.0, timeout))
        except mp.TimeoutError:
            raise AdderError(f"{path}: build_model() did not return within {max(60.0, timeout):.0f}s") from None
        except Exception as e:
            raise AdderError(f"{path}: build_model() failed: {type(e).__name__}: {e}") from None
    tasks = [pairs[i:i + TASK_SIZE] for i in range(0, len(pairs), TASK_SIZE)]
    results: list = [None] * len(tasks)
    pending = list(range(len(tasks)))
    while pending:
        pool = ctx.Pool(workers, initializer=_init, initargs=(str(path),))
        try:
            handles = {i: pool.apply_async(_run, (tasks[i], timeout)) for i in pending}
            pending = []
            for i, h in handles.items():
                try:
                    results[i] = h.get(timeout=timeout * len(tasks[i]) + 120)
                except mp.TimeoutError:  # a worker died or hung beyond its alarm
                    results[i] = [("timeout", None)] * len(tasks[i])
                    pending = [j for j in handles if j > i and results[j] is None]
                    break
                if progress:
                    progress(len(tasks[i]))
        finally:
            pool.terminate()
    return meta, [r for chunk in results for r in chunk]
