"""Enclosures of the transcendental functions the bounds need: `exp`, and `gelu` (erfc).

Two ways, one contract (`exp_enclosure(lo, hi)` returns float64 arrays with
`lo' <= exp(x) <= hi'` for every x in [lo, hi]; `gelu_enclosure(x)` encloses gelu at points):

* `rigorous=True`: python-flint's arb ball arithmetic (80 bits), each endpoint converted to
  float64 and stepped outward. This is what the certificate checker uses, so a `proven`
  verdict never depends on the accuracy of numpy's or the C library's `exp`.
* `rigorous=False`: numpy's `exp` stepped four ulps outward. Used by the search only, to find
  the case split and the bounds quickly; everything it finds is re-checked rigorously.
"""

from __future__ import annotations

import math
from functools import cache

import numpy as np
import torch

from ...compiler.errors import AdderError
from .intervals import down, up

_PREC = 80
#: Below log(largest float64) with room: above it exp is enclosed as [max float64, inf].
_EXP_MAX = 709.0
#: Beyond +-40, gelu is x or 0 to within the smallest subnormal (see `gelu_enclosure`).
_GELU_FAR = 40.0
_ETA = 2.0**-1074


def _flint():
    try:
        import flint
    except ImportError:  # pragma: no cover - python-flint is a dependency of adder
        raise AdderError("the proof checker needs python-flint: pip install python-flint") from None
    flint.ctx.prec = _PREC
    return flint


def _outward(x: np.ndarray, steps: int, direction: float) -> np.ndarray:
    for _ in range(steps):
        x = np.nextafter(x, direction)
    return x


