"""What a run can be given: seeds, thread counts and sizes that the machine can honour.

Each check returns the value or raises a one-line `AdderError` naming the option and its
range, so a command refuses it before any work: a seed torch cannot take (it wants a signed
64-bit integer), a thread count that makes torch's pool crash (``--threads 100000`` was a
segfault), a size that cannot be allocated.
"""

from __future__ import annotations

import math
import os

from .errors import AdderError

#: torch.manual_seed and torch.Generator take a signed 64-bit integer.
MAX_SEED = 2**63 - 1
#: Pairs in one batch or one evaluation set: 2^22 pairs of ~35 tokens are already ~1 GB of activations per
#: channel of d_model; more cannot be what a user meant.
MAX_PAIRS = 1 << 22


def cpus() -> int:
    """CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def check_seed(seed: int, option: str = "--seed") -> int:
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise AdderError(f"{option} must be an integer in [0, 2^63 - 1], got {seed}")
    return seed


def check_threads(threads: int, option: str = "--threads") -> int:
    """At least 1 and at most this machine's CPUs (more threads than cores only spin)."""
    if not 1 <= threads <= cpus():
        raise AdderError(f"{option} must be between 1 and {cpus()} (this machine's CPUs), got {threads}")
    return threads


def check_count(value: int, option: str, low: int = 1, high: int = MAX_PAIRS) -> int:
    """An integer count in [low, high] (`high` bounds what can be allocated)."""
    if not low <= value <= high:
        raise AdderError(f"{option} must be between {low:,} and {high:,}, got {value:,}")
    return value


def check_finite(value: float, option: str, low: float = -math.inf, high: float = math.inf,
                 low_open: bool = False) -> float:
    """A finite number in [low, high] ((low, high] with `low_open`)."""
    ok = math.isfinite(value) and (value > low if low_open else value >= low) and value <= high
    if not ok:
        if high == math.inf:
            where = f"{'>' if low_open else '>='} {low:g}"
        else:
            where = f"in {'(' if low_open else '['}{low:g}, {high:g}]"
        raise AdderError(f"{option} must be a finite number {where}, got {value}")
    return value
