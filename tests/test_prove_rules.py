"""The prover's arithmetic: each bound rule must contain what float32 torch really computes.

Soundness starts here: every interval rule is tested against the operation it bounds, on
random inputs (float32 torch results must lie inside the interval computed from the exact
inputs), and the automaton programmes against brute force on small cases.
"""

import mpmath
import numpy as np
import torch

from adder.verify.prove.automaton import CARRY_OUT, Cases, best_paths, count_paths, path_of
from adder.verify.prove.floatmodel import FLOAT32, dot_rounded, library, rounded
from adder.verify.prove.intervals import Interval
from adder.verify.prove.layers import SILU_ARGMIN, SILU_MIN
from adder.verify.prove.libm import float32_range
from adder.verify.prove.rigorous import exp_enclosure

RNG = np.random.default_rng(0)


def f32(x):
    return np.asarray(x, np.float32).astype(np.float64)


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
    assert count_paths(cases)[0] == (100 - len(np.unique(np.flatnonzero(~cases.mask[0, 0, :, 0])))) * 100


def test_path_of_and_contains():
    pairs, carries = path_of(5193798811, 1806201129)
    assert carries[1] == 1 and carries[2] == 0 and carries[10] == 0
    cases = Cases.everything(2).fix_carry_out(0, np.array([1, 0]))
    assert cases.contains(pairs, carries).tolist() == [True, False]


def test_exp_enclosure_of_huge_arguments_stays_a_lower_bound():
    for rigorous in (True, False):
        lo, hi = exp_enclosure(np.array([800.0, 1e4]), np.array([800.0, 1e4]), rigorous)
        assert np.all(lo >= 1e307) and np.all(np.isinf(hi))