def _balls(mid: np.ndarray, rad: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Arb balls (their midpoints and radii read as float64) as float64 bounds, stepped outward
    (the conversions round). Elementwise; one numpy call per step, not one per ball."""
    return down(down(mid) - up(rad)), up(up(mid) + up(rad))


def _ball(b) -> tuple[float, float]:
    """One arb ball as float64 bounds (`_balls`)."""
    lo, hi = _balls(np.float64(float(b.mid())), np.float64(float(b.rad())))
    return float(lo), float(hi)


def _map_balls(f, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """float64 bounds of the arb ball f(arb(x)) at each point x of `values` (1-d)."""
    arb = _flint().arb
    mid, rad = np.empty_like(values), np.empty_like(values)
    for i, x in enumerate(values.tolist()):
        b = f(arb(x))
        mid[i], rad[i] = float(b.mid()), float(b.rad())
    return _balls(mid, rad)


def _arb_bounds(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lo, hi = np.zeros_like(values), np.zeros_like(values)  # exp(-inf) is exactly 0
    big = values > _EXP_MAX  # exp(x) exceeds every float64: the largest one is a lower bound
    lo[big], hi[big] = np.finfo(np.float64).max, np.inf
    mid = ~big & ~np.isneginf(values)
    a, b = _map_balls(lambda x: x.exp(), values[mid])
    lo[mid], hi[mid] = np.maximum(0.0, a), b
    return lo, hi


def exp_enclosure(lo: np.ndarray, hi: np.ndarray, rigorous: bool) -> tuple[np.ndarray, np.ndarray]:
    """[exp(lo), exp(hi)] enclosed outward (exp is increasing). -inf maps to exactly 0."""
    lo, hi = np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64)
    if not rigorous:
        with np.errstate(over="ignore", under="ignore"):
            return (np.where(np.isneginf(lo), 0.0, np.maximum(_outward(np.exp(lo), 4, -np.inf), 0.0)),
                    np.where(np.isneginf(hi), 0.0, _outward(np.exp(hi), 4, np.inf)))
    uniq, inv = np.unique(np.concatenate([lo.ravel(), hi.ravel()]), return_inverse=True)
    ulo, uhi = _arb_bounds(uniq)
    n = lo.size
    return ulo[inv[:n]].reshape(lo.shape), uhi[inv[n:]].reshape(hi.shape)


# ---------------------------------------------------------------------------- gelu
# gelu(x) = x Phi(x) = x/2 erfc(-x/sqrt 2), torch's F.gelu (approximate="none").
# gelu'(x) = Phi(x) + x phi(x) and gelu''(x) = phi(x) (2 - x^2): gelu' falls on (-inf, -sqrt 2)
# from its limit 0 at -inf (so is negative there), rises on [-sqrt 2, sqrt 2] from
# gelu'(-sqrt 2) < 0 to gelu'(sqrt 2) > 0, and falls towards 1 after. So gelu' has exactly one
# root x* ~ -0.7518: gelu decreases on (-inf, x*], increases on [x*, inf), its minimum is gelu(x*).
# Far out, Mills' ratio Phi(-t) <= phi(t)/t (t > 0) gives |x| Phi(-|x|) <= phi(x) < 2^-1074 for
# |x| >= 40: gelu(x) lies in [-2^-1074, 0] for x <= -40 and in [x - 2^-1074, x] for x >= 40.


@cache
def _sqrt2():
    """sqrt(2) as an arb ball at the checker's precision (the same ball every time: made once)."""
    return _flint().arb(2).sqrt()


def _arb_gelu(b):
    return b * (-b / _sqrt2()).erfc() / 2


def _arb_gelu_slope(b):
    """gelu'(b) = Phi(b) + b phi(b)."""
    flint = _flint()
    return (-b / _sqrt2()).erfc() / 2 + b * (-b * b / 2).exp() / (2 * flint.arb.pi()).sqrt()


def gelu_enclosure(x: np.ndarray, rigorous: bool) -> tuple[np.ndarray, np.ndarray]:
    """[lo, hi] with lo <= gelu(x) <= hi at each point x (float64 array; +-inf are limits, NaN
    gives [-inf, inf]). Rigorous: arb balls; otherwise torch's float64 erfc, widened by the
    error of its argument's rounding (relative 2 z^2 u for erfc(z)) and a few ulps."""
    x = np.asarray(x, dtype=np.float64)
    lo, hi = np.full(x.shape, -np.inf), np.full(x.shape, np.inf)
    neg, pos = x <= -_GELU_FAR, x >= _GELU_FAR
    lo[neg], hi[neg] = -_ETA, 0.0
    lo[pos], hi[pos] = down(x[pos]), x[pos]
    mid = ~neg & ~pos & ~np.isnan(x)
    if rigorous:
        uniq, inv = np.unique(x[mid], return_inverse=True)
        ulo, uhi = _map_balls(_arb_gelu, uniq)
        lo[mid], hi[mid] = ulo[inv.reshape(-1)], uhi[inv.reshape(-1)]
        return lo, hi
    v = x[mid]
    t = torch.from_numpy(v)
    g = (t / 2 * torch.special.erfc(-t * math.sqrt(0.5))).numpy()
    slack = (16 + 4 * v * v) * 2.0**-53 * np.abs(g) + 64 * _ETA * (1 + np.abs(v))
    lo[mid], hi[mid] = down(g - slack), up(g + slack)
    return lo, hi


def gelu_longdouble(x: np.ndarray) -> np.ndarray:
    """gelu at float64 points, to longdouble precision: each arb ball's midpoint read back as a
    float64 plus its remainder (a double-double). The reference of libm's float64 check."""
    flint = _flint()
    out = np.empty(x.shape, np.longdouble)
    for i, v in enumerate(np.asarray(x, np.float64)):
        g = _arb_gelu(flint.arb(float(v)))
        head = float(g.mid())
        out[i] = np.longdouble(head) + np.longdouble(float(g.mid() - head))
    return out


@cache
def gelu_minimum() -> tuple[float, float, float]:
    """(a, b, m): a < x* < b and m <= gelu(x*) = min gelu, each verified in arb balls, no
    constant taken on faith: gelu'(a) < 0 < gelu'(b) (so the one root x* lies between), and m
    is the lower end of gelu over the ball [a, b]."""
    flint = _flint()

    def slope(v: float) -> float:
        return 0.5 * math.erfc(-v / math.sqrt(2)) + v * math.exp(-v * v / 2) / math.sqrt(2 * math.pi)

    a, b = -1.0, -0.5  # float bisection for a first guess (gelu' < 0 at -1, > 0 at -0.5)
    for _ in range(200):
        c = 0.5 * (a + b)
        if c in (a, b):
            break
        a, b = (c, b) if slope(c) < 0 else (a, c)
    guess_lo, guess_hi = a, b
    for width in range(8, 60):  # widen the bracket until arb decides both signs
        a, b = guess_lo - 2.0**(width - 56), guess_hi + 2.0**(width - 56)
        if _arb_gelu_slope(flint.arb(a)) < 0 and _arb_gelu_slope(flint.arb(b)) > 0:
            break
    else:  # pragma: no cover - arb at 80 bits decides at the first width
        raise AdderError("could not bracket the minimum of gelu")
    m, _ = _ball(_arb_gelu(flint.arb(a).union(flint.arb(b))))
    return a, b, m
