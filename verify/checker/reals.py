"""The checker's arithmetic: intervals of reals in float64, every result stepped outward.

Written apart from the search's interval code on purpose (the checker is the trusted base
and must not inherit a bug it is meant to catch), and as plainly as possible:

* IEEE 754 rounds + - * / sqrt to nearest, so the exact result lies within half an ulp of the
  computed one; one `np.nextafter` step outward encloses it (`lower`, `upper`).
* A float64 sum of n terms lies within (n - 1) 2^-53 / (1 - (n - 1) 2^-53) sum |terms| of the
  exact sum in any order (Higham, Accuracy and Stability, Thm 4.4); `sum_lower`/`sum_upper`
  subtract/add 2 n 2^-53 sum |terms| plus n underflow quanta, then step outward.
* exp, the sigmoid and erf come from python-flint's arb balls (rigorous, 80 bits).

`Floats` is the error model of the *model's* arithmetic (float32 or float64): what one of its
operations, sums and library calls may do to a value (Higham ch. 2-3, stated in
docs/prove.md). Nothing here knows about transformers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_U64 = 2.0**-53
_TINY64 = 2.0**-1074


def lower(x) -> np.ndarray:
    """The next float64 below x: a lower bound of the exact value that x was rounded from."""
    return np.nextafter(np.asarray(x, dtype=np.float64), -np.inf)


def upper(x) -> np.ndarray:
    return np.nextafter(np.asarray(x, dtype=np.float64), np.inf)


def sum_lower(t: np.ndarray, axis: int = -1) -> np.ndarray:
    """A lower bound of the exact sum of the float64 values t along `axis`."""
    n = t.shape[axis] + 1
    with np.errstate(invalid="ignore"):
        return lower(t.sum(axis) - (2 * n * _U64 * np.abs(t).sum(axis) + n * _TINY64))


def sum_upper(t: np.ndarray, axis: int = -1) -> np.ndarray:
    n = t.shape[axis] + 1
    with np.errstate(invalid="ignore"):
        return upper(t.sum(axis) + (2 * n * _U64 * np.abs(t).sum(axis) + n * _TINY64))


@dataclass(frozen=True)
class Box:
    """Elementwise intervals [lo, hi] of float64 arrays."""

    lo: np.ndarray
    hi: np.ndarray

    @staticmethod
    def exact(x) -> "Box":
        x = np.asarray(x, dtype=np.float64)
        return Box(x, x)

    @property
    def shape(self):
        return self.lo.shape

    def __getitem__(self, idx) -> "Box":
        return Box(self.lo[idx], self.hi[idx])

    def mag(self) -> np.ndarray:
        return np.maximum(np.abs(self.lo), np.abs(self.hi))

    def widen(self, r) -> "Box":
        return Box(lower(self.lo - r), upper(self.hi + r))

    def meet(self, o: "Box") -> "Box":
        return Box(np.maximum(self.lo, o.lo), np.minimum(self.hi, o.hi))

    def __add__(self, o) -> "Box":
        o = o if isinstance(o, Box) else Box.exact(o)
        return Box(lower(self.lo + o.lo), upper(self.hi + o.hi))

    def __neg__(self) -> "Box":
        return Box(-self.hi, -self.lo)

    def __mul__(self, o) -> "Box":
        o = o if isinstance(o, Box) else Box.exact(o)
        with np.errstate(invalid="ignore"):
            c = [self.lo * o.lo, self.lo * o.hi, self.hi * o.lo, self.hi * o.hi]
        c = [np.where(np.isnan(x), 0.0, x) for x in c]  # 0 * inf: the zero end of a product with an unbounded box
        return Box(lower(np.minimum(np.minimum(c[0], c[1]), np.minimum(c[2], c[3]))),
                   upper(np.maximum(np.maximum(c[0], c[1]), np.maximum(c[2], c[3]))))

    def square(self) -> "Box":
        a, b = self.lo * self.lo, self.hi * self.hi
        zero = (self.lo <= 0) & (self.hi >= 0)
        return Box(np.where(zero, 0.0, lower(np.minimum(a, b))), upper(np.maximum(a, b)))

    def divide(self, o: "Box") -> "Box":
        """self / o for o > 0 or o < 0 throughout (the caller's divisors are scales, never 0)."""
        assert np.all((o.lo > 0) | (o.hi < 0))
        c = [self.lo / o.lo, self.lo / o.hi, self.hi / o.lo, self.hi / o.hi]
        return Box(lower(np.minimum(np.minimum(c[0], c[1]), np.minimum(c[2], c[3]))),
                   upper(np.maximum(np.maximum(c[0], c[1]), np.maximum(c[2], c[3]))))

    def times(self, w: np.ndarray) -> "Box":
        """self @ w.T for exact weights w [out, in], rounded outward; a zero weight adds exactly 0
        (also against an unbounded box)."""
        a, b = self.lo[..., None, :] * w, self.hi[..., None, :] * w
        lo, hi = np.where(w == 0, 0.0, np.minimum(a, b)), np.where(w == 0, 0.0, np.maximum(a, b))
        return Box(sum_lower(lower(lo)), sum_upper(upper(hi)))

    def dot(self, o: "Box") -> "Box":
        """sum over the last axis of self * o (broadcasting)."""
        p = self * o
        return Box(sum_lower(p.lo), sum_upper(p.hi))


# ---------------------------------------------------------------------------- arb
def _flint():
    try:
        import flint
    except ImportError:  # pragma: no cover - python-flint is a dependency of adder
        from ...compiler.errors import AdderError
        raise AdderError("the certificate checker needs python-flint: pip install python-flint") from None
    flint.ctx.prec = 80
    return flint


def arb(x: float):
    """An arb ball holding the float64 x exactly."""
    return _flint().arb(x)


def arb_map(fn, x: np.ndarray) -> Box:
    """Enclose fn(x) at each float64 point x, fn written on arb balls (`fn(arb) -> arb`).
    Each distinct point is evaluated once; the ball's ends are stepped outward when read."""
    flint = _flint()
    flat = np.asarray(x, dtype=np.float64).ravel()
    values, back = np.unique(flat, return_inverse=True)
    mid, rad = np.zeros(len(values)), np.full(len(values), np.inf)
    for i, v in enumerate(values.tolist()):
        if v == v and abs(v) != float("inf"):
            b = fn(flint.arb(v))
            mid[i], rad[i] = float(b.mid()), float(b.rad())
    lo, hi = lower(lower(mid) - upper(rad)), upper(upper(mid) + upper(rad))
    shape = np.shape(x)
    return Box(lo[back].reshape(shape), hi[back].reshape(shape))


def exp_box(b: Box) -> Box:
    """exp over each interval (exp increases: its ends' enclosures). Both ends in one `arb_map`:
    a point box, or an end two boxes share, is evaluated once."""
    big = 700.0  # above this exp(x) leaves float64: enclosed by [max float, inf]
    ends = arb_map(lambda a: a.exp(), np.minimum(np.stack([b.lo, b.hi]), big))
    hi = np.where(b.hi > big, np.inf, ends.hi[1])
    return Box(np.maximum(ends.lo[0], 0.0), hi)


def exp_near_zero_upper(x: np.ndarray) -> np.ndarray:
    """An upper bound of exp(x) at each point x in [0, 1] (+inf elsewhere), without arb:
    exp(x) = 1 + x + sum_{k>=2} x^k / k! and that tail is at most x^2 (e - 2) < x^2 for x <= 1, so
    1 + x + x^2, its two additions and one product rounded up."""
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return np.where((x >= 0) & (x <= 1), upper(1 + upper(x + upper(x * x))), np.inf)


# ---------------------------------------------------------------------------- the model's floats
@dataclass(frozen=True)
class Floats:
    """One float format's error model: fl(x op y) = (x op y)(1 + d) + t, |d| <= u, |t| <= eta;
    a library function within `ulps` ulps (relative 2 ulps u), the stated assumption."""

    name: str
    u: float
    eta: float
    ulps: float = 2.0
    silu_abs: float = 0.0  # silu: where exp(-x) overflows, the float result is 0 (absolute error)
    gelu_x: float = 0.0  # gelu: erf's absolute error times |x| / 2 (absolute error per |x|)

    def gamma(self, n: int) -> float:
        """gamma_n = n u / (1 - n u), rounded up."""
        return float(upper(n * self.u / lower(1 - n * self.u)))

    def op(self, z: Box, n: int = 1, mag: np.ndarray | None = None) -> Box:
        """The float result of an n-term sum or dot product (n = 1: one operation) whose exact
        value lies in z; `mag` bounds the sum of the terms' magnitudes (default |z|)."""
        mag = z.mag() if mag is None else mag
        return z.widen(upper(upper(self.gamma(n) * mag) + n * self.eta))

    def library(self, z: Box, absolute=0.0) -> Box:
        """A library function's float result whose exact value lies in z."""
        rel = 2 * self.ulps * self.u
        return z.widen(upper(upper(upper(rel * z.mag()) + self.ulps * self.eta) + absolute))

    def scalar(self, x: float) -> Box:
        """A Python float combined with a tensor: torch may round it to the tensor's dtype or not."""
        if self.name == "float32":
            return Box(np.float64(min(np.float32(x), x)), np.float64(max(np.float32(x), x)))
        return Box.exact(np.float64(x))


FLOATS = {"float32": Floats("float32", 2.0**-24, 2.0**-149, silu_abs=2.0**-100, gelu_x=8 * 2.0**-24),
          "float64": Floats("float64", 2.0**-53, 2.0**-1074, silu_abs=2.0**-1000, gelu_x=8 * 2.0**-53)}
