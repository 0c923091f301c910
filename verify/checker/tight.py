"""Float32 boxes whose ends are float32 values, and sums bounded over every summation order.

Where a one-layer model's attention is exactly one-hot (`table.py`), everything after it is a
function of a few tokens, and the boxes below hold nearly single points. Then the general
rule for a sum (within gamma_n sum |terms| of the exact value, `reals.Floats.op`) is the
loosest part of a bound: on logits near 1000 it allows +-3 float32 ulps, where a margin may be
two. This module bounds the same float operations tighter, under the same assumption about
the kernels: every sum of n terms is computed by some binary tree of float32 additions, each
possibly fused with one product (FMA), or exactly and rounded once.

Two facts make that tractable. (1) Rounding to nearest is monotone, so each such tree's
float result is non-decreasing in every term: its least value over a box is its value at the
box's lower corner (per term: the end that makes the product least), and the least over all
trees is found by dynamic programming over subsets of the terms (`tree_sum`): a subset's least
partial sum is the least over its splits of the rounded sum of the parts' least sums (or of a
fused product with the other part's least sum). (2) A float32 result known to lie in a real
interval lies in that interval snapped inwards to float32 (`snap`): every library-function
enclosure of `bounds.Rules` is tightened by it for free.

Products of two float32 are exact in float64; a float32 sum is rounded by numpy itself; a
fused a * b + c is rounded once through round-to-odd in float64 (`round_sum`). Float32 only:
float64 products are not exact in any wider numpy type.
"""

from __future__ import annotations

import numpy as np

from ...compiler.spec import Linear, Norm
from .bounds import Rules
from .joint import hinge_pairs
from .reals import Box, lower, sum_lower, sum_upper, upper

#: A dot product with more non-zero weights than this falls back to the gamma rule (`Rules.linear`).
MAX_TERMS = 6


def rn(x: np.ndarray) -> np.ndarray:
    """The float32 nearest to each float64 value (exact values in, e.g. products of two float32)."""
    return np.asarray(x, np.float64).astype(np.float32).astype(np.float64)


