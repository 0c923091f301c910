"""The table rule (`verify/checker/table.py`) and its float32 boxes (`verify/checker/tight.py`).

The boxes must hold what float32 really computes, in every summation order the rule assumes
(checked against explicit orders, FMA and one-rounding sums computed with fractions), and the
rule must hold the module: each input's float32 margin at least its table row's bound. Then
soundness the hard way: mutants a suite breaks are never proven, and a tampered certificate
fails the independent check.
"""

import copy
import itertools
from fractions import Fraction

import numpy as np
import pytest
import torch

from adder.compiler.decode import teacher_forced
from adder.verify.checker.bounds import Rules
from adder.verify.checker.paths import Positions
from adder.verify.checker.reals import FLOATS, Box
from adder.verify.checker.row_bound import _values
from adder.verify.checker.table import ZERO_GAP, not_applicable, read_positions, read_union, rows, table
from adder.verify.checker.tight import Tight, round_sum, snap, tree_sum

F32 = np.float32


def _nearest32(q: Fraction) -> float:
    """The float32 nearest to an exact rational, ties to even (the reference for every rounding)."""
    lo = float(F32(float(q)))
    if Fraction(lo) > q:
        lo = float(np.nextafter(F32(lo), F32(-np.inf)))
    hi = float(np.nextafter(F32(lo), F32(np.inf)))
    dlo, dhi = q - Fraction(lo), Fraction(hi) - q
    if dlo != dhi:
        return lo if dlo < dhi else hi
    return lo if (np.array(lo, F32).view(np.int32) & 1) == 0 else hi


def _all_orders(xs, ws):
    """Every float32 value of sum x_i w_i over all binary trees, with and without fusing a
    product into its addition, and the exact sum rounded once: by brute force with fractions."""
    terms = list(range(len(xs)))

    def rec(idx):
        if len(idx) == 1:
            i = idx[0]
            return {_nearest32(Fraction(xs[i]) * Fraction(ws[i]))}
        out = set()
        for k in range(1, len(idx)):
            for A in itertools.combinations(idx, k):
                B = tuple(i for i in idx if i not in A)
                for a in rec(A):
                    for b in rec(B):
                        out.add(_nearest32(Fraction(a) + Fraction(b)))
                if len(A) == 1:
                    for b in rec(B):
                        out.add(_nearest32(Fraction(xs[A[0]]) * Fraction(ws[A[0]]) + Fraction(b)))
        return out

    exact = sum(Fraction(x) * Fraction(w) for x, w in zip(xs, ws))
    return rec(tuple(terms)) | {_nearest32(exact)}


def test_round_sum_rounds_once_even_where_float64_would_round_twice():
    rng = np.random.default_rng(0)
    a = (rng.standard_normal(3000) * 10.0 ** rng.integers(-8, 8, 3000)).astype(F32).astype(np.float64)
    b = (rng.standard_normal(3000) * 10.0 ** rng.integers(-8, 8, 3000)).astype(F32).astype(np.float64)
    p = a * b  # exact in float64
    c = rng.standard_normal(3000).astype(F32).astype(np.float64)
    # double-rounding traps: a float32 midpoint plus a tiny amount
    mid = (1.0 + 2.0**-24) * np.ones(4)
    tiny = np.array([2.0**-70, -(2.0**-70), 2.0**-60, 0.0])
    got = round_sum(np.concatenate([p, mid]), np.concatenate([c, tiny]))
    want = [_nearest32(Fraction(float(x)) + Fraction(float(y))) for x, y in
            zip(np.concatenate([p, mid]), np.concatenate([c, tiny]))]
    assert np.array_equal(got, np.array(want))
    assert got[-4] == np.float64(np.nextafter(F32(1), F32(2))) and got[-3] == 1.0  # the traps, rounded once


@pytest.mark.parametrize("n", [2, 3, 4])
def test_tree_sums_hold_every_order_and_are_tight_on_points(n):
    rng = np.random.default_rng(n)
    for trial in range(40):
        xs = (rng.standard_normal(n) * 10.0 ** rng.integers(-3, 4, n)).astype(F32)
        ws = (rng.standard_normal(n) * 10.0 ** rng.integers(-3, 4, n)).astype(F32)
        want = _all_orders([float(x) for x in xs], [float(w) for w in ws])
        terms = [Box.exact(np.array([float(x) * float(w)])) for x, w in zip(xs, ws)]
        got = tree_sum(terms)
        assert got.lo[0] == min(want) and got.hi[0] == max(want), (trial, xs, ws)


