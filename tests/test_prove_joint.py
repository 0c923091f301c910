"""The joint rule for several heads (`verify/prove/joint.py`): its residual box must contain what
the module computes, be narrower than the per-head box where heads read one key each, prove
what the per-head boxes cannot, and never prove a broken mutant.

wonderfall121 (four query heads on one KV head, each reading one digit) is the model the rule
was written for. Its float32 margins are one or two ulps of its logits, which no case split of
this rule closes; compiled in float64 (same weights, another arithmetic) it is proven. In float32
the table rule proves it (tests/test_prove_table.py).
"""

import numpy as np
import pytest
import torch

from adder.verify.prove.automaton import path_of
from adder.verify.prove.floatmodel import REAL
from adder.verify.prove.inner import bound_inner, last_attention
from adder.verify.prove.layers import Ctx, relational
from adder.verify.prove.layout import StepLayout
from adder.verify.prove.propagate import Rows, after_attention, attention
from adder.verify.prove.search import search_step
from adder.verify.prove.split import carry_children, root_cases
from adder.verify.prove.weights import ModelWeights

SAMPLES = 2000


def _inputs():
    gen = torch.Generator().manual_seed(7)
    a = torch.cat([torch.randint(0, 10**10, (SAMPLES,), generator=gen),
                   torch.tensor([9999999999, 4999999999, 1, 0, 9999999999])])
    b = torch.cat([torch.randint(0, 10**10, (SAMPLES,), generator=gen),
                   torch.tensor([1, 5000000001, 9999999999, 0, 9999999999])])
    return a, b


def _carry_cases(layout):
    """The root cases of a step, each split on the carry into the target group (where the rule
    is meant to be tight): cases, query tokens."""
    roots = root_cases(layout)
    j = layout.target_group
    if j == 0 or j >= 10:
        return roots.cases, np.asarray(roots.query_token)
    kids = [carry_children(roots.cases, i, j) for i in range(len(roots.cases))]
    from adder.verify.prove.automaton import Cases
    cases = Cases(np.concatenate([k.mask for k in kids]), np.concatenate([k.final for k in kids]))
    return cases, np.repeat(np.asarray(roots.query_token), 2)


def _boxes(model, k):
    mw = ModelWeights(model)
    ctx = Ctx(mw, mw.arithmetic)
    spec = model.spec
    layout = StepLayout(spec.format, len(spec.vocab), k)
    cases, qtok = _carry_cases(layout)
    block = spec.blocks[last_attention(spec)]
    rows = Rows(np.zeros(len(cases), np.int64), np.full(len(cases), layout.t), qtok)
    hb = attention(bound_inner(layout, ctx).lattice, block, rows, cases, layout, ctx, joint=True)
    boxed = after_attention(hb.out, hb.residual, block.layer, ctx)
    return layout, cases, boxed.meet(hb.after), boxed


@pytest.mark.parametrize("name,dtype", [("wonderfall121", None), ("wonderfall121", "float64"),
                                        ("prasannakotyal116", None)])
def test_the_joint_residual_box_contains_the_module_and_beats_the_head_boxes(compiled, name, dtype):
    model = compiled(name, dtype)
    assert relational(model.spec)
    a, b = _inputs()
    fmt = model.spec.format
    cache = {}
    with torch.no_grad():
        model(torch.cat([fmt.encode(a, b), fmt.answer(a, b)[:, :-1]], dim=1), cache=cache)
    paths = [path_of(int(x), int(y)) for x, y in zip(a, b)]
    pairs, carries = np.stack([p for p, _ in paths]), np.stack([c for _, c in paths])
    narrower = 0
    for k in (0, 3, 10):
        layout, cases, joint, boxed = _boxes(model, k)
        inside = cases.final[:, carries[:, 10]]
        for j in range(10):
            inside &= cases.mask[:, j, pairs[:, j], carries[:, j]]
        assert (inside.sum(0) == 1).all()  # the cases partition the inputs
        case = inside.argmax(0)
        real = cache["resid.1"][:, layout.t].double().numpy()
        lo, hi = joint.lo[case], joint.hi[case]
        assert np.isfinite(lo).all() and np.isfinite(hi).all()
        ok = (real >= lo) & (real <= hi)
        assert ok.all(), (name, k, np.argwhere(~ok)[:3].tolist(), real[~ok][:3], lo[~ok][:3], hi[~ok][:3])
        narrower += int(((joint.hi - joint.lo)[case] < 0.5 * (boxed.hi - boxed.lo)[case]).sum())
        assert len(np.unique(case)) > 10  # many cases met, each box checked against its own inputs
    assert narrower > 0  # the rule does something the head boxes cannot


