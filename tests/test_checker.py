"""The independent certificate checker (`adder.verify.checker`), the trusted base of a proof.

It must (1) stay independent: no import from the search; (2) accept what the search proved;
(3) reject every certificate that does not establish its claim: a shrunk bound, a missing
child, an open or falsely empty case, other weights; (4) catch a bug planted in a search rule
that lets the search "prove" a broken model; (5) bound what float32 torch really computes.
"""

import ast
import copy
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from adder.compiler.checkpoint import weights_hash
from adder.constructions.targets import resolve
from adder.verify import checker
from adder.verify.api import official_suite
from adder.verify.checker.bounds import Rules, after_attention, heads, last_attention, residual_margin, tail_margin
from adder.verify.checker.inner import before_last
from adder.verify.checker.check import Rejected, check_step
from adder.verify.checker.paths import Positions, has_input, max_over_paths, roots
from adder.verify.prove.automaton import path_of
from adder.verify.checker.reals import FLOATS, Box, exp_box, exp_points, lower, upper
from adder.verify.prove import propagate
from adder.verify.prove.layers import Ctx
from adder.verify.prove.pipeline import cuts_residual
from adder.verify.prove.layout import StepLayout
from adder.verify.prove.search import search_step
from adder.verify.prove.weights import ModelWeights

CHECKER = Path(checker.__file__).parent
RNG = np.random.default_rng(0)


