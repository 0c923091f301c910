"""Prove every registered construction and print the verdict table of docs/prove.md.

For each construction: `adder prove` with a time budget, in its own dtype, then one
Markdown row: verdict, time, leaves (summed over the steps), smallest certified margin bound and smallest sampled margin
over the steps, and the measured reason when it is not proven. Prints figures; asserts
nothing (tests/test_prove.py holds the acceptance checks).

    python bench/prove.py                   # every construction, 60 s budget each
    python bench/prove.py param40 zcbtrak6  # some
    python bench/prove.py --timeout 600     # a larger budget
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

from adder.cli.heap import keep_freed_memory
from adder.compiler import compile_spec
from adder.compiler.spec import Attention
from adder.constructions import REGISTRY, build_spec
from adder.verify.prove import prove
from adder.verify.verdicts import Verdict


def row(name: str, timeout: float) -> str:
    model = compile_spec(build_spec(name))
    t0 = time.perf_counter()
    r = prove(model, name, timeout=timeout)
    secs = time.perf_counter() - t0
    cert = [s.certified_margin for s in r.steps if s.certified_margin is not None]
    samp = [s.sampled_margin for s in r.steps if s.sampled_margin is not None]
    why = "" if r.verdict == Verdict.PROVEN else r.summary().split(": ", 1)[-1].replace("|", "/")
    if r.verdict == Verdict.REFUTED:
        why = f"{r.counterexample['a']} + {r.counterexample['b']} prints {r.counterexample['printed']}"
    layers = sum(isinstance(b.layer, Attention) for b in model.spec.blocks)
    certified = f"{min(cert):.3g}" if cert else "-"
    leaves = sum(s.leaves for s in r.steps)
    return (f"| {name} | {model.spec.dtype} | {layers} | **{r.verdict}** | {timeout:g} | {secs:.1f} | {leaves:,} | "
            f"{certified} | {min(samp):.3g} | {why[:300]} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("names", nargs="*", help="constructions [all]")
    ap.add_argument("--timeout", type=float, default=60.0, help="search budget per construction (s)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    keep_freed_memory()  # as the `adder` command does (cli/heap.py)
    print(f"<!-- bench/prove.py --timeout {args.timeout:g} on {platform.machine()}, torch {torch.__version__}, "
          f"1 thread -->")
    print("| name | dtype | attention layers | verdict | budget (s) | seconds | leaves | certified margin >= | "
          "smallest sampled margin | reason |")
    print("|---|---|---|---|---|---|---:|---|---|---|")
    for name in args.names or sorted(REGISTRY):
        print(row(name, args.timeout), flush=True)


if __name__ == "__main__":
    main()
