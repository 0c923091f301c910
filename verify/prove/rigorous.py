"""Enclosures of `exp`, the one transcendental function the bounds need.

Two ways, one contract (`exp_enclosure(lo, hi)` returns float64 arrays with
`lo' <= exp(x) <= hi'` for every x in [lo, hi]):

* `rigorous=True`: python-flint's arb ball arithmetic (80 bits), each endpoint converted to
  float64 and stepped outward. This is what the certificate checker uses, so a `proven`
  verdict never depends on the accuracy of numpy's or the C library's `exp`.
* `rigorous=False`: numpy's `exp` stepped four ulps outward. Used by the search only, to find
  the case split and the bounds quickly; everything it finds is re-checked rigorously.
"""

from __future__ import annotations

import numpy as np

from ...compiler.errors import AdderError
from .intervals import down, up

_PREC = 80
#: Below log(largest float64) with room: above it exp is enclosed as [max float64, inf].
_EXP_MAX = 709.0


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


def _arb_bounds(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    flint = _flint()
    lo, hi = np.empty_like(values), np.empty_like(values)
    for i, x in enumerate(values):
        if np.isneginf(x):
            lo[i] = hi[i] = 0.0
            continue
        if x > _EXP_MAX:  # exp(x) exceeds every float64: the largest one is a lower bound
            lo[i], hi[i] = np.finfo(np.float64).max, np.inf
            continue
        b = flint.arb(float(x)).exp()
        m, r = float(b.mid()), float(b.rad())
        lo[i] = max(0.0, float(down(down(m) - up(r))))
        hi[i] = float(up(up(m) + up(r)))
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