def test_tree_sums_of_boxes_hold_every_corner_and_inside_point():
    rng = np.random.default_rng(5)
    for _ in range(30):
        lo = rng.standard_normal(3).astype(F32)
        hi = (lo + np.abs(rng.standard_normal(3)).astype(F32) * F32(1e-3)).astype(F32)
        w = rng.standard_normal(3).astype(F32)
        from adder.verify.checker.tight import products
        box = Box(lo.astype(np.float64), hi.astype(np.float64))
        got = tree_sum([products(box[i:i + 1], Box.exact(np.array([float(w[i])]))) for i in range(3)])
        for pick in itertools.product(*[(lo[i], (lo[i] + hi[i]) / 2, hi[i]) for i in range(3)]):
            xs = [float(F32(v)) for v in pick]
            vals = _all_orders(xs, [float(v) for v in w])
            assert got.lo[0] <= min(vals) and max(vals) <= got.hi[0]


def test_snap_keeps_exactly_the_float32_values_inside():
    b = Box(np.array([1.0 + 2.0**-30, -1.0]), np.array([2.0 - 2.0**-30, 1.0]))
    s = snap(b)
    assert s.lo[0] == float(np.nextafter(F32(1), F32(2))) and s.hi[0] == float(np.nextafter(F32(2), F32(0)))
    assert s.lo[1] == -1.0 and s.hi[1] == 1.0


def test_the_tight_rmsnorm_holds_torch_and_is_a_few_ulps_wide(compiled):
    """The norm of a float32 point, as the module computes it, lies in the box; the box spans a
    few float32 values, where the general rule's spans tens."""
    model = compiled("wonderfall121")
    r = Rules(model, FLOATS["float32"])
    nm = model.spec.blocks[0].norm
    x = torch.randn(4000, 3, generator=torch.Generator().manual_seed(1)) * torch.tensor([1000.0, 5.0, 0.01])
    x = x.float()
    with torch.no_grad():
        got = model._norm(x[:, None], nm, model.weights())[:, 0].double().numpy()
    box = Tight(r).norm(Box.exact(x.double().numpy()), nm)
    assert ((box.lo <= got) & (got <= box.hi)).all()
    spread = np.abs(box.hi - box.lo) / np.spacing(np.abs(got).astype(F32)).astype(np.float64)
    general = snap(r.norm(Box.exact(x.double().numpy()), nm))
    assert np.median(spread) <= 8 and np.median((general.hi - general.lo) / (box.hi - box.lo + 1e-300)) > 1.5


@pytest.fixture(scope="module")
def jacobli(compiled):
    return compiled("jacobli99_28p")


def test_the_keys_read_are_found_and_a_blunt_model_reads_too_many(jacobli, compiled):
    r = Rules(jacobli, FLOATS["float32"])
    assert not_applicable(r) is None
    pos = Positions(jacobli.spec.format, 3)
    reads = read_positions(r, pos)[0].heads
    assert all(len(ps) == 1 for ps in reads)  # one-hot
    slots = [pos.slots[ps[0]] for ps in reads]
    assert slots == [("s", 2), ("a", 2), ("b", 2), ("a", 3), ("b", 3)]  # itself, a_{k-1}, b_{k-1}, a_k, b_k
    assert "softmax_zero" in r.ranges and r.ranges["softmax_zero"][1] == -ZERO_GAP
    cos = compiled("cosminscn66")  # head 0 averages a_k and b_k on purpose: two keys, both read
    pos = Positions(cos.spec.format, 3)
    reads = read_positions(Rules(cos, FLOATS["float32"]), pos)[0].heads
    assert [[pos.slots[p] for p in ps] for ps in reads] == [[("a", 3), ("b", 3)], [("a", 2), ("b", 2)]]
    reads, why = read_positions(Rules(compiled("param40"), FLOATS["float32"]), Positions(jacobli.spec.format, 3))
    assert reads is None and why.startswith("head 0")  # param40's head averages keys through RoPE: no rule yet
    assert "float32" in not_applicable(Rules(compiled("fblissjr33"), FLOATS["float64"]))


