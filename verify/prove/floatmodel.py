"""The floating-point error model: what one float32/float64 operation may do to a value.

Standard model (Higham, *Accuracy and Stability of Numerical Algorithms*, ch. 2-3):

    fl(x op y) = (x op y)(1 + d) + t,   |d| <= u,   |t| <= eta    (op in + - * /, sqrt)

with u the unit roundoff (2^-24 float32, 2^-53 float64) and eta the smallest subnormal.
A sum or dot product of n terms, in *any* order and with or without fused multiply-add,
is within `gamma_n * sum |terms|` of the exact one, `gamma_n = n u / (1 - n u)`: so one
bound covers BLAS, the batched verifier and the one-at-a-time decode alike. A library
function (exp, rsqrt, silu, gelu) is assumed correct to K ulps on the inputs that occur (gelu:
plus an absolute error proportional to |x|, see `GELU_X_ULPS`); that assumption is stated in
every verdict and checked by `libm.py`.

`REAL` is the same model with u = eta = K = 0: the exact-real-arithmetic model with the
same (float) weights, which is what a `real-only` verdict is about.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .intervals import Interval, up


@dataclass(frozen=True)
class Arithmetic:
    """Unit roundoff, underflow and library-function accuracy of one float format."""

    name: str
    u: float  # unit roundoff
    eta: float  # smallest positive subnormal (absolute error of an underflowing result)
    exp_ulps: float  # assumed accuracy of exp (softmax's and torch.exp), in ulps
    rsqrt_ulps: float  # assumed accuracy of rsqrt
    act_ulps: float  # assumed accuracy of smooth activations (silu, gelu)
    act_abs: float  # ... plus this absolute error: float32 silu returns 0 where exp(-x) overflows
    gelu_x: float  # gelu(x) also within gelu_x * |x| (erf's absolute error, scaled by x/2)

    @property
    def exact(self) -> bool:
        return self.u == 0

    def gamma(self, n: int) -> float:
        """gamma_n = n u / (1 - n u), rounded up."""
        return float(up(np.float64(n * self.u / (1 - n * self.u)))) if self.u else 0.0

    def ulps(self, k: float) -> float:
        """Relative error of k ulps: one ulp of y is at most 2u|y| (normal range)."""
        return 2 * k * self.u


#: The assumed library accuracy. Sleef's and glibc's float32/float64 exp and the division-
#: based rsqrt that ATen uses are documented at <= 1 ulp; 2 leaves room and is what
#: `libm.py` checks the installed torch against.
LIBRARY_ULPS = 2.0

#: Absolute error allowed to activations besides the ulps: silu(x) = x / (1 + exp(-x)) in
#: float32 is 0 for x < -88.7 (exp overflows) where the true value is ~1e-37; checked too.
ACT_ABS = {"float32": 2.0**-100, "float64": 2.0**-1000}

#: gelu(x) = x/2 (1 + erf(x / sqrt 2)), as torch computes it, inherits erf's *absolute* error
#: times |x|/2, which no ulp bound of the result covers where 1 + erf cancels (x < 0): torch's
#: vectorised float32 erf is Abramowitz-Stegun 7.1.26 (absolute error 1.5e-7, ~2.5 u) and
#: returns exactly -1 below x ~ -5.5, where gelu's true value is still -1e-7. So gelu is
#: allowed, besides the ulps, u * GELU_X_ULPS * |x| absolute; measured worst on AVX-512
#: (torch 2.13): 5.8 u|x| (vectorised float32 kernel), 1.7 u|x| (scalar std::erf). Checked too
#: (`libm._gelu_k`; changing this constant changes that measure: bump `libm.MEASURES_VERSION`).
GELU_X_ULPS = 8.0

FLOAT32 = Arithmetic("float32", 2.0**-24, 2.0**-149, LIBRARY_ULPS, LIBRARY_ULPS, LIBRARY_ULPS, ACT_ABS["float32"],
                     GELU_X_ULPS * 2.0**-24)
FLOAT64 = Arithmetic("float64", 2.0**-53, 2.0**-1074, LIBRARY_ULPS, LIBRARY_ULPS, LIBRARY_ULPS, ACT_ABS["float64"],
                     GELU_X_ULPS * 2.0**-53)
REAL = Arithmetic("real", 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
ARITHMETICS = {a.name: a for a in (FLOAT32, FLOAT64, REAL)}


def rounded(z: Interval, ar: Arithmetic, n: int = 1, mag: np.ndarray | None = None) -> Interval:
    """Enclose the float result of an n-term sum / dot product (n = 1: one operation) whose
    exact value lies in `z`; `mag` bounds the sum of |terms| (default |z|)."""
    if ar.exact:
        return z
    mag = z.mag() if mag is None else mag
    return z.widen(up(ar.gamma(n) * mag) + n * ar.eta)


def library(z: Interval, ar: Arithmetic, ulps: float, absolute: float = 0.0) -> Interval:
    """Enclose a library function's float result whose exact value lies in `z`."""
    if ar.exact:
        return z
    return z.widen(up(ar.ulps(ulps) * z.mag()) + ulps * ar.eta + absolute)


def dot_mag(x: Interval, w: np.ndarray) -> np.ndarray:
    """An upper bound of sum |x_i w_i| over x's box, per output row of w [out, in]."""
    return up((x.mag()[..., None, :] * np.abs(w)).sum(-1) * (1 + 2.0**-50))


def dot_rounded(x: Interval, w: np.ndarray, ar: Arithmetic) -> Interval:
    """x @ w.T with exact weights w [out, in], as the model computes it in `ar`."""
    z = x.matvec(w)
    if ar.exact:
        return z
    return rounded(z, ar, n=w.shape[-1], mag=dot_mag(x, w))


def dot_intervals(x: Interval, y: Interval, ar: Arithmetic) -> Interval:
    """sum(x * y, -1) of two intervals, as the model computes it."""
    z = x.dot(y)
    if ar.exact:
        return z
    return rounded(z, ar, n=x.shape[-1], mag=up((x.mag() * y.mag()).sum(-1) * (1 + 2.0**-50)))
