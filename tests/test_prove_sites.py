"""Soundness site by site: for one-layer models, the prover's bounds of each root case contain
the module's own activations at every named site of the query row, not only at the margin.

At answer step k the query row t reads the residual there (`resid.0`, the lattice box), the
attention block's output (`blocks.0.attn.out`: the Dinkelbach box of the head outputs through
O, rounded), the residual after it (`resid.1`), the MLP's hidden units (`blocks.1.mlp.hidden`)
and the residual after the MLP (`resid.2`). Each sampled input is checked against the bound of
the root case that holds it, in the model's own float arithmetic.
"""

import numpy as np
import pytest
import torch

from adder.compiler import load
from adder.verify.prove.automaton import path_of
from adder.verify.prove.floatmodel import rounded
from adder.verify.prove.inner import bound_inner, last_attention
from adder.verify.prove.layers import Ctx, activation, linear, norm
from adder.verify.prove.layout import StepLayout
from adder.verify.prove.propagate import Rows, after_attention, attention, mlp_block
from adder.verify.prove.split import root_cases
from adder.verify.prove.weights import ModelWeights

#: Sampled inputs per model, besides the carry-chain and boundary cases below.
SAMPLES = 3000
EXTRA = [(9999999999, 1), (4999999999, 5000000001), (1, 9999999999), (0, 0), (5193798811, 1806201129),
         (9999999999, 9999999999), (1234567890, 8765432109)]
STEPS = (0, 1, 5, 9, 10)


def _inputs():
    gen = torch.Generator().manual_seed(11)
    a = torch.cat([torch.randint(0, 10**10, (SAMPLES,), generator=gen), torch.tensor([x for x, _ in EXTRA])])
    b = torch.cat([torch.randint(0, 10**10, (SAMPLES,), generator=gen), torch.tensor([y for _, y in EXTRA])])
    return a, b


def _case_bounds(model, k):
    """Per root case of step k: the interval at each site of the query row."""
    mw = ModelWeights(model)
    ctx = Ctx(mw, mw.arithmetic)
    spec = model.spec
    layout = StepLayout(spec.format, len(spec.vocab), k)
    roots = root_cases(layout)
    inner = bound_inner(layout, ctx)
    block = spec.blocks[last_attention(spec)]
    C = len(roots.cases)
    rows = Rows(np.zeros(C, np.int64), np.full(C, layout.t), np.asarray(roots.query_token))
    hb = attention(inner.lattice, block, rows, roots.cases, layout, ctx)
    out = linear(hb.out, block.layer.o, ctx)
    resid1 = after_attention(hb.out, hb.residual, block.layer, ctx)
    m = spec.blocks[1].layer
    x = norm(resid1, spec.blocks[1].norm, ctx)
    u = linear(x, m.up, ctx)
    hidden = rounded(activation(linear(x, m.gate, ctx), m.act, ctx) * u, ctx.ar) if m.gate is not None \
        else activation(u, m.act, ctx)
    resid2 = mlp_block(resid1, spec.blocks[1], ctx)
    return layout, roots, {"resid.0": hb.residual, "blocks.0.attn.out": out, "resid.1": resid1,
                           "blocks.1.mlp.hidden": hidden, "resid.2": resid2}


@pytest.mark.parametrize("name", ["param40", "lokimorty10", "micro57-proven"])
def test_every_site_of_the_query_row_lies_in_its_case_bound(compiled, name):
    model = load("train/reference/micro57-proven.pt") if name == "micro57-proven" else compiled(name)
    assert [type(b.layer).__name__ for b in model.spec.blocks] == ["Attention", "MLP"]
    a, b = _inputs()
    fmt = model.spec.format
    tokens = torch.cat([fmt.encode(a, b), fmt.answer(a, b)[:, :-1]], dim=1)
    cache = {}
    with torch.no_grad():
        model(tokens, cache=cache)
    paths = [path_of(int(x), int(y)) for x, y in zip(a, b)]
    pairs, carries = np.stack([p for p, _ in paths]), np.stack([c for _, c in paths])
    checked = 0
    for k in STEPS:
        layout, roots, bounds = _case_bounds(model, k)
        inside = roots.cases.final[:, carries[:, 10]]
        for j in range(10):
            inside &= roots.cases.mask[:, j, pairs[:, j], carries[:, j]]
        assert inside.sum(0).tolist() == [1] * len(a)  # every input in exactly one root case
        case = inside.argmax(0)
        for site, box in bounds.items():
            real = cache[site][:, layout.t].double().numpy()  # [N, width] at the query row
            lo, hi = box.lo[case], box.hi[case]
            assert np.isfinite(lo).all() and np.isfinite(hi).all(), (name, k, site)  # a bound, not the whole line
            ok = (real >= lo) & (real <= hi)
            assert ok.all(), (name, k, site, np.argwhere(~ok)[:3].tolist(), real[~ok][:3], lo[~ok][:3], hi[~ok][:3])
            checked += ok.size
    assert checked > 0


def test_a_narrowed_bound_is_caught(compiled):
    """The check is not vacuous: a site bound narrowed to half its width around its centre misses real
    activations of param40 (the attention output is spread across its case's inputs)."""
    model = compiled("param40")
    a, b = _inputs()
    fmt = model.spec.format
    cache = {}
    with torch.no_grad():
        model(torch.cat([fmt.encode(a, b), fmt.answer(a, b)[:, :-1]], dim=1), cache=cache)
    layout, roots, bounds = _case_bounds(model, 5)
    paths = [path_of(int(x), int(y)) for x, y in zip(a, b)]
    pairs, carries = np.stack([p for p, _ in paths]), np.stack([c for _, c in paths])
    inside = roots.cases.final[:, carries[:, 10]]
    for j in range(10):
        inside &= roots.cases.mask[:, j, pairs[:, j], carries[:, j]]
    box = bounds["blocks.0.attn.out"]
    mid, half = (box.lo + box.hi) / 2, (box.hi - box.lo) / 4
    real = cache["blocks.0.attn.out"][:, layout.t].double().numpy()
    case = inside.argmax(0)
    assert ((real < (mid - half)[case]) | (real > (mid + half)[case])).any()
