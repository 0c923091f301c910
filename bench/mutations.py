"""Mutation check: how many broken variants of param40 does each suite catch?

Two kinds of mutants of single learned scalars:
* a grid: sign flip and rescaling by 0.94 / 0.98 / 1.02 / 1.06;
* boundary mutants: for each non-zero scalar and direction, the smallest relative change
  (bisection between 1e-7 and 0.3) at which the adversarial suites (carry + chains) find a
  failure — the subtlest breakages, where a suite's coverage matters most.
For each we run the official 10,010 cases and the adversarial suites and print who caught
it. Prints measured figures; asserts nothing (tests/test_verify_mutations.py does).

    python bench/mutations.py            # ~15 minutes on 2 cores
    python bench/mutations.py --grid     # the grid only (~1 minute)
"""

from __future__ import annotations

import argparse
import math
import time

import torch

from adder.compiler import compile_spec
from adder.constructions import build_spec
from adder.verify.runner import run_suite

GRID = (-1.0, 0.94, 0.98, 1.02, 1.06)
BISECT_STEPS = 14


def mutant(key: str, idx: tuple, factor: float):
    m = compile_spec(build_spec("param40"))
    with torch.no_grad():
        m.param(key)[idx] *= factor
    return m


def adversarial_failures(m) -> int:
    return run_suite(m, "carry").failed + run_suite(m, "chains").failed


def weights():
    base = compile_spec(build_spec("param40"))
    return [(k, tuple(i)) for k, p in base.named_spec_params() for i in torch.nonzero(p.detach() != 0).tolist()]


def boundary(key: str, idx: tuple, sign: int) -> float | None:
    lo, hi = 1e-7, 0.3
    if adversarial_failures(mutant(key, idx, 1 + sign * hi)) == 0:
        return None
    for _ in range(BISECT_STEPS):
        mid = math.sqrt(lo * hi)
        lo, hi = (lo, mid) if adversarial_failures(mutant(key, idx, 1 + sign * mid)) else (mid, hi)
    return 1 + sign * hi


def main() -> None:
    torch.set_num_threads(1)  # two spin-waiting threads on a busy 2-core machine run ~10x slower
    ap = argparse.ArgumentParser()
    ap.add_argument("--grid", action="store_true", help="grid mutants only")
    args = ap.parse_args()
    t = time.perf_counter()
    factors = [(k, i, f) for k, i in weights() for f in GRID]
    if not args.grid:
        factors += [(k, i, f) for k, i in weights() for s in (1, -1) if (f := boundary(k, i, s)) is not None]
    rows = []
    for key, idx, f in factors:
        m = mutant(key, idx, f)
        rows.append((key, idx, f, run_suite(m, "adderboard").failed, adversarial_failures(m)))
        print(f"{key}{list(idx)} x{f:.7g}: official {rows[-1][3]:>6}  adversarial {rows[-1][4]:>6}", flush=True)
    broken = [r for r in rows if r[3] or r[4]]
    print(f"\n{len(rows)} mutants, {len(broken)} broken; official suite catches {sum(r[3] > 0 for r in broken)}, "
          f"adversarial suites (carry + chains) catch {sum(r[4] > 0 for r in broken)}; "
          f"{sum(r[3] == 0 and r[4] > 0 for r in broken)} pass the official suite but fail adversarial; "
          f"{len(rows) - len(broken)} equivalent (e.g. flipping W_qk flips Q and K together) "
          f"[{time.perf_counter() - t:.0f}s]")


if __name__ == "__main__":
    main()
