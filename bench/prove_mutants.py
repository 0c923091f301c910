"""Soundness by mutation: no broken mutant may ever be proven.

Random single-weight mutants of a construction (a random learned scalar scaled by a factor
drawn log-uniformly in 1 +- [1e-4, 0.3], or its sign flipped), seeded. For each: the
official, carry and chains suites say whether it is broken; `adder prove` (with a budget)
gives a verdict. Prints the counts; a broken mutant that is `proven` (or `conditional`, a
float64 model's proof resting on sampled library checks) would be a soundness bug and is
printed loudly.

    python bench/prove_mutants.py --n 200                 # param40
    python bench/prove_mutants.py qwen87 --n 100 --timeout 30 --broken-only

`--broken-only` gives only the broken mutants to the prover (the soundness question; an
intact two-layer mutant takes minutes to prove) and reports the intact ones as not attempted.
"""

from __future__ import annotations

import argparse
import collections
import random

import torch

from adder.compiler import compile_spec
from adder.constructions import build_spec
from adder.verify.prove import prove
from adder.verify.runner import run_suite
from adder.verify.verdicts import Verdict


def mutant(name: str, rng: random.Random):
    m = compile_spec(build_spec(name))
    keys = [k for k, p in m.named_spec_params() if p.numel()]
    key = rng.choice(keys)
    idx = rng.randrange(m.param(key).numel())
    factor = -1.0 if rng.random() < 0.1 else 1 + rng.choice((-1, 1)) * 10 ** rng.uniform(-4, -0.52)
    with torch.no_grad():
        m.param(key).view(-1)[idx] *= factor
    return m, f"{key}[{idx}] x {factor:.6g}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("name", nargs="?", default="param40")
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=20.0)
    ap.add_argument("--broken-only", action="store_true", help="prove only the mutants a suite breaks")
    args = ap.parse_args()
    torch.set_num_threads(1)
    rng = random.Random(args.seed)
    counts = collections.Counter()
    for i in range(args.n):
        m, what = mutant(args.name, rng)
        broken = sum(run_suite(m, s).failed for s in ("adderboard", "carry", "chains")) > 0
        verdict = "not attempted" if args.broken_only and not broken else \
            prove(m, what, timeout=args.timeout, sampled=False).verdict
        counts[("broken" if broken else "intact", verdict)] += 1
        claimed = verdict in (Verdict.PROVEN, Verdict.CONDITIONAL)  # conditional: proven but for sampled library checks
        flag = f"  <-- UNSOUND: a broken mutant {verdict}" if broken and claimed else ""
        print(f"{i:4d} {what:40s} {'broken' if broken else 'intact':7s} {verdict}{flag}", flush=True)
    print(f"{args.name}, {args.n} mutants, seed {args.seed}: " +
          ", ".join(f"{b} & {v}: {c}" for (b, v), c in sorted(counts.items())))


if __name__ == "__main__":
    main()
