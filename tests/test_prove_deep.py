"""`adder prove` on a two-layer model (qwen87): the inner layers' bounds and one step's proof.

Soundness first: every bound the prover derives for the layers below the last attention
(the per-(position, token) lattice and the per-case query residual) must contain the real
residual stream of many random and carry-chain inputs, and a closed step's leaves must sit
at or below the real margins of the inputs they cover. The whole-model proof is `-m slow`.
"""

import numpy as np
import pytest
import torch

from adder.compiler import teacher_forced
from adder.verify.prove import check, prove, read
from adder.verify.prove.automaton import path_of
from adder.verify.prove.certificate import leaf_margins, leaf_of
from adder.verify.prove.inner import bound_inner, last_attention, query_residual
from adder.verify.prove.layers import Ctx
from adder.verify.prove.layout import StepLayout
from adder.verify.prove.search import search_step
from adder.verify.prove.split import root_cases
from adder.verify.prove.weights import ModelWeights

CHAINS = [(9999999999, 1), (4999999999, 5000000001), (1, 9999999999), (5555555555, 4444444445), (0, 0),
          (9999999999, 9999999999), (1234567890, 8765432110)]


def _inputs(n: int, seed: int):
    rng = np.random.default_rng(seed)
    pairs = [(int(a), int(b)) for a, b in rng.integers(0, 10**10, (n, 2))] + CHAINS
    paths = [path_of(a, b) for a, b in pairs]
    return pairs, np.stack([p for p, _ in paths]), np.stack([c for _, c in paths])


@pytest.mark.parametrize("step", [0, 3, 9])
def test_inner_bounds_contain_the_real_residual_stream(compiled, step):
    model = compiled("qwen87")
    mw = ModelWeights(model)
    ctx = Ctx(mw, mw.arithmetic)
    layout = StepLayout(model.spec.format, len(model.spec.vocab), step)
    inner = bound_inner(layout, ctx)
    _, pairs, carries = _inputs(1500, step)
    tokens = layout.tokens_of(pairs, carries)
    cache = {}
    with torch.no_grad():
        model(torch.tensor(tokens), cache=cache)
    h = cache[f"resid.{last_attention(model.spec)}"].double().numpy()  # [N, P, d]
    for p in range(layout.n_pos):
        box = inner.lattice[0, p, tokens[:, p]]
        assert np.all(box.contains(h[:, p])), p
    roots = root_cases(layout)
    idx = np.array([np.flatnonzero(roots.cases.contains(pr, c))[0] for pr, c in zip(pairs, carries)])
    residual, _ = query_residual(inner, layout, roots.cases.take(idx), roots.query_token[idx])
    assert np.all(residual.contains(h[:, layout.t]))


def test_a_two_layer_step_closes_and_its_leaves_lie_below_real_margins(compiled):
    model = compiled("qwen87")
    mw = ModelWeights(model)
    ctx = Ctx(mw, mw.arithmetic)
    fmt = model.spec.format
    step = search_step(model, StepLayout(fmt, len(model.spec.vocab), 0), ctx, deadline=float("inf"))
    assert step.proven and step.leaves > 0 and step.certified_margin > 0
    pairs, _, _ = _inputs(3000, 7)
    a = torch.tensor([x for x, _ in pairs])
    b = torch.tensor([y for _, y in pairs])
    margins = teacher_forced(model, a, b).margin.double().numpy()[:, 0]
    cert = {"steps": [{"step": 0, "roots": step.roots}]}
    _, p, c = _inputs(3000, 7)
    bounds = leaf_margins(cert, fmt, len(model.spec.vocab), 0, p, c)
    assert not np.isnan(bounds).any()
    assert np.all(margins >= bounds), np.min(margins - bounds)
    # the vectorised lookup agrees with the one-input walk
    for i in range(0, len(pairs), 300):
        assert bounds[i] == leaf_of(cert, fmt, len(model.spec.vocab), 0, *pairs[i])["leaf"]["margin"]


@pytest.mark.slow
def test_qwen87_is_proven_and_its_certificate_checks(compiled, tmp_path):
    model = compiled("qwen87")
    path = tmp_path / "qwen87.json"
    report = prove(model, "qwen87", certificate=path, timeout=3000)
    assert report.verdict == "proven", report.summary()
    cert = read(path)
    assert check(cert, model).passed
    # a tampered inner-layer bound (tightened below the truth) fails the check
    rec = cert["steps"][4]["inner"][0]
    lam = np.asarray(rec["lam"], dtype=float)
    lam[np.nanargmax(lam)] *= 0.5  # the largest upper bound, halved
    rec["lam"] = lam.tolist()
    assert not check(cert, model).passed
