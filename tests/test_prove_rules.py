"""The prover's arithmetic: each bound rule must contain what float32 torch really computes.

Soundness starts here: every interval rule is tested against the operation it bounds, on
random inputs (float32 torch results must lie inside the interval computed from the exact
inputs), and the automaton programmes against brute force on small cases.
"""

import mpmath
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from adder.constructions import build_spec
from adder.verify.prove.automaton import CARRY_OUT, Cases, best_paths, count_paths, live_transitions, path_of
from adder.compiler.module import ACTIVATIONS
from adder.verify.prove import libm
from adder.verify.prove.floatmodel import FLOAT32, FLOAT64, REAL, dot_rounded, library, rounded
from adder.verify.prove.intervals import Interval, decimal_down, decimal_up
from adder.verify.prove.layers import SILU_ARGMIN, SILU_MIN, Ctx, activation, norm
from adder.verify.prove.layout import StepLayout
from adder.verify.prove.libm import check_range, float32_range
from adder.verify.prove.rigorous import exp_enclosure, gelu_enclosure, gelu_minimum
from adder.verify.prove.softmax import dinkelbach, g_upper, shift_grid
from adder.verify.prove.split import carry_children
from adder.verify.prove.weights import ModelWeights

RNG = np.random.default_rng(0)
FMT40 = build_spec("param40").format
PAIRS_2 = 100 * 100  # the inputs of two free digit groups


def f32(x):
    return np.asarray(x, np.float32).astype(np.float64)


def test_decimal_rounding_is_directed_and_short():
    x = np.concatenate([RNG.normal(0, 30, 2000), RNG.normal(0, 1e-7, 500), [0.0, 1.0, -2.5, np.inf, -np.inf, np.nan]])
    for digits in (4, 9):
        hi, lo = decimal_up(x, digits), decimal_down(x, digits)
        fin = np.isfinite(x)
        assert np.all(hi[fin] >= x[fin]) and np.all(lo[fin] <= x[fin])
        assert np.all((hi[fin] - x[fin]) <= 10.0 ** (1 - digits) * np.abs(x[fin]))
        for v in np.concatenate([hi[fin], lo[fin]]).tolist():  # written back (repr) in at most `digits` digits
            assert len(repr(abs(v)).split("e")[0].replace(".", "").strip("0")) <= digits, v
        assert np.array_equal(hi[~fin], x[~fin], equal_nan=True)


def test_float32_products_and_sums_lie_in_the_rounded_interval():
    x, y = f32(RNG.normal(0, 100, 5000)), f32(RNG.normal(0, 1e-3, 5000))
    got = (torch.tensor(x, dtype=torch.float32) * torch.tensor(y, dtype=torch.float32)).double().numpy()
    iv = rounded(Interval.point(x) * y, FLOAT32)
    assert np.all((iv.lo <= got) & (got <= iv.hi))
    assert np.any(got != x * y)  # rounding does happen: the widening is not decorative


def test_float32_matmul_in_any_order_lies_in_dot_rounded():
    w = f32(RNG.normal(0, 10, (7, 33)))
    x = f32(RNG.normal(0, 1e3, (4000, 33)))
    iv = dot_rounded(Interval.point(x), w, FLOAT32)
    xt, wt = torch.tensor(x, dtype=torch.float32), torch.tensor(w, dtype=torch.float32)
    for got in (xt @ wt.T, (xt[:, None, :] * wt).sum(-1), (xt.flip(1) @ wt.flip(1).T)):
        g = got.double().numpy()
        assert np.all((iv.lo <= g) & (g <= iv.hi))


def test_exp_enclosures_contain_mpmath_exp():
    xs = np.concatenate([RNG.uniform(-80, 10, 200), [0.0, -1e-30, 1e-30]])
    for rigorous in (True, False):
        lo, hi = exp_enclosure(xs, xs, rigorous)
        for x, a, b in zip(xs, lo, hi):
            e = mpmath.exp(mpmath.mpf(float(x)))
            assert a <= e <= b


def test_silu_minimum_constants():
    mpmath.mp.dps = 40
    f = lambda x: x / (1 + mpmath.exp(-x))  # noqa: E731
    x = mpmath.findroot(lambda t: mpmath.diff(f, t), -1.28)
    assert SILU_ARGMIN[0] < x < SILU_ARGMIN[1] and SILU_MIN <= f(x)


