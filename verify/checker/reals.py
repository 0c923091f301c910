"""The checker's arithmetic: intervals of reals in float64, every result stepped outward.

Written apart from the search's interval code on purpose (the checker is the trusted base
and must not inherit a bug it is meant to catch), and as plainly as possible:

* IEEE 754 rounds + - * / sqrt to nearest, so the exact result lies within half an ulp of the
  computed one; one step of at least a float outward encloses it (`lower`, `upper`).
* A float64 sum of n terms lies within (n - 1) 2^-53 / (1 - (n - 1) 2^-53) sum |terms| of the
  exact sum in any order (Higham, Accuracy and Stability, Thm 4.4); `sum_lower`/`sum_upper`
  subtract/add 2 n 2^-53 sum |terms| plus n underflow quanta, then step outward.
* exp comes from two tables of python-flint arb balls (rigorous, 80 bits) and a Taylor
  polynomial with its remainder (`exp_points`); erf and the activations' minima from arb balls.

`Floats` is the error model of the *model's* arithmetic (float32 or float64): what one of its
operations, sums and library calls may do to a value (Higham ch. 2-3, stated in
docs/prove.md). Nothing here knows about transformers.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from functools import cache
from math import factorial

import numpy as np

U64 = 2.0**-53
_TINY64 = 2.0**-1074


_SPACING = 2.0**-52  # |x| 2^-52 is at least the spacing of float64 at x (and below twice it)
_LARGEST = float(np.finfo(np.float64).max)
_FEW = 256  # up to this many values, nextafter's one call costs less than the four operations


def lower(x) -> np.ndarray:
    """A float64 at least one float below x: a lower bound of the exact value that x was rounded
    from (`upper`, mirrored)."""
    return _step(x, -1.0)


def upper(x) -> np.ndarray:
    """A float64 at least one float above x (at most two; three for |x| < 2^-970): x + (|x| 2^-52
    + 2^-1074), rounded to nearest. Why it is never below np.nextafter(x, inf): |x| 2^-52, rounded,
    is at least the spacing of float64 at x (a power of two that the exact product is at least),
    adding 2^-1074 keeps it so (for subnormal x the spacing is 2^-1074), and x plus at least its
    spacing, rounded to nearest (monotone), is at least the next float. -inf (an overflow of a
    finite value) becomes the most negative float, as nextafter makes it. Four times nextafter's
    speed on large arrays; up to _FEW values take nextafter itself (tests/test_checker.py compares
    the two on every kind of float)."""
    return _step(x, 1.0)


def _step(x, sign: float) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.size <= _FEW:
        return np.nextafter(x, sign * np.inf)  # exactly one float: on a few values, the cheaper call
    out = np.abs(x, out=np.empty_like(x))  # then, in place: x + sign (|x| 2^-52 + 2^-1074)
    with np.errstate(invalid="ignore", over="ignore"):
        out *= _SPACING
        out += _TINY64
        if sign > 0:
            out += x
        else:
            np.subtract(x, out, out=out)
    out[x == -sign * np.inf] = -sign * _LARGEST
    return out if out.ndim else out[()]


def sum_lower(t: np.ndarray, axis: int = -1) -> np.ndarray:
    """A lower bound of the exact sum of the float64 values t along `axis`."""
    n = t.shape[axis] + 1
    with np.errstate(invalid="ignore"):
        return lower(t.sum(axis) - (2 * n * U64 * np.abs(t).sum(axis) + n * _TINY64))


def sum_upper(t: np.ndarray, axis: int = -1) -> np.ndarray:
    n = t.shape[axis] + 1
    with np.errstate(invalid="ignore"):
        return upper(t.sum(axis) + (2 * n * U64 * np.abs(t).sum(axis) + n * _TINY64))


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


# exp at many points without arb: exp(x) = exp(n) exp(f / 256) exp(d), with n = floor(x), f = 0..255
# and d = x - n - f / 256 in [0, 1/256). The two tables (1,456 and 256 values) come from arb once,
# each entry the nearest floats around its ball; exp(d) is its Taylor polynomial of degree 6, whose
# remainder d^7 / 7! e^xi (0 <= xi <= d <= 2^-7) is below (2^-7)^7 / 5000 < 3.6e-19 (under a hundredth of
# an ulp of exp(d) >= 1, so one constant serves every d). x * 256, its floor, n and f
# are exact in float64; d is computed and stepped outward, and so is every product and sum. The
# enclosure is ~11 floats wide (at most ~20, 4e-15 relative: tests/test_checker.py), where a
# per-point arb ball was 2-4, and the model's own roundings are 2^-24 (float32) or 2^-53 relative
# per operation; it takes half a microsecond a point, a third of arb's time.
_PER_UNIT = 256
_REMAINDER = 3.6e-19  # > 2^-49 / 5000 = (2^-7)^7 / 5000 ~ 3.55e-19: the Taylor remainder for every d <= 2^-7
_LEAST, _MOST = -746, 709  # exp(-746) < 2^-1074: below it float64 holds only 0; exp(710) > max float


def _taylor_coefficients() -> tuple[np.ndarray, np.ndarray]:
    """1/k! for k = 0..6 as float64 bounds below and above (exact where 1/k! is a float)."""
    lo, hi = [], []
    for k in range(7):
        exact, near = Fraction(1, factorial(k)), 1.0 / factorial(k)
        lo.append(near if Fraction(near) <= exact else float(lower(near)))
        hi.append(near if Fraction(near) >= exact else float(upper(near)))
    return np.array(lo), np.array(hi)


def _exp_table(points: np.ndarray) -> Box:
    """exp at each point, to the nearest floats below and above its arb ball (each end within a
    float of exp: the table's entries are as tight as float64 allows)."""
    flint = _flint()
    lo, hi = np.empty(len(points)), np.empty(len(points))
    for i, x in enumerate(points.tolist()):
        ball = flint.arb(x).exp()
        a = b = float(ball.mid())
        while not flint.arb(a) <= ball:
            a = float(np.nextafter(a, -np.inf))
        while not flint.arb(b) >= ball:
            b = float(np.nextafter(b, np.inf))
        lo[i], hi[i] = a, b
    return Box(lo, hi)


@cache
def _exp_tables() -> tuple[Box, Box, np.ndarray, np.ndarray]:
    """(exp(n) for n = _LEAST.._MOST, exp(f / 256) for f = 0..255, Taylor coefficients lo, hi)."""
    units = _exp_table(np.arange(_LEAST, _MOST + 1, dtype=np.float64))
    parts = _exp_table(np.arange(_PER_UNIT, dtype=np.float64) / _PER_UNIT)
    return (units, parts) + _taylor_coefficients()


def exp_points(x) -> Box:
    """An enclosure of exp at each float64 point of x (exp(-inf) = 0; above 709.78 exp leaves
    float64: [max float, inf]; NaN: [0, inf])."""
    units, parts, c_lo, c_hi = _exp_tables()
    x = np.asarray(x, dtype=np.float64)
    inside = (x >= _LEAST) & (x < _MOST + 1)
    z = np.where(inside, x, 0.0)
    t = np.floor(z * _PER_UNIT)  # exact: a scaling by 2^8 and a floor
    n = np.floor(t / _PER_UNIT)
    f = (t - n * _PER_UNIT).astype(np.int64)
    n = (n - _LEAST).astype(np.int64)
    g = t / _PER_UNIT
    d_lo, d_hi = np.maximum(lower(z - g), 0.0), upper(z - g)  # d in [0, 1/256], rounding included
    p_lo, p_hi = np.full(x.shape, c_lo[-1]), np.full(x.shape, c_hi[-1])
    for k in range(5, -1, -1):  # Horner: every term >= 0, so rounding each step down / up bounds it
        p_lo, p_hi = lower(c_lo[k] + lower(d_lo * p_lo)), upper(c_hi[k] + upper(d_hi * p_hi))
    p_hi = upper(p_hi + _REMAINDER)
    with np.errstate(over="ignore"):
        lo = lower(lower(units.lo[n] * parts.lo[f]) * p_lo)
        hi = upper(upper(units.hi[n] * parts.hi[f]) * p_hi)
    lo = np.where(inside, np.maximum(lo, 0.0), np.where(x >= _MOST + 1, _LARGEST, 0.0))
    hi = np.where(inside, hi, np.where(x >= _MOST + 1, np.inf, units.hi[0]))
    hi = np.where(np.isneginf(x), 0.0, np.where(np.isnan(x), np.inf, hi))
    return Box(lo, hi)


def exp_box(b: Box) -> Box:
    """exp over each interval (exp increases: its ends' enclosures); a box of points once."""
    lo = exp_points(b.lo)
    return Box(lo.lo, (lo if b.hi is b.lo else exp_points(b.hi)).hi)


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