@pytest.mark.integration
def test_every_input_lands_in_a_row_and_the_module_keeps_its_rows_bound(jacobli):
    """Containment: for random inputs and every row's own example, at step 3 the module's float32
    margin (batched pass and full pass) is at least the bound of the row its tokens fall in."""
    r = Rules(jacobli, FLOATS["float32"])
    fmt = jacobli.spec.format
    k = 3
    pos = Positions(fmt, k)
    reading, _ = read_positions(r, pos)
    t = table(r, pos, reading)
    reads = read_union(reading.heads)
    assert len(t.margin) == 20000 and (t.margin > 0).all()
    index = {tuple(row): i for i, row in enumerate(t.tokens.tolist())}
    gen = torch.Generator().manual_seed(3)
    a = torch.cat([torch.randint(0, 10**10, (3000,), generator=gen), torch.from_numpy(t.example[:, 0])])
    b = torch.cat([torch.randint(0, 10**10, (3000,), generator=gen), torch.from_numpy(t.example[:, 1])])
    with torch.no_grad():
        tf = teacher_forced(jacobli, a, b)
        tokens = torch.cat([fmt.encode(a, b), fmt.answer(a, b)[:, :-1]], 1)
        full = jacobli(tokens)[:, pos.t]
    y = fmt.answer(a, b)[:, k]
    row = np.array([index[tuple(x)] for x in tokens[:, [pos.t] + reads].tolist()])
    assert (t.target[row] == y.numpy()).all()
    other = full.scatter(-1, y[:, None], float("-inf")).amax(-1)
    for margin in (tf.margin[:, k].numpy(), (full.gather(-1, y[:, None])[:, 0] - other).numpy()):
        assert (margin >= t.margin[row]).all()
    assert (tf.margin[:, k].numpy() == t.margin[row]).any()  # the bound is met somewhere: tight


def test_rows_give_one_example_input_per_token_tuple(jacobli):
    pos = Positions(jacobli.spec.format, 10)
    reads = read_union(read_positions(Rules(jacobli, FLOATS["float32"]), pos)[0].heads)
    tup, target, example = rows(pos, reads)
    fmt = jacobli.spec.format
    a, b = torch.from_numpy(example[:, 0]), torch.from_numpy(example[:, 1])
    tokens = torch.cat([fmt.encode(a, b), fmt.answer(a, b)[:, :-1]], 1)
    assert (tokens[:, [pos.t] + reads].numpy() == tup).all()
    assert (fmt.answer(a, b)[:, 10].numpy() == target).all()


@pytest.mark.parametrize("name,k", [("cosminscn66", 1), ("cosminscn66", 0), ("lichengliu50", 4)])
def test_a_head_that_averages_two_keys_keeps_the_module_inside_its_rows(compiled, name, k):
    """cosminscn66's and lichengliu50's heads average a_k and b_k (two keys, scores equal in real
    arithmetic): every row of cosminscn66's step 1 is proven and holds the module (its margin,
    batched and full pass, at least the row's bound); at step 0, whose scores are ~7e5 (float32
    spacing 0.06), the summation orders the rule allows move that average enough to open a few
    rows, still containing the module. lichengliu50's other keys are only ~11 below (weights
    ~1e-5, not 0): a tail, bounded together; its tightest step (4) is proven and holds the module."""
    model = compiled(name)
    r = Rules(model, FLOATS["float32"])
    fmt = model.spec.format
    pos = Positions(fmt, k)
    reading, _ = read_positions(r, pos)
    assert all(len(ps) == 2 for ps in reading.heads)
    rho = reading.rho
    assert (rho.max() > 0) == (name == "lichengliu50") and rho.max() < 1e-3
    t = table(r, pos, reading)
    reads = reading.heads
    assert 0 < (t.margin <= 0).sum() < 20 if (name, k) == ("cosminscn66", 0) else (t.margin > 0).all()
    index = {tuple(row): i for i, row in enumerate(t.tokens.tolist())}
    gen = torch.Generator().manual_seed(4)
    a = torch.cat([torch.randint(0, 10**10, (2000,), generator=gen), torch.from_numpy(t.example[:, 0])])
    b = torch.cat([torch.randint(0, 10**10, (2000,), generator=gen), torch.from_numpy(t.example[:, 1])])
    with torch.no_grad():
        tokens = torch.cat([fmt.encode(a, b), fmt.answer(a, b)[:, :-1]], 1)
        full = model(tokens)[:, pos.t]
        batched = teacher_forced(model, a, b).margin[:, k].numpy()
    y = fmt.answer(a, b)[:, k]
    row = np.array([index[tuple(x)] for x in tokens[:, [pos.t] + read_union(reads)].tolist()])
    other = full.scatter(-1, y[:, None], float("-inf")).amax(-1)
    for margin in (batched, (full.gather(-1, y[:, None])[:, 0] - other).numpy()):
        assert (margin >= t.margin[row]).all()