def add32(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The float32 sum of float32 values (numpy rounds it correctly)."""
    with np.errstate(over="ignore", invalid="ignore"):
        return (np.asarray(a).astype(np.float32) + np.asarray(b).astype(np.float32)).astype(np.float64)


def round_sum(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The float32 nearest to a + b for exact float64 a, b (a fused multiply-add's one rounding).
    TwoSum gives the exact error of the float64 sum; a non-zero error with an even last bit moves
    the sum one float64 ulp towards it (round to odd), after which rounding to float32 is correct
    (53 >= 24 + 2 bits)."""
    with np.errstate(over="ignore", invalid="ignore"):
        s = a + b
        bb = s - a
        err = (a - (s - bb)) + (b - bb)
        even = (s.view(np.int64) & 1) == 0
        s = np.where((err != 0) & even & np.isfinite(s), np.nextafter(s, np.where(err > 0, np.inf, -np.inf)), s)
    return rn(s)


def snap(b: Box) -> Box:
    """The float32 values inside b: [smallest float32 >= lo, largest float32 <= hi]."""
    lo, hi = rn(b.lo), rn(b.hi)
    lo = np.where(lo < b.lo, np.nextafter(lo.astype(np.float32), np.float32(np.inf)).astype(np.float64), lo)
    hi = np.where(hi > b.hi, np.nextafter(hi.astype(np.float32), np.float32(-np.inf)).astype(np.float64), hi)
    return Box(lo, hi)


def products(x: Box, y: Box) -> Box:
    """Exact range of x * y over the box (float64 holds a product of two float32 exactly)."""
    with np.errstate(invalid="ignore"):
        c = [x.lo * y.lo, x.lo * y.hi, x.hi * y.lo, x.hi * y.hi]
    return Box(np.minimum(np.minimum(c[0], c[1]), np.minimum(c[2], c[3])),
               np.maximum(np.maximum(c[0], c[1]), np.maximum(c[2], c[3])))


def scaled(x: Box, w: float) -> Box:
    """Exact range of x * w for a float32 constant w."""
    a, b = x.lo * w, x.hi * w
    return Box(a, b) if w >= 0 else Box(b, a)


def squares(x: Box) -> Box:
    """Exact range of x^2 over the box."""
    lo = np.where((x.lo <= 0) & (x.hi >= 0), 0.0, np.minimum(x.lo * x.lo, x.hi * x.hi))
    return Box(lo, np.maximum(x.lo * x.lo, x.hi * x.hi))


def tree_sum(terms: list[Box]) -> Box:
    """Every float32 value sum(terms) can take over any binary tree of additions, each possibly
    fused with one term's product, or rounded once from the exact sum. terms: exact product
    ranges (float64 [N] boxes). Dynamic programme over subsets (module docstring)."""
    n = len(terms)
    lo, hi, exact = {}, {}, {}
    for i, t in enumerate(terms):
        lo[1 << i], hi[1 << i] = rn(t.lo), rn(t.hi)
        exact[1 << i] = bool((lo[1 << i] == t.lo).all() and (hi[1 << i] == t.hi).all())  # fusing changes nothing
    for S in range(1, 1 << n):
        if S in lo:
            continue
        first = S & -S
        rest = S ^ first
        lows, highs = [], []
        sub = rest
        while True:  # the part holding the lowest term: first | sub, the other: S minus it
            A = first | sub
            B = S ^ A
            if B:
                lows.append(add32(lo[A], lo[B]))
                highs.append(add32(hi[A], hi[B]))
                for one, other in ((A, B), (B, A)):
                    if one & (one - 1) == 0 and not exact[one]:  # one term: its product may be fused into the addition
                        t = terms[one.bit_length() - 1]
                        lows.append(round_sum(t.lo, lo[other]))
                        highs.append(round_sum(t.hi, hi[other]))
            if sub == 0:
                break
            sub = (sub - 1) & rest
        lo[S], hi[S] = np.minimum.reduce(lows), np.maximum.reduce(highs)
    full = (1 << n) - 1
    once = _rounded_once(terms)
    return Box(np.minimum(lo[full], once.lo), np.maximum(hi[full], once.hi))


def _rounded_once(terms: list[Box]) -> Box:
    """The exact sum rounded to float32 once (an accumulator wider than float32): rounding is
    monotone, so the rounded ends of an enclosure of the exact sum enclose it (two terms: exact)."""
    if len(terms) == 2:
        return Box(round_sum(terms[0].lo, terms[1].lo), round_sum(terms[0].hi, terms[1].hi))
    return Box(rn(sum_lower(np.stack([t.lo for t in terms], -1))), rn(sum_upper(np.stack([t.hi for t in terms], -1))))


class Tight:
    """The module's float32 operations on boxes with float32 ends (see the module docstring);
    `rules` supplies the library-function enclosures (and records their input ranges)."""

    def __init__(self, rules: Rules):
        self.r = rules

    def embedding(self, n_pos: int) -> Box:
        """[P, V, d]: token embedding plus position embedding, one float32 addition (exact boxes)."""
        spec = self.r.spec
        E = self.r.w[id(spec.embed)]
        x = Box.exact(np.broadcast_to(E[None], (n_pos,) + E.shape).copy())
        return x if spec.pos is None else self.add(x, self.r.w[id(spec.pos)][:n_pos, None, :])

    def matvec(self, x: Box, W: np.ndarray) -> Box:
        """x [..., in] @ W.T [in, out], each output a tree sum of its non-zero terms."""
        if len(x.shape) != 2:
            lead = x.shape[:-1]
            y = self.matvec(Box(x.lo.reshape(-1, x.shape[-1]), x.hi.reshape(-1, x.shape[-1])), W)
            return Box(y.lo.reshape(*lead, -1), y.hi.reshape(*lead, -1))
        N = x.shape[0]
        out_lo, out_hi = np.zeros((N, W.shape[0])), np.zeros((N, W.shape[0]))
        wide = None
        for o, row in enumerate(W):
            nz = np.flatnonzero(row)
            if len(nz) > MAX_TERMS:
                if wide is None:
                    wide = snap(self.r.fl.op(x.times(W), n=W.shape[1],
                                             mag=(x.mag()[..., None, :] * np.abs(W)).sum(-1) * (1 + 2.0**-40)))
                out_lo[:, o], out_hi[:, o] = wide.lo[:, o], wide.hi[:, o]
                continue
            if len(nz) == 0:
                continue
            s = tree_sum([scaled(x[:, i], row[i]) for i in nz])
            out_lo[:, o], out_hi[:, o] = s.lo, s.hi
        return Box(out_lo, out_hi)

    def linear(self, x: Box, lin: Linear) -> Box:
        for m in lin.weights:
            x = self.matvec(x, self.r.w[id(m)])
        if lin.bias is not None:
            x = self.add(x, self.r.w[id(lin.bias)])
        return x

    @staticmethod
    def add(x: Box, y) -> Box:
        y = y if isinstance(y, Box) else Box.exact(np.asarray(y, np.float64))
        return Box(add32(x.lo, y.lo), add32(x.hi, y.hi))

    @staticmethod
    def mul(x: Box, y) -> Box:
        y = y if isinstance(y, Box) else Box.exact(np.asarray(y, np.float64))
        p = products(x, y)
        return Box(rn(p.lo), rn(p.hi))

    def norm(self, x: Box, nm: Norm | None) -> Box:
        """RMSNorm, x * rsqrt(mean(x^2) + eps) * weight (+ bias), as the module computes it: the
        squares' tree sum; the mean as sum / d or sum * fl(1/d), or the exact mean rounded once (a
        wider accumulator), with or without eps; eps added as a float32 or as the exact Python
        float; rsqrt within the library's ulps (snapped); then the rounded products."""
        if nm is None:
            return x
        d = x.shape[-1]
        sq = [squares(x[..., i]) for i in range(d)]
        total = tree_sum(sq)
        inv = rn(np.float64(1.0) / d)
        with np.errstate(over="ignore", invalid="ignore"):
            means = [rn(total.lo / d), rn(total.lo * inv)], [rn(total.hi / d), rn(total.hi * inv)]
        eps32, eps = rn(np.float64(nm.eps)), np.float64(nm.eps)
        lo = np.minimum.reduce([f(m, e) for m in means[0] for f, e in ((add32, eps32), (round_sum, eps))])
        hi = np.maximum.reduce([f(m, e) for m in means[1] for f, e in ((add32, eps32), (round_sum, eps))])
        # a kernel that accumulates wider than float32 and rounds once, after the mean or after eps
        exact = Box(sum_lower(np.stack([q.lo for q in sq], -1)), sum_upper(np.stack([q.hi for q in sq], -1)))
        m_lo, m_hi = lower(exact.lo / d), upper(exact.hi / d)
        for f, e in ((add32, eps32), (round_sum, eps)):
            lo, hi = np.minimum(lo, f(rn(m_lo), e)), np.maximum(hi, f(rn(m_hi), e))
        lo, hi = np.minimum(lo, rn(lower(m_lo + min(eps, eps32)))), np.maximum(hi, rn(upper(m_hi + max(eps, eps32))))
        self.r.note("rsqrt", lo, hi)
        with np.errstate(divide="ignore", invalid="ignore"):
            root = Box(lower(1.0 / upper(np.sqrt(hi))), upper(1.0 / lower(np.sqrt(lo))))
        root = snap(self.r.fl.library(Box(np.where(np.isnan(root.lo), 0.0, root.lo),
                                          np.where(np.isnan(root.hi), np.inf, root.hi))))
        y = self.mul(x, Box(root.lo[..., None], root.hi[..., None]))
        if nm.weight is not None:
            y = self.mul(y, self.r.w[id(nm.weight)])
        if nm.bias is not None:
            y = self.add(y, self.r.w[id(nm.bias)])
        return y

    def activation(self, x: Box, act: str) -> Box:
        return snap(self.r.activation(x, act))

    def mlp_block(self, h: Box, block) -> Box:
        """h + mlp(norm(h))."""
        m = block.layer
        x = self.norm(h, block.norm)
        up = self.linear(x, m.up)
        hidden = self.mul(self.activation(self.linear(x, m.gate), m.act), up) if m.gate is not None \
            else self.activation(up, m.act)
        out = self.linear(hidden, m.down)
        paired = hinge_pairs(self.r, x, up, hidden, m)  # a ReLU pair on one input is one ramp: met
        if paired is not None:
            out = snap(out.meet(paired))
        return self.add(h, out)