def _mp_gelu(x):
    x = mpmath.mpf(float(x))
    return x / 2 * mpmath.erfc(-x / mpmath.sqrt(2))


def test_gelu_minimum_is_bracketed():
    """x*, the root of gelu' = Phi + x phi, lies in the arb-verified bracket; its bound is below gelu(x*) and tight."""
    mpmath.mp.dps = 40
    a, b, m = gelu_minimum()
    slope = lambda t: mpmath.ncdf(t) + t * mpmath.npdf(t)  # noqa: E731
    x = mpmath.findroot(slope, -0.75)
    assert a < x < b and b - a < 1e-13
    assert slope(mpmath.mpf(a)) < 0 < slope(mpmath.mpf(b))
    g = x * mpmath.ncdf(x)
    assert m <= g < m + 1e-14
    # nothing on a fine grid lies below it, and the branches are monotone
    t = np.linspace(-6, 4, 200_001)
    with torch.no_grad():
        y = torch.nn.functional.gelu(torch.from_numpy(t)).numpy()
    assert y.min() >= m - 1e-15
    assert np.all(np.diff(y[t <= a]) <= 1e-16) and np.all(np.diff(y[t >= b]) >= -1e-16)


def test_the_module_gelu_is_the_erf_one():
    """The rule bounds x Phi(x) (approximate='none'); the tanh approximation differs by up to ~5e-4."""
    x = torch.linspace(-8, 8, 10_001)
    assert torch.equal(ACTIVATIONS["gelu"](x), F.gelu(x, approximate="none"))
    assert (ACTIVATIONS["gelu"](x) - F.gelu(x, approximate="tanh")).abs().max() > 1e-4


def test_gelu_enclosures_contain_mpmath_gelu():
    mpmath.mp.dps = 50
    xs = np.concatenate([RNG.uniform(-45, 45, 300), RNG.normal(0, 2, 300), [-40.0, -39.99, 40.0, 0.0, -1e-300, 5e-324,
                                                                          -0.7517915246935645, -12.5, -38.5]])
    for rigorous in (True, False):
        lo, hi = gelu_enclosure(xs, rigorous)
        for x, a, b in zip(xs, lo, hi):
            assert a <= _mp_gelu(x) <= b, (rigorous, x, a, b)
        assert np.all(hi - lo <= 1e-11 * np.abs(lo) + 1e-318)  # and tight: not a vacuous enclosure


def _adversarial_intervals(dt: type) -> tuple[np.ndarray, np.ndarray]:
    """Intervals of `dt` values: random, around x*, on each side of it, very negative (where torch's gelu
    returns 0 or subnormals), very large, tiny widths, points, around 0."""
    a, b, _ = gelu_minimum()
    rows = [(c - w, c + w) for c, w in zip(RNG.normal(0, 3, 300), 10 ** RNG.uniform(-7, 1, 300))]
    rows += [(a - w, b + w) for w in (0.0, 1e-7, 1e-3, 0.1, 2.0)] + [(a - w, a) for w in (1e-6, 0.5, 3)]
    rows += [(b, b + w) for w in (1e-6, 0.5, 3)] + [(a, a), (b, b), (-0.76, -0.74)]
    rows += [(-1e4, -5.0), (-30.0, -10.0), (-6.0, -5.4), (-5.6, -5.5), (-14.0, -13.0), (-40.5, -39.5), (-1e30, -1e29),
             (-38.6, -37.0), (-9.0, -8.0)]
    rows += [(3.0, 1e3), (1e20, 1e30), (39.0, 41.0), (2.9, 3.1)]
    tiny = RNG.normal(0, 4, 100).astype(dt)
    rows += [(x, np.nextafter(x, dt(np.inf))) for x in tiny] + [(x, x) for x in tiny[:30]]
    rows += [(-1e-40, 1e-40), (-1e-300, 1e-300), (0.0, 0.0), (-1e-6, 1e-6)]
    lo = np.array([r[0] for r in rows]).astype(dt)
    hi = np.maximum(lo, np.array([r[1] for r in rows]).astype(dt))
    return lo, hi


