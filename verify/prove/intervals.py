"""Interval arithmetic on numpy float64 arrays, rounded outward.

An `Interval` holds arrays `lo <= hi` (same shape) and encloses a set of reals. Every
operation returns an interval that contains the exact result for every choice of inputs:
IEEE 754 rounds `+ - * / sqrt` to nearest, so the exact value lies within one ulp of the
computed one and one `nextafter` step outward restores the enclosure. Sums of many terms
are widened by the standard bound `gamma_n * sum |terms|` of float64 summation, whatever
order numpy uses. Transcendental functions (only `exp` is needed) come from `rigorous.py`.

This module knows nothing about transformers or floating-point *models*: it is the
arithmetic the bounds are computed in. `floatmodel.py` adds the rounding of the model's
own float32/float64 operations on top.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Context, Decimal

import numpy as np

U64 = 2.0**-53   # unit roundoff of float64, the arithmetic the bounds are computed in
_TINY = 2.0**-1074  # smallest positive subnormal float64


_STEP = 2.0**-52  # |x| * _STEP is at least one ulp of x (and below two)
_MAX = np.finfo(np.float64).max
FEW = 256  # up to this many values, `nextafter`'s one call costs less than `_step`'s four operations


def up(x: np.ndarray) -> np.ndarray:
    """At least one ulp towards +inf: an upper bound of the exact value that `x` rounded to nearest.

    Computed as fl(x + fl(|x| 2^-52 + 2^-1074)), five times faster than `np.nextafter` and never
    below it (tests/test_prove_rules.py checks it on every kind of float). Why: for normal |x| >=
    2^-970, a = |x| 2^-52 is exact and lies in [ulp(x), 2 ulp(x)), so x + a is at least x + ulp
    (at -2^e, where the spacing above halves, x + a is itself a float above x) and rounding to
    nearest, being monotone, keeps it there; adding 2^-1074 to a never lowers it; below 2^-970
    a may round, but a + 2^-1074 still exceeds ulp(x) >= 2^-1074, and for subnormal x every term
    is a multiple of 2^-1074, so x + b is exact and >= x + 2^-1074. -inf (an overflow of a
    finite value) becomes the most negative float, as `nextafter` makes it; NaN stays NaN. An
    array of at most FEW values takes `nextafter` itself (its one call is cheaper there)."""
    return _step(x, 1.0)


def down(x: np.ndarray) -> np.ndarray:
    """At least one ulp towards -inf (`up`, mirrored): a lower bound of the exact value."""
    return _step(x, -1.0)


def _step(x, direction: float) -> np.ndarray:
    """x + direction (|x| 2^-52 + 2^-1074), an infinity against the direction kept finite (`up`).
    In place on one temporary: this is the bounds' innermost operation (a fifth of a proof's time
    was its temporaries)."""
    x = np.asarray(x, dtype=np.float64)
    if 0 < x.ndim and x.size <= FEW:
        return np.nextafter(x, direction * np.inf)  # one float exactly: on a few values, the cheaper call
    against = -direction * np.inf
    with np.errstate(invalid="ignore", over="ignore"):
        if x.ndim == 0:
            return np.float64(direction * -_MAX) if x == against else x + direction * (abs(x) * _STEP + _TINY)
        r = np.abs(x)
        r *= _STEP
        r += _TINY
        if direction > 0:
            r += x
        else:
            np.subtract(x, r, out=r)
    np.copyto(r, direction * -_MAX, where=(x == against))
    return r


def decimal_up(x: np.ndarray, digits: int) -> np.ndarray:
    """The nearest float to x rounded up to `digits` significant decimal digits: >= x, and
    written back in at most `digits` digits (a short number in a certificate). Exact: the
    decimal is rounded from the float's exact value, and rounding to nearest is monotone,
    so the float nearest a decimal >= x is >= x. Non-finite entries are kept."""
    return _decimal_round(x, Context(prec=digits, rounding=ROUND_CEILING))


def decimal_down(x: np.ndarray, digits: int) -> np.ndarray:
    """As `decimal_up`, rounded towards -inf: <= x."""
    return _decimal_round(x, Context(prec=digits, rounding=ROUND_FLOOR))


def _decimal_round(x: np.ndarray, ctx: Context) -> np.ndarray:
    flat = np.asarray(x, dtype=np.float64).ravel()
    out = np.array([float(ctx.plus(Decimal(v))) if np.isfinite(v) else v for v in flat.tolist()], dtype=np.float64)
    return out.reshape(np.shape(x))


def _sum_slack(terms: np.ndarray, axis: int) -> np.ndarray:
    """Bound on the float64 rounding of `terms.sum(axis)` (and of the one addition that
    applies it): gamma_n * sum|terms| <= 2 n u sum|terms| while n u < 1/2, plus underflow."""
    n = terms.shape[axis] + 1
    return (2 * n * U64) * np.abs(terms).sum(axis=axis) + n * _TINY


def sum_down(terms: np.ndarray, axis: int = -1) -> np.ndarray:
    """A lower bound of the exact sum of `terms` (exact float64 values) along `axis`."""
    return down(terms.sum(axis=axis) - _sum_slack(terms, axis))


def sum_up(terms: np.ndarray, axis: int = -1) -> np.ndarray:
    """An upper bound of the exact sum of `terms` along `axis`."""
    return up(terms.sum(axis=axis) + _sum_slack(terms, axis))


@dataclass
class Interval:
    """Elementwise intervals [lo, hi] (numpy float64 arrays of one shape)."""

    lo: np.ndarray
    hi: np.ndarray

    # ------------------------------------------------------------------ construction
    @classmethod
    def point(cls, x) -> "Interval":
        """Exact float64 values (e.g. float32 weights, which float64 holds exactly)."""
        x = np.asarray(x, dtype=np.float64)
        return cls(x, x.copy())

    @classmethod
    def hull(cls, a, b) -> "Interval":
        a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
        return cls(np.minimum(a, b), np.maximum(a, b))

    @property
    def shape(self):
        return self.lo.shape

    def __getitem__(self, idx) -> "Interval":
        return Interval(self.lo[idx], self.hi[idx])

    def reshape(self, *shape) -> "Interval":
        return Interval(self.lo.reshape(*shape), self.hi.reshape(*shape))

    def mag(self) -> np.ndarray:
        """max |x| over the interval."""
        return np.maximum(np.abs(self.lo), np.abs(self.hi))

    def width(self) -> np.ndarray:
        return self.hi - self.lo

    def contains(self, x, slack: float = 0.0) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        return (self.lo - slack <= x) & (x <= self.hi + slack)

    def widen(self, r) -> "Interval":
        """[lo - r, hi + r] for a non-negative radius r (rounded outward)."""
        r = np.asarray(r, dtype=np.float64)
        return Interval(down(self.lo - r), up(self.hi + r))

    # ------------------------------------------------------------------ arithmetic
    def __add__(self, o) -> "Interval":
        o = as_interval(o)
        return Interval(down(self.lo + o.lo), up(self.hi + o.hi))

    __radd__ = __add__

    def __neg__(self) -> "Interval":
        return Interval(-self.hi, -self.lo)

    def __sub__(self, o) -> "Interval":
        return self + (-as_interval(o))

    def __rsub__(self, o) -> "Interval":
        return as_interval(o) - self

    def __mul__(self, o) -> "Interval":
        o = as_interval(o)
        p = np.stack(np.broadcast_arrays(self.lo * o.lo, self.lo * o.hi, self.hi * o.lo, self.hi * o.hi))
        p = np.where(np.isnan(p), 0.0, p)  # 0 * inf: only from unbounded masks, never reached
        return Interval(down(p.min(0)), up(p.max(0)))

    __rmul__ = __mul__

    def square(self) -> "Interval":
        lo2, hi2 = self.lo * self.lo, self.hi * self.hi
        straddles = (self.lo <= 0) & (self.hi >= 0)
        return Interval(np.where(straddles, 0.0, down(np.minimum(lo2, hi2))), up(np.maximum(lo2, hi2)))

    def recip(self) -> "Interval":
        if np.any((self.lo <= 0) & (self.hi >= 0)):
            raise ZeroDivisionError("interval division by an interval containing 0")
        return Interval(down(1.0 / self.hi), up(1.0 / self.lo))

    def __truediv__(self, o) -> "Interval":
        o = as_interval(o)
        if np.any((o.lo <= 0) & (o.hi >= 0)):
            raise ZeroDivisionError("interval division by an interval containing 0")
        q = np.stack(np.broadcast_arrays(self.lo / o.lo, self.lo / o.hi, self.hi / o.lo, self.hi / o.hi))
        return Interval(down(q.min(0)), up(q.max(0)))

    def rsqrt(self) -> "Interval":
        """1 / sqrt(x) for x > 0 (sqrt and / are correctly rounded: two outward steps each)."""
        if np.any(self.lo <= 0):
            raise ZeroDivisionError("rsqrt of an interval reaching 0")
        return Interval(down(1.0 / up(np.sqrt(self.hi))), up(1.0 / down(np.sqrt(self.lo))))

    def relu(self) -> "Interval":
        return Interval(np.maximum(self.lo, 0.0), np.maximum(self.hi, 0.0))

    def sum(self, axis: int = -1) -> "Interval":
        return Interval(sum_down(self.lo, axis), sum_up(self.hi, axis))

    def matvec(self, w: np.ndarray) -> "Interval":
        """x @ w.T for exact weights w [out, in] (center-radius free: endpoint products)."""
        w = np.asarray(w, dtype=np.float64)
        a, b = self.lo[..., None, :] * w, self.hi[..., None, :] * w  # [..., out, in]
        lo, hi = np.minimum(a, b), np.maximum(a, b)
        # the products above are rounded to nearest: one ulp outward each
        return Interval(sum_down(down(lo)), sum_up(up(hi)))

    def meet(self, o: "Interval") -> "Interval":
        """Two enclosures of the same values, intersected; NaN rows (along the last axis) where
        they do not meet: one of them does not hold, and such a row fails. A NaN bound (an
        undefined one) gives way to the other."""
        lo, hi = np.fmax(self.lo, o.lo), np.fmin(self.hi, o.hi)
        empty = (lo > hi).any(-1, keepdims=True)
        return Interval(np.where(empty, np.nan, lo), np.where(empty, np.nan, hi))

    def dot(self, o: "Interval", axis: int = -1) -> "Interval":
        """sum(self * o) along `axis` (both intervals)."""
        return (self * o).sum(axis)


def as_interval(x) -> Interval:
    return x if isinstance(x, Interval) else Interval.point(x)


def stack(items: list[Interval], axis: int = 0) -> Interval:
    return Interval(np.stack([i.lo for i in items], axis), np.stack([i.hi for i in items], axis))


def concat(items: list[Interval], axis: int = -1) -> Interval:
    return Interval(np.concatenate([i.lo for i in items], axis), np.concatenate([i.hi for i in items], axis))