@pytest.mark.integration
def test_real_arithmetic_proves_a_step_the_head_boxes_could_not(compiled):
    """wonderfall121's step 3 (four heads read a_2, b_2, a_3, b_3) is proven in real arithmetic
    with the joint rule; in float64 too (its float32 margins are a few ulps: the table rule's)."""
    model = compiled("wonderfall121")
    layout = StepLayout(model.spec.format, len(model.spec.vocab), 3)
    import time

    real = search_step(model, layout, Ctx(ModelWeights(model), REAL), time.perf_counter() + 120)
    assert real.proven and real.certified_margin > 0
    m64 = compiled("wonderfall121", "float64")
    mw = ModelWeights(m64)
    f64 = search_step(m64, layout, Ctx(mw, mw.arithmetic), time.perf_counter() + 120)
    assert f64.proven and f64.certified_margin > 0


@pytest.mark.integration
def test_a_broken_multi_head_mutant_is_not_proven(compiled):
    """Soundness on the rule's home ground: O's weight from the a_j head to z scaled by 0.9
    breaks the sum (a suite sees it); the joint rule must not prove the steps it breaks."""
    from adder.compiler import compile_spec
    from adder.compiler.decode import teacher_forced
    from adder.constructions import build_spec

    model = compile_spec(build_spec("wonderfall121"), dtype="float64")
    o = model.param("attn.o_proj")
    with torch.no_grad():
        o[2, 4] *= 0.9
    a, b = _inputs()
    fmt = model.spec.format
    r = teacher_forced(model, a, b)
    broken_steps = torch.nonzero((r.pred != fmt.answer(a, b)).any(0)).flatten().tolist()
    assert broken_steps  # a suite breaks it
    mw = ModelWeights(model)
    import time

    for k in broken_steps[:2]:
        res = search_step(model, StepLayout(fmt, len(model.spec.vocab), k), Ctx(mw, mw.arithmetic),
                          time.perf_counter() + 60)
        assert not res.proven, k


@pytest.mark.integration
def test_fblissjr33_is_decided_and_its_certificate_tampered_fails(compiled, tmp_path):
    """fblissjr33 (three heads, float64) closes at every step with the joint rule and hinge
    pairs; its scores are fixed floats, so the certificate check lists every input softmax's exp
    meets and the library check evaluates each: the verdict is proven. Its certificate
    passes the independent checker (its own joint rule, hinge pairs and bias table) and fails it
    once a case is falsely marked empty, a leaf is opened or a leaf claims a head output of at most
    -1 (they are ~0: the weight sits on the separator, whose value is 0)."""
    import copy

    from adder.verify.prove import prove
    from adder.verify.prove.certificate import check, read
    from adder.verify.verdicts import Verdict

    model = compiled("fblissjr33")
    report = prove(model, "fblissjr33", timeout=300, sampled=False, certificate=tmp_path / "c.json.xz")
    assert report.verdict == Verdict.PROVEN, report.summary()
    assert [(x["fn"], x["listed"], x["exhaustive"]) for x in report.libm] == [("exp", True, True)]
    assert not any("search's bound rules are sound" in a for a in report.assumptions)
    assert all(s.certified_margin > 0 for s in report.steps)
    cert = read(tmp_path / "c.json.xz")
    good = check(cert, model)
    assert good.passed and good.independent, good.reason
    for tamper in ("empty", "open", "forge"):
        bad = copy.deepcopy(cert)
        roots = bad["steps"][4]["roots"]
        i = next(i for i, n in enumerate(roots) if "empty" not in n)
        if tamper == "forge":
            leaf = next(n for n in _leaves(roots[i]))
            lam = np.asarray(leaf["leaf"]["lam"], dtype=float)
            lam[..., 0] = -1.0
            leaf["leaf"]["lam"] = lam.tolist()
        else:
            roots[i] = {"empty": True} if tamper == "empty" else {"open": True}
        assert not check(bad, model).passed, tamper


def _leaves(node):
    if "leaf" in node:
        yield node
    for child in node.get("children", []) or []:
        yield from _leaves(child)


def test_a_one_ulp_margin_is_named_as_the_obstruction(compiled):
    """wonderfall121's float32 margins are a few ulps of its logits: at the single official input
    with step 3's smallest margin, the float32 bound is already negative while real arithmetic's
    is positive; the verdict's reason says so with both numbers."""
    from adder.verify.prove.api import _too_thin, sampled_margins
    from adder.verify.prove.search import point_bound

    model = compiled("wonderfall121")
    mw = ModelWeights(model)
    margins, worst = sampled_margins(model)
    a, b = worst[3]
    assert 0 < margins[3] < 1e-3
    assert point_bound(model, Ctx(mw, REAL), 3, a, b) > 0
    assert point_bound(model, Ctx(mw, mw.arithmetic), 3, a, b) < 0
    assert f"at the single input {a} + {b}" in _too_thin(model, mw, 3, margins, worst)
    assert _too_thin(compiled("param40"), ModelWeights(compiled("param40")), 3, *sampled_margins(compiled("param40"))) == ""