@pytest.mark.parametrize("ar", [FLOAT32, FLOAT64], ids=["float32", "float64"])
@pytest.mark.parametrize("rigorous", [False, True], ids=["search", "check"])
def test_gelu_rule_contains_torch_gelu(ar, rigorous):
    """Every float the module can compute from inputs in [lo, hi] (both torch code paths: vectorised,
    strided) lies in the rule's bound; and the bound is no wider than the sampled range plus the error model."""
    dt = np.float32 if ar is FLOAT32 else np.float64
    lo, hi = _adversarial_intervals(dt)
    a, b, _ = gelu_minimum()
    t = np.linspace(0, 1, 61)
    pts = lo[:, None] + (hi - lo)[:, None].astype(np.float64) * t  # inside (after rounding, clipped)
    near = np.array([a, b, -0.7517915, -0.75179154])[None].repeat(len(lo), 0)
    pts = np.concatenate([pts, near], 1).astype(dt)
    pts = np.clip(pts, lo[:, None], hi[:, None])
    pts[:, 0], pts[:, -1] = lo, hi
    z = activation(Interval(lo.astype(np.float64), hi.astype(np.float64)), "gelu", Ctx(None, ar, rigorous=rigorous))
    x = torch.from_numpy(pts)
    with torch.no_grad():
        for got in (ACTIVATIONS["gelu"](x), ACTIVATIONS["gelu"](torch.stack([x, x], -1)[..., 0])):
            g = got.double().numpy()
            inside = (z.lo[:, None] <= g) & (g <= z.hi[:, None])
            assert inside.all(), (lo[~inside.all(1)], hi[~inside.all(1)])
            xmax = np.maximum(np.abs(lo), np.abs(hi)).astype(np.float64)
            allowed = 4 * (2 * ar.u * z.mag() + ar.eta) + 2 * ar.gelu_x * xmax
            own = (20 + 4 * np.minimum(xmax, 40) ** 2) * 2.0**-51 * z.mag() + 1e-318  # the enclosure's own slack
            assert np.all(z.width() <= g.max(1) - g.min(1) + 2 * allowed + own)


def test_gelu_rule_in_real_arithmetic_contains_the_exact_gelu():
    mpmath.mp.dps = 40
    lo, hi = _adversarial_intervals(np.float64)
    pick = RNG.choice(len(lo), 60, replace=False)
    lo, hi = lo[pick], hi[pick]
    z = activation(Interval(lo, hi), "gelu", Ctx(None, REAL, rigorous=True))
    for i in range(len(lo)):
        for x in np.linspace(lo[i], hi[i], 7):
            assert z.lo[i] <= _mp_gelu(x) <= z.hi[i]


def test_libm_check_passes_torch_gelu_and_catches_wrong_ones(monkeypatch):
    ranges = [(-5.6, -5.4), (-3.6, -3.55), (-0.76, -0.74), (1.0, 1.02)]  # erf -> -1, cancelling, x*, positive
    assert all(check_range("gelu", lo, hi, use_cache=False).holds for lo, hi in ranges)
    wrong = {"tanh approximation": lambda t: F.gelu(t, approximate="tanh"),
             "scaled by 1 + 2^-20": lambda t: F.gelu(t) * (1 + 2.0**-20),
             "0 below -3": lambda t: torch.where(t < -3, 0.0, F.gelu(t)),
             "strided path off by 2^-18": lambda t: torch.stack([F.gelu(t), F.gelu(t) * (1 + 2.0**-18)])}
    for name, fn in wrong.items():
        monkeypatch.setitem(libm.CHECKS, "gelu", libm._check(fn, libm._gelu_ref, libm._gelu_k))
        assert not all(check_range("gelu", lo, hi, use_cache=False).holds for lo, hi in ranges), name
    # float64: a sample, against arb
    monkeypatch.setattr(libm, "SAMPLES_FLOAT64_ARB", 4096)
    monkeypatch.setitem(libm.CHECKS, "gelu", libm._check(libm._gelu_model, libm._gelu_ref, libm._gelu_k))
    assert check_range("gelu", -12.0, 12.0, "float64", use_cache=False).holds
    monkeypatch.setitem(libm.CHECKS, "gelu", libm._check(lambda t: F.gelu(t, approximate="tanh"), libm._gelu_ref,
                                                          libm._gelu_k))
    assert not check_range("gelu", -12.0, 12.0, "float64", use_cache=False).holds