def test_values_pieces_cover_the_interval():
    rng = np.random.default_rng(0)
    for _ in range(50):
        lo = rng.standard_normal(4).astype(F32).astype(np.float64)
        hi = (lo + np.abs(rng.standard_normal(4)) * 10.0 ** rng.integers(-8, 1, 4)).astype(F32).astype(np.float64)
        pieces, K = _values(Box(lo, hi))
        L, H = pieces.lo.reshape(4, K), pieces.hi.reshape(4, K)
        assert (L[:, 0] == lo).all() and (H[:, -1] == hi).all() and (L <= H).all()
        nxt = np.nextafter(H[:, :-1].astype(F32), F32(np.inf)).astype(np.float64)
        assert (L[:, 1:] <= np.maximum(nxt, L[:, :-1])).all()  # no float32 value between pieces is left out


def test_a_mutant_a_suite_breaks_is_refuted_not_proven(compiled):
    """The carry unit's output gain halved: the table's rows with a carry fail, and their example
    inputs are printed wrongly by the module: a confirmed counterexample."""
    from adder.compiler import compile_spec
    from adder.constructions import build_spec
    from adder.verify.prove.layers import Ctx
    from adder.verify.prove.search import table_step
    from adder.verify.prove.weights import ModelWeights

    model = compile_spec(build_spec("jacobli99_93p"), dtype="float32")
    with torch.no_grad():
        w = model.param("mlp.w2")
        w.mul_(torch.where(w.abs() == 1, 0.5, 1.0))
    mw = ModelWeights(model)
    res, _ = table_step(model, 3, Ctx(mw, mw.arithmetic))
    assert res is not None and not res.proven and res.counterexample is not None
    a, b, printed = res.counterexample
    assert printed != a + b


@pytest.mark.integration
def test_a_table_certificate_passes_and_tampered_ones_fail(jacobli, tmp_path):
    from adder.verify.prove import prove
    from adder.verify.prove.certificate import check, read
    from adder.verify.verdicts import Verdict

    report = prove(jacobli, "jacobli99_28p", timeout=120, sampled=False, check_libm=False,
                   certificate=tmp_path / "c.json")
    assert report.verdict == Verdict.CONDITIONAL, report.summary()  # libm not checked here: conditional
    assert any("table rule" in a for a in report.assumptions)
    cert = read(tmp_path / "c.json")
    assert all("table" in st for st in cert["steps"])
    good = check(cert, jacobli)
    assert good.passed and good.independent and "table rows" in good.reason, good.reason
    for tamper in ("heads", "drop", "malformed"):
        bad = copy.deepcopy(cert)
        st = bad["steps"][1]
        if tamper == "heads":
            st["table"]["heads"][1][0] += 1
        elif tamper == "drop":
            del st["table"]
        else:
            st["table"] = {"heads": "everything"}
        assert not check(bad, jacobli).passed, tamper


def test_the_exact_zero_check_holds_far_below_the_maximum_and_fails_near_it():
    from adder.verify.prove.libm import check_range

    assert check_range("softmax_zero", -5000.0, -ZERO_GAP, use_cache=False).holds
    near = check_range("softmax_zero", -120.0, -80.0, use_cache=False)
    assert not near.holds and "VIOLATED" in near.describe()


@pytest.mark.integration
def test_wonderfall121_is_proven_by_the_table_rule(compiled, tmp_path):
    """The four-query-head Qwen3 model whose float32 margins are one or two ulps: proven, every
    library assumption checked, in well under a minute."""
    from adder.verify.prove import prove
    from adder.verify.verdicts import Verdict

    report = prove(compiled("wonderfall121"), "wonderfall121", timeout=300, certificate=tmp_path / "c.json")
    assert report.verdict == Verdict.PROVEN, report.summary()
    assert all(s.certified_margin > 0 for s in report.steps)
    assert any(a.startswith("checked: softmax_zero") for a in report.assumptions)


@pytest.mark.integration
def test_a_large_score_model_is_proven_and_its_tampered_certificates_fail(compiled, tmp_path):
    """lichengliu50 (positional amplitude 100, heads averaging two keys with a tail of ~1e-5
    weights): proven with every library check; its certificate fails once a head claims to read
    one key of its two, or another position."""
    from adder.verify.prove import prove
    from adder.verify.prove.certificate import check, read
    from adder.verify.verdicts import Verdict

    model = compiled("lichengliu50")
    report = prove(model, "lichengliu50", timeout=300, certificate=tmp_path / "c.json")
    assert report.verdict == Verdict.PROVEN, report.summary()
    cert = read(tmp_path / "c.json")
    assert check(cert, model).passed
    for tamper in ("one key", "moved"):
        bad = copy.deepcopy(cert)
        heads = bad["steps"][4]["table"]["heads"]
        if tamper == "one key":
            heads[0] = heads[0][:1]
        else:
            heads[1] = [p + 1 for p in heads[1]]
        assert not check(bad, model).passed, tamper