def test_a_coordinate_o_does_not_read_gets_the_convex_bound_and_the_rest_is_unchanged():
    """param40's head writes two coordinates and O reads one. With `only_read` the other gets the
    plain bound max(max v, 0) + ~1e-3 (max |v| + 1), a multiple of 1/1000, with no search; it is
    above Dinkelbach's bound of it, and every other bound, and the residual after O, is exactly
    what the full search gives. The plain bound holds for every convex combination of the values."""
    from adder.constructions import build_spec
    from adder.compiler import compile_spec
    from adder.verify.prove.propagate import unread_bound, unread_coordinates
    model = compile_spec(build_spec("param40"))
    mw = ModelWeights(model)
    ctx = Ctx(mw, mw.arithmetic)
    spec = model.spec
    block = spec.blocks[last_attention(spec)]
    unread = unread_coordinates(block.layer, ctx)
    assert unread.tolist() == [(mw(block.layer.o.weights[0]) == 0).all(0).tolist()] and unread.sum() == 1
    layout = StepLayout(spec.format, len(spec.vocab), 4)
    cases, qtok = _carry_cases(layout)
    rows = Rows(np.zeros(len(cases), np.int64), np.full(len(cases), layout.t), qtok)
    lattice = bound_inner(layout, ctx).lattice
    fast = attention(lattice, block, rows, cases, layout, ctx, only_read=True)
    full = attention(lattice, block, rows, cases, layout, ctx, only_read=False)
    free = unread[None, :, :, None] & np.ones(fast.lam.shape, bool)
    assert np.array_equal(fast.lam[~free], full.lam[~free])
    assert np.all(fast.lam[free] >= full.lam[free]) and np.all(np.round(fast.lam[free] * 1000) == fast.lam[free] * 1000)
    after = [after_attention(hb.out, hb.residual, block.layer, ctx) for hb in (fast, full)]
    assert np.array_equal(after[0].lo, after[1].lo) and np.array_equal(after[0].hi, after[1].hi)
    rng = np.random.default_rng(0)
    v = rng.normal(0, 50, (200, 5, 7))
    p = rng.dirichlet(np.ones(35), 200).reshape(200, 5, 7) * rng.uniform(0.5, 1, (200, 1, 1))  # sum p <= 1
    assert np.all((p * v).sum((1, 2)) < unread_bound(v))


def test_a_head_the_joint_rule_bounds_needs_no_search_and_its_extremes_are_candidates():
    """fblissjr33 (three heads, the joint rule): with `only_read`, a head whose other keys weigh
    rho < u (float64's unit roundoff; here ~1e-35) gets the plain bound (its own box is never
    read: the joint rule's residual box stands in); that residual box is exactly the full
    search's, and the inputs that maximise and minimise each written coordinate come back as
    candidates, each an input of its row's case (where it has one)."""
    from adder.constructions import build_spec
    from adder.compiler import compile_spec
    model = compile_spec(build_spec("fblissjr33"))
    mw = ModelWeights(model)
    ctx = Ctx(mw, mw.arithmetic)
    spec = model.spec
    block = spec.blocks[last_attention(spec)]
    layout = StepLayout(spec.format, len(spec.vocab), 5)
    cases, qtok = _carry_cases(layout)
    rows = Rows(np.zeros(len(cases), np.int64), np.full(len(cases), layout.t), qtok)
    lattice = bound_inner(layout, ctx).lattice
    fast = attention(lattice, block, rows, cases, layout, ctx, joint=True, only_read=True)
    full = attention(lattice, block, rows, cases, layout, ctx, joint=True, only_read=False)
    assert np.array_equal(fast.after.lo, full.after.lo) and np.array_equal(fast.after.hi, full.after.hi)
    free = np.all(fast.lam * 1000 == np.round(fast.lam * 1000), (2, 3))  # [Q, H]: the plain bound
    assert free.any() and np.all(fast.lam >= full.lam)
    assert np.array_equal(fast.lam[~free], full.lam[~free])
    from adder.verify.prove.automaton import count_paths
    pairs, carries, owner = fast.paths
    assert len(owner) >= len(cases)
    inputs = count_paths(cases)
    for i in range(0, len(owner), 7):  # (a case without inputs has no input to give)
        assert inputs[owner[i]] == 0 or cases.take([owner[i]]).contains(pairs[i], carries[i])[0]