def test_a_float64_sample_check_is_cached_under_its_range_and_size(monkeypatch, tmp_path):
    """The float64 sample is fixed by seed, size and range: a second check of the same range reads
    the cache (the check is not run again); another range or size runs it."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(libm, "SAMPLES_FLOAT64", 4096)
    calls = []
    real = libm.CHECKS["exp1"]
    monkeypatch.setitem(libm.CHECKS, "exp1", lambda x: calls.append(len(x)) or real(x))
    first = check_range("exp1", -20.0, 0.0, "float64")
    again = check_range("exp1", -20.0, 0.0, "float64")
    assert calls == [4098] and again.worst_ulps == first.worst_ulps and again.inputs == 4098 and again.holds
    assert not again.exhaustive
    check_range("exp1", -21.0, 0.0, "float64")
    monkeypatch.setattr(libm, "SAMPLES_FLOAT64", 2048)
    check_range("exp1", -20.0, 0.0, "float64")
    assert calls == [4098, 4098, 2050]


def test_a_listed_check_evaluates_exactly_its_inputs_and_catches_one_bad_value(monkeypatch):
    """With `points` (the certificate check's list of every input), a float64 check is exhaustive:
    it evaluates those inputs and no others, and a library wrong on just one of them fails it; every
    exp check also asks softmax for weight exactly 0 at a masked key (-inf)."""
    points = np.array([-103.02585092994046, -80.0, -14.5, 0.0])
    calls = []
    real = libm.CHECKS["exp"]
    monkeypatch.setitem(libm.CHECKS, "exp", lambda x: calls.append(x.copy()) or real(x))
    got = check_range("exp", -103.1, 0.0, "float64", use_cache=False, points=points)
    assert got.holds and got.exhaustive and got.listed and got.inputs == 4
    assert len(calls) == 1 and np.array_equal(calls[0], points) and calls[0].dtype == np.float64
    assert "each of the 4 inputs" in got.describe()
    off = lambda t: torch.where(t == -14.5, torch.exp(t) * (1 + 2.0**-40), torch.exp(t))  # noqa: E731
    monkeypatch.setitem(libm.CHECKS, "exp", libm._check(lambda t: off(torch.clamp(t, max=0)) / (1 + off(torch.clamp(t, max=0))),
                                                        libm._softmax_ref, libm._softmax_excess))
    assert not check_range("exp", -103.1, 0.0, "float64", use_cache=False, points=points).holds
    assert check_range("exp", -103.1, 0.0, "float64", use_cache=False, points=points[points != -14.5]).holds
    monkeypatch.setitem(libm.CHECKS, "exp", real)
    monkeypatch.setattr(libm.F, "softmax", lambda x, dim: torch.full_like(x, 0.5))  # a masked key weighs 1/2
    assert libm.masked_weight_is_zero("float64") is False
    assert not check_range("exp", -103.1, 0.0, "float64", use_cache=False, points=points).holds


def test_rms_norm_of_a_huge_box_stays_finite_and_contains_torch(compiled):
    """mean(x^2) + eps >= eps in float too: a box whose mean square bound reaches 0 or below after
    rounding (huge or infinite boxes) still gets a finite rsqrt instead of an error."""
    model = compiled("param40")
    block = model.spec.blocks[0]
    ctx = Ctx(ModelWeights(model), FLOAT32)
    for big in (1e30, np.inf):
        y = norm(Interval(np.full((1, 2), -big), np.full((1, 2), big)), block.norm, ctx)
        assert np.all(np.isfinite(y.lo)) or big == np.inf
        x = torch.tensor(np.concatenate([np.zeros((1, 2)), RNG.normal(0, 1e3, (200, 2)), [[1e-30, -1e-30]]]),
                         dtype=torch.float32)
        got = (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + block.norm.eps)).double().numpy()
        assert np.all((y.lo <= got) & (got <= y.hi))


def test_library_rule_covers_torch_exp():
    x = f32(RNG.uniform(-20, 5, 10000))
    got = torch.exp(torch.tensor(x, dtype=torch.float32)).double().numpy()
    lo, hi = exp_enclosure(x, x, rigorous=False)
    iv = library(Interval(lo, hi), FLOAT32, FLOAT32.exp_ulps)
    assert np.all((iv.lo <= got) & (got <= iv.hi))


def test_float32_range_enumerates_every_float():
    got = np.concatenate(list(float32_range(-1e-44, 2e-44)))
    assert np.all(np.diff(got) > 0) and got[0] >= -1e-44 and got[-1] <= 2e-44
    assert len(got) == 7 + 1 + 14  # subnormals are multiples of 2^-149 ~ 1.4e-45, and zero once


def _brute(weights, cases, n_groups=2):
    """Max path sum by enumeration, for cases constraining only the first groups."""
    best = -np.inf
    for pairs in np.ndindex(*(100,) * n_groups):
        c, total = 0, 0.0
        ok = True
        for j, p in enumerate(pairs):
            ok &= bool(cases.mask[0, j, p, c])
            total += weights[0, j, p, c]
            c = CARRY_OUT[p, c]
        if ok:
            best = max(best, total)
    return best


def test_best_paths_matches_enumeration_and_counts():
    cases = Cases.everything(1)
    cases.mask[0, 2:] = False
    cases.mask[0, 2:, 0, :] = True  # groups 2..9 forced to the pair (0, 0)
    cases.mask[0, 0, RNG.integers(0, 100, 40), :] = False
    w = np.zeros((1, 10, 100, 2))
    w[0, :2] = RNG.normal(size=(2, 100, 2))
    got = best_paths(w, np.zeros((1, 2)), cases)[0]
    assert abs(got - _brute(w, cases)) < 1e-12
    value, (pairs, carries) = best_paths(w, np.zeros((1, 2)), cases, want_path=True)
    assert value[0] == got and cases.contains(pairs[0], carries[0])[0]  # the path is an input of the case
    assert all(carries[0, j + 1] == CARRY_OUT[pairs[0, j], carries[0, j]] for j in range(10)) and carries[0, 0] == 0
    total = 0.0
    for j in range(10):
        total += w[0, j, pairs[0, j], carries[0, j]]
    assert total == got  # and its sum, added in the programme's order, is the maximum
    assert count_paths(cases)[0] == (100 - len(np.unique(np.flatnonzero(~cases.mask[0, 0, :, 0])))) * 100


def test_path_max_bounds_the_exact_sum_where_float_sums_cancel():
    """The max-plus programme adds in plain float64; `path_max` must still bound the *exact*
    largest sum, here with terms from 1e-3 to 1e16 of both signs, where float sums lose
    whole units (math.fsum gives each enumerated input's exact sum, correctly rounded)."""
    import math
    layout = StepLayout(FMT40, 10, 4)
    cases = Cases.everything(1)
    cases.mask[0, 2:] = False
    cases.mask[0, 2:, 0, :] = True  # groups 2..9 forced to the pair (0, 0)
    pairs = np.zeros((PAIRS_2, 10), np.int64)
    pairs[:, 0], pairs[:, 1] = np.arange(PAIRS_2) // 100, np.arange(PAIRS_2) % 100
    carries = np.zeros((PAIRS_2, 11), np.int64)
    for j in range(10):
        carries[:, j + 1] = CARRY_OUT[pairs[:, j], carries[:, j]]
    tokens = layout.tokens_of(pairs, carries)  # [paths, P]
    plain_below = 0
    for seed in range(4):
        rng = np.random.default_rng(seed)
        terms = rng.choice([-1, 1], (1, layout.n_pos, 10)) * 10.0 ** rng.uniform(-3, 16, (1, layout.n_pos, 10))
        exact = max(math.fsum(terms[0, np.arange(layout.n_pos), row]) for row in tokens)
        bound = layout.path_max(terms, cases)[0]
        const, w, top = layout.group_weights(terms)
        plain = const[0] + best_paths(w, top, cases)[0]
        assert exact <= bound <= exact + 1e-12 * np.abs(terms).max(-1).sum()
        plain_below += plain < exact
    assert plain_below  # the unbounded float sum does fall below the exact one: the slack is needed


def test_path_of_and_contains():
    pairs, carries = path_of(5193798811, 1806201129)
    assert carries[1] == 1 and carries[2] == 0 and carries[10] == 0
    cases = Cases.everything(2).fix_carry_out(0, np.array([1, 0]))
    assert cases.contains(pairs, carries).tolist() == [True, False]


def test_exp_enclosure_of_huge_arguments_stays_a_lower_bound():
    for rigorous in (True, False):
        lo, hi = exp_enclosure(np.array([800.0, 1e4]), np.array([800.0, 1e4]), rigorous)
        assert np.all(lo >= 1e307) and np.all(np.isinf(hi))


def test_live_transitions_are_exactly_those_on_some_path():
    cases = Cases.everything(1).fix_carry_out(3, np.array([1])).fix_pair(4, np.array([0]))
    live, final = live_transitions(cases)
    # group 4 is (0, 0) and receives carry 1: only (pair 0, carry 1) lies on a path
    assert live[0, 4].sum() == 1 and live[0, 4, 0, 1]
    # group 3 must carry out: no pair with a_3 + b_3 + c_3 < 10 is live
    assert not live[0, 3][CARRY_OUT == 0].any()
    assert live[0, 0, :, 1].sum() == 0  # nothing carries into group 0
    assert final.tolist() == [[True, True]]


def test_carry_split_children_partition_the_case():
    a, b = 5193798811, 1806201129
    cases = Cases.everything(1).fix_digit("s", 5, np.array([(a + b) // 10**5 % 10]))
    kids = carry_children(cases, 0, 5)
    assert count_paths(kids).sum() == count_paths(cases)[0]
    pairs, carries = path_of(a, b)
    assert kids.contains(pairs, carries).tolist() == [carries[5] == 0, carries[5] == 1]


def test_relaxed_attention_bound_is_above_the_exact_one():
    """The relaxation (each position any token it can hold) maximises over more sequences."""
    layout = StepLayout(FMT40, 10, 4)
    cases = layout.fix_token(Cases.everything(3).fix_carry_out(2, np.array([0, 1, 1])), layout.t, np.array([3, 7, 0]))
    P, V = layout.n_pos, layout.vocab
    e = Interval.point(np.exp(RNG.normal(size=(3, P, V))))
    v = RNG.normal(size=(3, P, V))
    d0 = Interval.point(np.zeros(3))
    for lam in (-1.0, 0.0, 0.5):
        lam = np.full(3, lam)
        exact = g_upper(lam, e, v, d0, layout, cases)
        relaxed = g_upper(lam, e, v, d0, layout, cases, allowed=layout.allowed_tokens(cases))
        assert np.all(relaxed >= exact - 1e-9)
    # and the relaxed Dinkelbach bound is certified and above every sampled sequence
    lam, _ = dinkelbach(e, v, d0, layout, cases, layout.allowed_tokens(cases))
    for _ in range(200):
        a, b = (int(x) for x in RNG.integers(0, 10**10, 2))
        pairs, carries = path_of(a, b)
        tok = layout.tokens_of(pairs[None], carries[None])[0]
        r = (e.hi[:, np.arange(P), tok] * v[:, np.arange(P), tok]).sum(1) / e.hi[:, np.arange(P), tok].sum(1)
        inside = cases.contains(pairs, carries)
        assert np.all(r[inside] <= lam[inside] + 1e-12)


def test_shift_grid_holds_for_float32_scores():
    """Every max-shifted float32 score is a multiple of the grid (so 0 or at least the grid)."""
    for scale in (1e-30, 1e-3, 1.0, 7.0, 1e5, 1e38):
        m = np.float32(scale * RNG.uniform(0.5, 2.0))
        near = np.nextafter(np.full(50, m), np.float32(0)) if m > 0 else np.zeros(50, np.float32)
        for _ in range(20):
            near = np.nextafter(near, np.float32(0))  # 1..21 ulps below m
        s = np.concatenate([[m], near, (np.clip(RNG.normal(size=200), -3, 3) * scale).astype(np.float32),
                            np.float32(m) * RNG.uniform(0.4, 1.0, 200).astype(np.float32)]).astype(np.float32)
        s = np.minimum(s, m)
        with np.errstate(over="ignore"):  # -inf is a float result too (and far from 0)
            d = (s - m).astype(np.float32)  # what softmax's exp receives
        for lo, hi in ((m, m), (m * 0.9, m * 1.1)):
            grid = shift_grid(np.array([lo], np.float64), np.array([hi], np.float64), FLOAT32)[0]
            assert grid > 0
            finite = np.isfinite(d)
            assert np.all(np.fmod(d[finite].astype(np.float64), grid) == 0), (scale, grid)
    # a maximum that may be 0 gives no grid
    assert shift_grid(np.array([-1.0]), np.array([1.0]), FLOAT32)[0] == 0


class _NormWeights:
    """The two things `norm` reads from `ModelWeights`: eps (both roundings, as `scalar` gives it)
    and the weight vector (exact dtype values)."""

    def __init__(self, dtype, w):
        self.dtype, self.w = dtype, w

    def eps(self, nm):
        e = np.float64(np.float32(nm.eps)) if self.dtype == "float32" else np.float64(nm.eps)
        return Interval.hull(e, np.float64(nm.eps))

    def __call__(self, e):
        return None if e is None else self.w


def _rms_case(dt, d, w, eps=1e-6):
    from adder.compiler.spec import Norm

    nm = Norm("rms", eps, weight=None if w is None else object())
    ar = FLOAT32 if dt == torch.float32 else FLOAT64
    return nm, Ctx(_NormWeights(str(dt).replace("torch.", ""), w), ar)


def _torch_rms(pts, nm, w, dt):
    """What `AdderModel._norm` computes on the float points `pts` [n, d]."""
    from adder.compiler.module import AdderModel

    W = {} if w is None else {id(nm.weight): torch.tensor(w, dtype=dt)}
    return AdderModel._norm(torch.tensor(pts, dtype=dt), nm, W).double().numpy()


def _box_points(lo, hi, n, dt, rng):
    """Every corner when there are few, else random ones, plus uniform points and points with each
    box-holding coordinate at 0 (where the sum of squares is least), rounded to dt inside the box."""
    d = lo.shape[-1]
    k = 2**d if d <= 6 else 64
    bits = (np.arange(k)[:, None] >> np.arange(d)) & 1 if d <= 6 else rng.integers(0, 2, (k, d))
    corners = np.where(bits == 1, hi, lo)
    inner = lo + (hi - lo) * rng.uniform(size=(n, d))
    zeroed = np.where((lo <= 0) & (hi >= 0), 0.0, inner)
    pts = np.concatenate([corners, inner, zeroed]).astype(dt).astype(np.float64)
    return np.clip(pts, lo, hi)


@pytest.mark.parametrize("dt", [torch.float32, torch.float64])
def test_rms_norm_rule_contains_torch_on_random_boxes(dt):
    """The soundness test of the correlated RMSNorm rule: real RMSNorm outputs (the module's own
    code) at corners and inner points of many random boxes (around 0, tiny, huge, width 0)."""
    rng = np.random.default_rng(7)
    npdt = np.float32 if dt == torch.float32 else np.float64
    for trial in range(600):
        d = int(rng.choice([2, 3, 5, 8, 16]))
        scale = 10.0 ** rng.choice([rng.uniform(-3, 3), rng.uniform(-25, -15), rng.uniform(8, 15)])
        c = rng.normal(0, scale, d)
        half = np.abs(rng.normal(0, scale, d)) * rng.choice([0.0, 1e-6, 0.1, 1.0, 3.0], d)
        lo, hi = (c - half).astype(npdt).astype(np.float64), (c + half).astype(npdt).astype(np.float64)
        w = None if trial % 3 == 0 else rng.normal(0, 2, d).astype(npdt).astype(np.float64)
        nm, ctx = _rms_case(dt, d, w, eps=[1e-6, 1e-5][trial % 2])
        y = norm(Interval(lo[None], hi[None]), nm, ctx)
        got = _torch_rms(_box_points(lo, hi, 40, npdt, rng), nm, w, dt)
        assert np.all((y.lo <= got) & (got <= y.hi)), (trial, d, scale)


def _old_rule(monkeypatch, x, nm, ctx):
    from adder.verify.prove import layers

    with monkeypatch.context() as m:
        m.setattr(layers, "_rms_correlated", lambda *a: None)
        return norm(x, nm, ctx)


def test_rms_norm_rule_is_never_wider_and_tighter_when_one_rsqrt_scales_all(monkeypatch):
    rng = np.random.default_rng(3)
    for _ in range(100):
        d = 6
        c, half = rng.normal(0, 3, d), np.abs(rng.normal(0, 1, d))
        w = rng.normal(0, 1, d).astype(np.float32).astype(np.float64)
        nm, ctx = _rms_case(torch.float32, d, w)
        x = Interval((c - half)[None], (c + half)[None])
        new, old = norm(x, nm, ctx), _old_rule(monkeypatch, x, nm, ctx)
        assert np.all((old.lo <= new.lo) & (new.hi <= old.hi))
    # one dominant coordinate: the coordinate-wise rule lets its x and its rsqrt vary independently
    lo, hi = np.array([[9.0] + [0.9] * 7]), np.array([[11.0] + [1.1] * 7])
    nm, ctx = _rms_case(torch.float32, 8, None)
    new, old = norm(Interval(lo, hi), nm, ctx), _old_rule(monkeypatch, Interval(lo, hi), nm, ctx)
    assert new.width()[0, 0] < old.width()[0, 0] / 5
    exact = lambda x: x / np.sqrt((x**2).mean(-1, keepdims=True) + 1e-6)  # noqa: E731
    assert new.lo[0, 0] <= exact(np.array([9.0] + [1.1] * 7))[0] and exact(np.array([11.0] + [0.9] * 7))[0] <= new.hi[0, 0]


def test_outward_steps_are_never_below_nextafter():
    """`up` and `down` (fl(x +- (|x| 2^-52 + 2^-1074)), the fast outward rounding every bound is computed
    with) are at least one ulp outward on every kind of float: random bit patterns, both signs, every
    power of two and its neighbours (binade edges), subnormals, zeros, the largest floats, infinities."""
    from adder.verify.prove.intervals import down, up

    rng = np.random.default_rng(0)
    bits = rng.integers(0, 2**63, 1_000_000, dtype=np.int64).view(np.float64)
    edges = np.concatenate([2.0**np.arange(-1074, 1024), -2.0**np.arange(-1074, 1024)])
    special = np.array([0.0, -0.0, 3 * 2.0**-1074, np.finfo(float).max, -np.finfo(float).max, np.inf, -np.inf])
    with np.errstate(over="ignore", invalid="ignore"):
        x = np.concatenate([bits, -bits, special, edges, np.nextafter(edges, 0), np.nextafter(edges, np.inf)])
        x = x[~np.isnan(x)]  # (random bit patterns include NaNs)
        above, below = np.nextafter(x, np.inf), np.nextafter(x, -np.inf)
    assert np.all(up(x) >= above) and np.all(down(x) <= below)
    fin = np.isfinite(x)
    with np.errstate(over="ignore"):  # and never more than three ulps (three only near 2^-1022)
        assert np.all(up(x[fin]) <= np.nextafter(np.nextafter(above[fin], np.inf), np.inf))
    assert np.isnan(up(np.nan)) and up(-np.inf) == -np.finfo(float).max and down(np.inf) == np.finfo(float).max
    few = x[:: len(x) // 200][:200]  # a short array takes nextafter itself
    assert np.array_equal(up(few), np.nextafter(few, np.inf)) and np.array_equal(down(few), np.nextafter(few, -np.inf))


def test_bisection_stops_hopeless_rows_and_gives_unsplittable_ones_more_levels():
    """`propagate.bisect_margins` with the search's `splittable`: a row whose bound cannot reach zero
    stops after one round of halvings instead of spending every level; a row that needs 14 halvings
    gets them only where its case cannot be split any more (else the split is the cheaper way)."""
    from adder.verify.prove.propagate import DEEPEST_BISECTIONS, MAX_BISECTIONS, bisect_margins

    assert DEEPEST_BISECTIONS > MAX_BISECTIONS
    seen = []

    def tail(b, rows):  # row 0: -1 - width (never positive); row 1: 1e-4 - width (needs 2^-14)
        seen.extend(rows.tolist())
        return np.where(rows == 0, -1.0, 1e-4) - (b.hi[:, 0] - b.lo[:, 0])

    box = Interval(np.zeros((2, 1)), np.ones((2, 1)))
    ok, worst, trees = bisect_margins(box, tail, splittable=np.array([True, False]))
    assert not ok[0] and ok[1] and worst[1] > 0
    assert seen.count(0) < 2 ** 5  # stopped after 4 levels (31 boxes), not all 10 (2,047)
    assert trees[1] is not None  # its tree records the 14 halvings for the checker
    seen.clear()
    ok, _, _ = bisect_margins(box, tail, splittable=np.array([True, True]))
    assert not ok[1]  # splittable: at most MAX_BISECTIONS, the case is split instead
    ok, _, _ = bisect_margins(box, tail)  # no split information (check mode, point bounds): the old limit
    assert not ok[1]