def _imports(path: Path) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(0, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            out.append((node.level, node.module or ""))
        elif isinstance(node, ast.Call) and getattr(node.func, "id", "") == "__import__":
            out.append((0, ast.literal_eval(node.args[0])))
    return out


def test_the_checker_imports_nothing_from_the_search():
    """Within the package, numpy, torch, flint, the standard library and adder.compiler only."""
    files = sorted(CHECKER.glob("*.py"))
    assert {f.name for f in files} >= {"__init__.py", "reals.py", "paths.py", "bounds.py", "inner.py", "check.py"}
    for f in files:
        for level, name in _imports(f):
            if level == 1:
                continue  # the checker's own modules
            if level == 3:  # from ...X: adder.X
                assert name.split(".")[0] == "compiler", f"{f.name} imports adder.{name}"
                continue
            assert level == 0, f"{f.name} imports {'.' * level}{name}"
            assert name.split(".")[0] in {"__future__", "dataclasses", "fractions", "functools", "itertools", "math", "time", "numpy", "torch",
                                            "flint"}, \
                f"{f.name} imports {name}"


def _search(model, k, ctx=None):
    mw = ModelWeights(model)
    res = search_step(model, StepLayout(model.spec.format, len(model.spec.vocab), k), ctx or Ctx(mw, mw.arithmetic),
                      time.perf_counter() + 120)
    return res, res.record()


def _check(model, step: dict) -> int:
    with np.errstate(all="ignore"):
        return check_step(Rules(model, FLOATS[str(model.dtype).replace("torch.", "")]), model.spec.format, step)


@pytest.fixture(scope="module")
def param40():
    return resolve("param40").model()


@pytest.fixture(scope="module")
def step3(param40):
    res, step = _search(param40, 3)
    assert res.open_inputs == 0 and res.leaves > 100
    return step


def _nodes(node, kind):
    if kind in node:
        yield node
    for child in node.get("children", []):
        yield from _nodes(child, kind)


def test_a_search_certificate_passes_step_by_step(param40, step3):
    assert _check(param40, step3) == sum(1 for r in step3["roots"] for _ in _nodes(r, "leaf"))
    _, last = _search(param40, 10)
    assert _check(param40, last) > 0


@pytest.mark.parametrize("tamper", ["shrink lam", "drop a child", "open a leaf", "empty a case", "bad tree", "short lam"])
def test_a_tampered_certificate_is_rejected(param40, step3, tamper):
    step = copy.deepcopy(step3)
    leaf = step["roots"][0]
    assert "leaf" in leaf
    if tamper == "shrink lam":
        lam = np.asarray(leaf["leaf"]["lam"], dtype=np.float64)
        lam.ravel()[0] -= 1e-4 * abs(lam.ravel()[0]) + 1e-9
        leaf["leaf"]["lam"] = lam.tolist()
    elif tamper == "drop a child":  # a split of the leaf's case on group 5, one child short
        copy_ = copy.deepcopy(leaf)
        leaf.clear()
        leaf.update({"split": 5, "children": [copy.deepcopy(copy_) for _ in range(99)]})
    elif tamper == "open a leaf":
        leaf.clear()
        leaf["open"] = True
    elif tamper == "empty a case":
        leaf.clear()
        leaf["empty"] = True
    elif tamper == "bad tree":
        leaf["leaf"]["tree"] = [7, None, None]
    else:
        leaf["leaf"]["lam"] = np.ravel(leaf["leaf"]["lam"])[:3].tolist()
    with pytest.raises(Rejected):
        _check(param40, step)


def test_a_refined_leaf_passes_when_its_split_lists_every_child(param40, step3):
    """A leaf's bound holds on any part of its case, so the leaf copied under a split on a
    group (one child per allowed pair: 100 here) is still a proof; 99 children are not."""
    step = copy.deepcopy(step3)
    root = step["roots"][0]
    assert "leaf" in root
    leaf = copy.deepcopy(root)
    root.clear()
    root.update({"split": 5, "children": [copy.deepcopy(leaf) for _ in range(100)]})
    assert _check(param40, step) == _check(param40, step3) + 99


def test_the_search_cuts_the_residual_where_o_writes_few_coordinates_and_the_checker_follows_the_step():
    """wonderfall27's head writes one number and its negative, and O reads their difference into one
    residual coordinate: its step's trees cut the residual after the attention ("cut": "residual"),
    and the root cases close without any split. tinyadder36's one head output is spread over 16
    coordinates: its trees would cut the head output. The checker re-verifies the step as recorded,
    and rejects it read as head-output trees or with a cut it does not know."""
    model = resolve("wonderfall27").model()
    mw = ModelWeights(model)
    assert cuts_residual(Ctx(mw, mw.arithmetic))
    deep = resolve("tinyadder36").model()
    assert not cuts_residual(Ctx(ModelWeights(deep), ModelWeights(deep).arithmetic))
    res, step = _search(model, 3)
    assert step["cut"] == "residual" and res.proven
    assert all("leaf" in node or "empty" in node for node in step["roots"])  # no case needed a split
    assert _check(model, step) == res.leaves
    for cut in ("heads", "diagonal"):
        with pytest.raises(Rejected):
            _check(model, {**step, "cut": cut})


def test_an_o_chain_that_only_picks_counts_as_one_matrix_for_the_joint_rule():
    """qwen148 writes O as [1 0 1 0] then e_4: the chain rounds like its product (qwen87's one O),
    so the joint rule applies, in the search (`layers.joint_o`) and in the checker (`joint.joint_o`)
    alike. A later matrix that scales (2 instead of 1) rounds again: neither applies the rule."""
    from adder.verify.checker.joint import joint_o as checker_o
    from adder.verify.prove.layers import joint_o as search_o

    model = resolve("qwen148").model()
    rules = Rules(model, FLOATS["float32"])
    O = checker_o(rules)
    assert O is not None and np.array_equal(O, search_o(ModelWeights(model)))
    assert np.array_equal(O, checker_o(Rules(resolve("qwen87").model(), FLOATS["float32"])))
    att = model.spec.blocks[last_attention(model.spec)].layer
    with torch.no_grad():
        model.weights()[id(att.o.weights[1])][4, 0] = 2.0
    assert checker_o(Rules(model, FLOATS["float32"])) is None and search_o(ModelWeights(model)) is None


def test_other_weights_or_arithmetic_fail_the_whole_check(param40):
    cert = {"weights_sha256": weights_hash(param40), "dtype": "float32", "arithmetic": "real", "steps": []}
    assert not checker.check(cert, param40).passed
    cert["weights_sha256"] = "0" * 64
    r = checker.check(cert, param40)
    assert not r.passed and "other weights" in r.reason


def test_models_outside_its_rules_are_named_not_failed():
    with pytest.raises(checker.NotCheckable, match="softmax1 attention"):
        checker.check({}, resolve("tinyadder36").model())


def test_a_bug_planted_in_a_search_rule_proves_a_broken_mutant_and_the_checker_rejects_it(monkeypatch):
    """The planted bug: the search's margin rule is off by +1 (a sign or constant slip). The
    mutant: param40 with digit 9's embedding (tied to its unembedding row) grown by 1e-6, which
    breaks ~15% of the official cases. The buggy search closes every case of step 0; the checker,
    which shares no rule with it, finds a box where the margin is not positive."""
    mutant = resolve("param40").model()
    with torch.no_grad():
        mutant.param("embed")[9] *= 1 + 1e-6
    assert official_suite(mutant).passed < 10_010  # broken
    honest, _ = _search(mutant, 0)
    assert honest.open_inputs > 0 or honest.counterexample  # the sound search does not prove it
    margin_lower = propagate.margin_lower
    monkeypatch.setattr(propagate, "margin_lower", lambda h, target, ctx: margin_lower(h, target, ctx) + 1.0)
    res, step = _search(mutant, 0)
    assert res.open_inputs == 0 and res.counterexample is None  # the buggy search "proves" step 0
    with pytest.raises(Rejected, match="margin is not positive"):
        _check(mutant, step)


# ---------------------------------------------------------------------------- its rules against torch
def _ratio_bound(e_lo, e_hi, w):
    """max over e in [e_lo, e_hi] of sum e w / sum e for one input (bisection on G(lam) <= 0)."""
    lo, hi = w.min(), w.max()
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if (np.where(w >= mid, e_hi, e_lo) * (w - mid)).sum() <= 0:
            hi = mid
        else:
            lo = mid
    return hi + 1e-12 * (abs(hi) + np.abs(w).max())


def _single_path(a: int, b: int) -> tuple[np.ndarray, np.ndarray]:
    """The case holding exactly the input (a, b)."""
    pairs, carries = path_of(a, b)
    mask = np.zeros((10, 100, 2), bool)
    mask[np.arange(10), pairs, carries[:10]] = True
    return mask, np.arange(2) == carries[10]


def _one_input(model, pos: Positions, before, k: int):
    """A random input run through the module at step k: (a, b, target, the module's margin, its
    activation cache, the checker's query rows (residual, normed) for the case of that one input,
    the input's tokens, mask, final)."""
    fmt = model.spec.format
    a, b = (int(x) for x in RNG.integers(0, 10**10, 2))
    tokens = torch.cat([fmt.encode(a, b)[0], fmt.answer(a, b)[0, :k]])[None]
    cache: dict = {}
    with torch.no_grad():
        logits = model(tokens, cache=cache)[0, -1].double().numpy()
    toks = tokens[0].numpy()
    mask, final = _single_path(a, b)
    residual, normed = before.query_rows(pos, toks[-1:], mask[None], final[None])
    target = int(fmt.answer(a, b)[0, k])
    margin = logits[target] - np.delete(logits, target).max()
    return a, b, target, margin, cache, residual, normed, toks, mask, final


def _head_box(hd, toks) -> Box:
    """[1, H * vd]: the head outputs' box for the one path `toks`, each ratio maximised by bisection."""
    p = np.arange(len(toks))
    e_lo, e_hi = hd.e.lo[0][:, p, toks], hd.e.hi[0][:, p, toks]  # [H, P] (0 at dead keys)
    v_lo, v_hi = hd.v.lo[:, :, p, toks], hd.v.hi[:, :, p, toks]  # [H, vd, P]
    H, vd = v_lo.shape[:2]
    up = np.array([[_ratio_bound(e_lo[h], e_hi[h], v_hi[h, c]) for c in range(vd)] for h in range(H)])
    down = np.array([[-_ratio_bound(e_lo[h], e_hi[h], -v_lo[h, c]) for c in range(vd)] for h in range(H)])
    return Box((down - hd.slack[0]).reshape(1, -1), (up + hd.slack[0]).reshape(1, -1))


@pytest.mark.parametrize("name,steps,n", [("param40", (0, 4, 10), 6), ("kswain98_2p", (0, 4, 10), 6),
                                          ("wonderfall27", (0, 5, 10), 6),
                                          pytest.param("qwen87", (0, 9), 3, marks=pytest.mark.integration)])
def test_the_checker_rules_contain_what_float32_torch_computes(name, steps, n):
    """Random inputs at several steps: the residual before the last attention lies in the box the
    checker's layers give for the case of that one input; the module's attention output (after
    o), run by torch, lies in the box its tables give, and the residual after the attention in
    the box `after_attention` gives; its float margin is at least the checker's margin bound over
    either box. Two-layer models re-verify the search's inner-layer records."""
    model = resolve(name).model()
    last = last_attention(model.spec)
    att = model.spec.blocks[last].layer
    rules = Rules(model, FLOATS["float32"])
    for k in steps:
        pos = Positions(model.spec.format, k)
        _, step = _search(model, k) if last > 0 else (None, {"inner": []})
        with np.errstate(all="ignore"):
            before = before_last(rules, pos, step["inner"], f"step {k}")
        for _ in range(n):
            a, b, target, margin, cache, residual, normed, toks, _, _ = _one_input(model, pos, before, k)
            real = cache[f"resid.{last}"][0, -1].double().numpy()
            assert ((residual.lo[0] <= real) & (real <= residual.hi[0])).all(), (k, a, b)
            with np.errstate(all="ignore"):
                box = _head_box(heads(rules, att, before.keys, normed, np.array([pos.t]), pos), toks)
            out = cache[f"blocks.{last}.attn.out"][0, -1].double().numpy()
            o = rules.linear(box, att.o)
            assert ((o.lo[0] <= out) & (out <= o.hi[0])).all(), (k, a, b)
            assert tail_margin(rules, box, residual, np.array([target]))[0] <= margin, (k, a, b)
            after = after_attention(rules, box, residual)
            real_after = cache[f"resid.{last + 1}"][0, -1].double().numpy()
            assert ((after.lo[0] <= real_after) & (real_after <= after.hi[0])).all(), (k, a, b)
            assert residual_margin(rules, after, np.array([target]))[0] <= margin, (k, a, b)


def test_fixed_scores_are_the_modules_floats_and_list_every_input_softmaxs_exp_meets():
    """fblissjr33's scores do not depend on the residual (Q = K = 0, an ALiBi-like bias table):
    the checker takes them as the module's floats (`fixed_scores`), so softmax's exp meets only
    the floats fl(s_j - m_f) it lists for the library check. For 200 random inputs at every
    step, each query row's scores equal the module's, and every shifted score the module's
    softmax meets is in the list; param40 (Q and K read the residual) lists none."""
    model = resolve("fblissjr33").model()
    att = model.spec.blocks[0].layer
    rules = Rules(model, FLOATS["float64"])
    fmt = model.spec.format
    for k in range(fmt.out_digits):
        pos = Positions(fmt, k)
        with np.errstate(all="ignore"):
            before = before_last(rules, pos, [], f"step {k}")
            a, b, *_, cache, _, normed, toks, _, _ = _one_input(model, pos, before, k)
            hd = heads(rules, att, before.keys, normed, np.array([pos.t]), pos)
        scores = cache["blocks.0.attn.scores"][0, :, -1].numpy()  # [H, T]: the query row, as the module computed it
        live = hd.live[0][:, np.arange(len(toks)), toks]  # [H, T]
        assert np.array_equal(hd.s.lo[0][:, np.arange(len(toks)), toks][live], scores[live])
        assert np.array_equal(np.isfinite(scores), live)
    listed = rules.points["exp"]
    assert listed is not None and 0 < len(listed) < 100 and listed.max() == 0
    xs = [fmt.encode(*(int(x) for x in RNG.integers(0, 10**10, 2)))[0] for _ in range(200)]
    tokens = torch.stack([torch.cat([x, torch.zeros(fmt.out_digits - 1, dtype=x.dtype)]) for x in xs])
    cache = {}
    with torch.no_grad():
        model(tokens, cache=cache)
    rows = cache["blocks.0.attn.scores"][:, :, len(xs[0]) - 1:]  # every answer step's query row
    shifted = (rows - rows.max(-1, keepdim=True).values).numpy()
    assert np.isin(shifted[np.isfinite(shifted)], listed).all()
    other = resolve("param40").model()
    plain = Rules(other, FLOATS["float32"])
    pos = Positions(other.spec.format, 3)
    with np.errstate(all="ignore"):
        before = before_last(plain, pos, [], "step 3")
        _, _, *_, _, _, normed, _, _, _ = _one_input(other, pos, before, 3)
        heads(plain, other.spec.blocks[0].layer, before.keys, normed, np.array([pos.t]), pos)
    assert plain.points["exp"] is None and "exp" in plain.ranges


@pytest.mark.parametrize("name,steps,n", [("fblissjr33", (0, 3, 10), 5), ("wonderfall121", (0, 5, 10), 4),
                                          ("cosminscn66", (1, 6), 4),
                                          pytest.param("qwen87", (2, 7), 4, marks=pytest.mark.integration),
                                          pytest.param("qwen148", (5,), 4, marks=pytest.mark.integration)])
def test_the_checkers_joint_residual_contains_what_torch_computes(name, steps, n):
    """Several heads in the last attention (`checker/joint.py`; fblissjr33 also an attention bias
    table and hinge pairs; qwen87 two layers, its keys the inner layer's lattice, re-verified from
    the search's records): for random single inputs, the residual after the attention lies in the
    box the joint rule gives (met with x + O out), and the margin bound over that box is at most
    the module's own margin."""
    from adder.verify.checker.bounds import residual_margin
    from adder.verify.checker.joint import relational, residual_box

    model = resolve(name).model()
    last = last_attention(model.spec)
    att = model.spec.blocks[last].layer
    rules = Rules(model, FLOATS[str(model.dtype).replace("torch.", "")])
    assert relational(rules)
    for k in steps:
        pos = Positions(model.spec.format, k)
        _, step = _search(model, k) if last > 0 else (None, {"inner": []})
        with np.errstate(all="ignore"):
            before = before_last(rules, pos, step["inner"], f"step {k}")
        for _ in range(n):
            a, b, target, margin, cache, residual, normed, toks, mask, final = _one_input(model, pos, before, k)
            with np.errstate(all="ignore"):
                hd = heads(rules, att, before.keys, normed, np.array([pos.t]), pos)
                box = residual_box(rules, hd.s, hd.v, hd.live, _head_box(hd, toks), residual, pos, mask[None],
                                   final[None])
                bound = residual_margin(rules, box, np.array([target]))[0]
            real = cache[f"resid.{last + 1}"][0, -1].double().numpy()
            assert ((box.lo[0] <= real) & (real <= box.hi[0])).all(), (k, a, b, box, real)
            assert bound <= margin, (k, a, b)


def test_the_automaton_maximum_matches_brute_force_on_small_cases():
    """max_over_paths against enumeration, on cases that leave only two pairs free per group."""
    for _ in range(5):
        groups = RNG.normal(size=(1, 10, 100, 2))
        top = RNG.normal(size=(1, 2))
        mask = np.zeros((10, 100, 2), bool)
        for j in range(10):
            mask[j, RNG.choice(100, 2, replace=False)] = True
        final = np.ones(2, bool)
        best = -np.inf
        for bits in range(1 << 10):
            pairs = [np.flatnonzero(mask[j].any(1))[(bits >> j) & 1] for j in range(10)]
            c, total = 0, 0.0
            for j, pr in enumerate(pairs):
                total += groups[0, j, pr, c]
                c = int(pr // 10 + pr % 10 + c >= 10)
            best = max(best, total + top[0, c])
        got = max_over_paths(groups, top, mask[None], final[None])[0]
        assert got == best  # the largest path sum as float64 computes it, in the same order
        assert has_input(mask, final)


def test_max_sum_bounds_the_exact_sums_where_float_sums_cancel():
    """Positions.max_sum adds in plain float64 and bounds the rounding once per path: it must hold
    the *exact* largest sum (math.fsum, per enumerated input) with terms of both signs from 1e-3 to
    1e16, where the plain float sum does lose whole units."""
    import math
    pos = Positions(resolve("param40").model().spec.format, 4)
    mask = np.zeros((10, 100, 2), bool)
    mask[:2] = True
    mask[2:, 0, :] = True  # groups 2..9 hold the pair (0, 0): the inputs are a, b < 100
    final = np.ones(2, bool)
    inputs = [(a, b) for a in range(100) for b in range(100)]
    tokens = np.array([[_token_at(pos, slot, a, b) for slot in pos.slots] for a, b in inputs])
    below = 0
    for seed in range(4):
        rng = np.random.default_rng(seed)
        terms = rng.choice([-1, 1], (1, len(pos.slots), 10)) * 10.0 ** rng.uniform(-3, 16, (1, len(pos.slots), 10))
        exact = max(math.fsum(terms[0, np.arange(len(pos.slots)), row]) for row in tokens)
        bound = pos.max_sum(terms, mask[None], final[None])[0]
        fixed, groups, top = pos.group_sums(terms)
        plain = (fixed + max_over_paths(groups, top, mask[None], final[None]))[0]
        assert exact <= bound <= exact + 1e-12 * np.abs(terms).max(-1).sum()
        below += plain < exact
    assert below  # the unbounded float sum does fall below the exact one: the slack is needed


def _token_at(pos, slot, a, b):
    kind, x = slot
    if kind == "fixed":
        return x
    digit = {"a": a, "b": b, "s": a + b}[kind] // 10**x % 10
    return int(pos.tokens[digit])


def _every_kind_of_float():
    """Zeros, subnormals, the normal range's edges and powers of two (where the spacing halves),
    random floats of every exponent, the largest float and infinities, both signs."""
    rng = np.random.default_rng(3)
    special = [0.0, 5e-324, 1e-320, 2.0**-1022, 2.0**-1022 - 5e-324, 2.0**-971, 2.0**-970, 1.0, 2.0, 3.0,
               2.0**60, 2.0**1023, np.finfo(float).max, np.inf]
    spread = 2.0 ** rng.uniform(-1074, 1023, 20_000) * rng.uniform(1, 2, 20_000)
    x = np.concatenate([special, spread, np.nextafter(np.array(special[1:-1]), 0)])
    return np.concatenate([x, -x])


def test_the_checker_steps_outward_at_least_as_far_as_nextafter():
    """The checker's `upper`/`lower` (x +- (|x| 2^-52 + 2^-1074)) against np.nextafter: never
    less than one float, never more than two (for |x| >= 2^-970); an overflowed infinity comes back to the largest
    float; NaN stays NaN; 0-d in, scalar out."""
    x = _every_kind_of_float()
    with np.errstate(over="ignore"):
        up_, down_ = np.nextafter(x, np.inf), np.nextafter(x, -np.inf)
        assert np.all(upper(x) >= up_) and np.all(lower(x) <= down_)
        fin = np.isfinite(up_) & np.isfinite(down_) & (np.abs(x) >= 2.0**-970)  # below, up to three floats
        assert np.all(upper(x)[fin] <= np.nextafter(up_[fin], np.inf))
        assert np.all(lower(x)[fin] >= np.nextafter(down_[fin], -np.inf))
    assert upper(-np.inf) == -np.finfo(float).max and lower(np.inf) == np.finfo(float).max
    assert np.isnan(upper(np.nan)) and np.isnan(lower(np.nan))
    few = x[:: len(x) // 200][:200]  # a short array takes nextafter itself
    with np.errstate(over="ignore"):
        assert np.array_equal(upper(few), np.nextafter(few, np.inf)) and np.array_equal(lower(few), np.nextafter(few, -np.inf))
    assert isinstance(upper(1.0), np.float64) and upper(1.0) == np.nextafter(1.0, 2.0)


def test_the_checker_exp_contains_the_exact_exp_and_stays_tight():
    """exp_points (two arb tables and a Taylor polynomial, no libm) against mpmath at 200 bits:
    random points over exp's whole float64 range and the edges (underflow, overflow, the table's
    joints, subnormal arguments); within 32 ulps where exp is a normal float; exp_box of an
    interval is its ends'."""
    import mpmath
    mpmath.mp.prec = 200
    rng = np.random.default_rng(5)
    edges = [0.0, 5e-324, 1e-300, 1 / 256, 255 / 256, 1 - 2.0**-53, 708.39, 709.7827128933840, 709.79, 710.0,
             745.1, 746.0, 746.0001, 800.0, 1e308]
    x = np.concatenate([rng.uniform(-800, 720, 4000), rng.uniform(-1, 1, 2000), rng.normal(0, 1e-12, 500),
                        edges, -np.array(edges)])
    box = exp_points(x)
    for xi, lo, hi in zip(x.tolist(), box.lo.tolist(), box.hi.tolist()):
        exact = mpmath.exp(mpmath.mpf(xi))
        assert mpmath.mpf(lo) <= exact <= mpmath.mpf(hi), (xi, lo, hi)
        if 1e-300 < exact < 1e300:
            assert (hi - lo) <= 32 * np.spacing(lo), (xi, lo, hi)
    inf = exp_points(np.array([np.inf, -np.inf, np.nan]))
    assert inf.lo.tolist() == [np.finfo(float).max, 0.0, 0.0] and inf.hi.tolist() == [np.inf, 0.0, np.inf]
    b = exp_box(Box(np.array([-1.0, 2.0]), np.array([0.5, 3.0])))
    assert np.all(b.lo == exp_points(np.array([-1.0, 2.0])).lo) and np.all(b.hi == exp_points(np.array([0.5, 3.0])).hi)


def test_the_checker_silu_contains_the_exact_silu():
    """silu at points from exp_points (no arb per point) against mpmath, from -800 to 800, and
    its limits: silu(-inf) -> 0, silu(inf) = inf, NaN -> everything."""
    import mpmath
    from adder.verify.checker.bounds import ACTIVATIONS
    mpmath.mp.prec = 200
    at = ACTIVATIONS["silu"]()[0]
    rng = np.random.default_rng(6)
    x = np.concatenate([rng.uniform(-800, 800, 2000), rng.normal(0, 3, 2000), [0.0, 5e-324, -5e-324, -745.5, 40.0]])
    box = at(x)
    for xi, lo, hi in zip(x.tolist(), box.lo.tolist(), box.hi.tolist()):
        assert mpmath.mpf(lo) <= mpmath.mpf(xi) / (1 + mpmath.exp(-mpmath.mpf(xi))) <= mpmath.mpf(hi), (xi, lo, hi)
    ends = at(np.array([-np.inf, np.inf, np.nan]))
    assert ends.lo[0] <= 0 <= ends.hi[0] and ends.hi[1] == np.inf and ends.lo[2] == -np.inf and ends.hi[2] == np.inf


def test_the_roots_partition_every_step():
    """Each input lies in exactly one root case of every step (the cover the leaves inherit)."""
    fmt = resolve("param40").model().spec.format
    for k in (0, 5, 10):
        rts = roots(Positions(fmt, k))
        for _ in range(30):
            a, b = (int(x) for x in RNG.integers(0, 10**10, 2))
            pairs, carries = path_of(a, b)
            tokens = torch.cat([fmt.encode(a, b)[0], fmt.answer(a, b)[0, :k]])
            inside = [m[np.arange(10), pairs, carries[:10]].all() and f[carries[10]] and qt == int(tokens[-1])
                      and tgt == int(fmt.answer(a, b)[0, k]) for m, f, qt, tgt, _ in rts]
            assert sum(inside) == 1, (k, a, b)


def test_adder_info_says_which_checker_a_proof_would_rest_on():
    import json

    from test_cli import adder_here

    for name, independent in (("param40", True), ("tinyadder36", False)):
        r = adder_here("info", name, "--json")
        assert r.returncode == 0, r.stderr
        prover = json.loads(r.stdout)["prover"]
        assert prover["independent_checker"] is independent
        assert ("softmax1 attention" in prover["checker_lacks"]) is not independent
    r = adder_here("info", "tinyadder36")
    assert "certificate check: by the search's own rules; the independent checker has no rule yet for softmax1" in r.stdout


@pytest.mark.integration
def test_a_two_layer_step_passes_and_a_tampered_inner_bound_is_rejected():
    """qwen87, answer step 0: the search's certificate of the step (inner-layer records included)
    passes the checker; an inner layer's lam shrunk, or its enumeration changed, is rejected."""
    model = resolve("qwen87").model()
    res, step = _search(model, 0)
    assert res.open_inputs == 0 and step["inner"] and step["inner"][0]["lam"]
    assert _check(model, step) == res.leaves
    shrunk = copy.deepcopy(step)
    lam = np.asarray(shrunk["inner"][0]["lam"], dtype=np.float64)
    i = int(np.argmax(np.abs(lam)))
    lam[i] -= 1e-3 * abs(lam[i])
    shrunk["inner"][0]["lam"] = lam.tolist()
    with pytest.raises(Rejected, match="inner attention bound does not hold"):
        _check(model, shrunk)
    moved = copy.deepcopy(step)
    rows = moved["inner"][0]["enumerate"]
    r = next(n for n, ps in enumerate(rows) if ps)
    rows[r] = []  # fewer sub-rows: the recorded lam no longer lines up
    with pytest.raises(Rejected):
        _check(model, moved)
