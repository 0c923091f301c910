"""Containment: a proof's leaf bounds must lie at or below the margins the model really has.

For each construction or checkpoint: prove it (writing its certificate), then run 10^5 random inputs plus
the worst case per answer digit of every adversarial suite through the compiled module and
compare, at every answer step, each input's float margin with the certified lower bound of
the leaf that covers it (a step proven by the table rule: of the table row its tokens fall in,
and the full pass's margins too, not only the batched one's). Prints the count of inputs, the smallest slack (margin - bound) and
the number of violations, which must be 0 (a violation would be a soundness bug).

    python bench/prove_containment.py param40 zcbtrak6
    python bench/prove_containment.py --n 100000 --timeout 1200 qwen87 imported/evindor_57p.pt
"""

from __future__ import annotations

import argparse
import platform
import tempfile
from pathlib import Path

import numpy as np
import torch

from adder.compiler import teacher_forced
from adder.constructions.targets import resolve
from adder.verify.cases import ADVERSARIAL
from adder.verify.checker.bounds import Rules
from adder.verify.checker.paths import Positions
from adder.verify.checker.reals import FLOATS
from adder.verify.checker.table import checked_heads, read_union, table
from adder.verify.prove import prove, read
from adder.verify.prove.automaton import path_of
from adder.verify.prove.certificate import leaf_margins
from adder.verify.runner import run_suite
from adder.verify.verdicts import Verdict


def inputs(model, n: int, seed: int) -> list[tuple[int, int]]:
    rng = np.random.default_rng(seed)
    pairs = [(int(a), int(b)) for a, b in rng.integers(0, 10**10, (n, 2))]
    for suite in ADVERSARIAL:
        pairs += [tuple(c) for c in run_suite(model, suite, seed=seed).worst_case if c]
    return pairs


def contain(name: str, n: int, seed: int, timeout: float, out: Path) -> str:
    target = resolve(name)
    model = target.model()
    cert_path = out / f"{target.name}.json"
    report = prove(model, name, certificate=cert_path, timeout=timeout, sampled=False)
    if report.verdict not in (Verdict.PROVEN, Verdict.CONDITIONAL):  # conditional: a float64 proof, sampled exp
        return f"| {name} | {report.verdict} | - | - | - |"
    cert, fmt = read(cert_path), model.spec.format
    pairs = inputs(model, n, seed)
    paths = [path_of(a, b) for a, b in pairs]
    p = np.stack([x for x, _ in paths])
    c = np.stack([y for _, y in paths])
    margins, full, tokens = [], [], []
    tabled = any("table" in st for st in cert["steps"])
    for s in range(0, len(pairs), 8192):
        a = torch.tensor([x for x, _ in pairs[s:s + 8192]])
        b = torch.tensor([y for _, y in pairs[s:s + 8192]])
        with torch.no_grad():
            margins.append(teacher_forced(model, a, b).margin.double().numpy())
            if tabled:
                seq = torch.cat([fmt.encode(a, b), fmt.answer(a, b)[:, :-1]], 1)
                logits, y = model(seq)[:, -fmt.out_digits:], fmt.answer(a, b)
                other = logits.scatter(-1, y[..., None], float("-inf")).amax(-1)
                full.append((logits.gather(-1, y[..., None])[..., 0] - other).double().numpy())
                tokens.append(seq.numpy())
    margins = np.concatenate(margins)
    slack, bad = np.inf, 0
    for k in range(fmt.out_digits):
        st = cert["steps"][k]
        if "table" in st:
            bound = table_bounds(model, k, st["table"]["heads"], np.concatenate(tokens))
            for m in (margins[:, k], np.concatenate(full)[:, k]):
                slack = min(slack, float((m - bound).min()))
                bad += int((m < bound).sum())
            continue
        bound = leaf_margins(cert, fmt, len(model.spec.vocab), k, p, c)
        if np.isnan(bound).any():
            return f"| {name} | {report.verdict} | {len(pairs):,} | inputs outside every leaf at step {k} | ? |"
        slack = min(slack, float((margins[:, k] - bound).min()))
        bad += int((margins[:, k] < bound).sum())
    return f"| {name} | {report.verdict} | {len(pairs):,} | {slack:.3g} | {bad} |"


def table_bounds(model, k: int, heads: list, tokens: np.ndarray) -> np.ndarray:
    """Each input's bound at a step the table rule proved: its row's, found by its tokens."""
    pos = Positions(model.spec.format, k)
    rules = Rules(model, FLOATS[str(model.dtype).replace("torch.", "")])
    t = table(rules, pos, checked_heads(rules, pos, heads))
    index = {tuple(row): i for i, row in enumerate(t.tokens.tolist())}
    return t.margin[[index[tuple(x)] for x in tokens[:, [pos.t] + read_union(heads)].tolist()]]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("names", nargs="+", help="construction names or checkpoint paths")
    ap.add_argument("--n", type=int, default=100_000, help="random inputs per construction")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=1200.0, help="proof budget per construction (s)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    print(f"<!-- bench/prove_containment.py --n {args.n} --seed {args.seed} on {platform.machine()}, "
          f"torch {torch.__version__} -->")
    print("| name | verdict | inputs (random + adversarial worst) | smallest margin - bound | violations |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.names:
            print(contain(name, args.n, args.seed, args.timeout, Path(tmp)), flush=True)


if __name__ == "__main__":
    main()
