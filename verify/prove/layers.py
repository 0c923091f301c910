"""One bound rule per operation of `AdderModel.forward`, on intervals.

Each rule takes intervals that contain the values the *float* module holds (over every
input in the case being proven) and returns an interval that contains what the module
computes next: the exact operation on the interval, widened by that operation's rounding
(`floatmodel.py`). Under `REAL` arithmetic the same rules bound the real-arithmetic model.
The rules mirror `compiler/module.py` line by line; `softmax.py` holds the attention rule.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ...compiler.spec import MLP, Attention, Linear, Norm
from .floatmodel import Arithmetic, dot_intervals, dot_mag, dot_rounded, library, rounded
from .intervals import Interval, concat, down, sum_down, sum_up, up
from .rigorous import exp_enclosure, gelu_enclosure, gelu_minimum
from .weights import ModelWeights

#: silu(x) = x * sigmoid(x) has one minimum, at x* (where 1 + e^x + x = 0), and silu(x*) = x* + 1;
#: it is unimodal, so an interval's maximum is at an endpoint. Both enclosed to 1e-15 (tests/test_prove_rules.py recomputes them).
SILU_ARGMIN = (-1.2784645427610748, -1.2784645427610728)
SILU_MIN = -0.2784645427610748


#: The norms, activations and rotary conventions that have a bound rule below (`support.py` reads
#: these to tell, before any search, whether a model can be bounded at all).
NORM_RULES = ("rms",)
ACTIVATION_RULES = ("identity", "relu", "silu", "silu_mlx", "gelu")
ROTARY_RULES = ("half", "interleaved")


class Unsupported(Exception):
    """The model uses an operation the prover has no bound rule for (the verdict says which)."""


@dataclass
class Ctx:
    """What every rule needs: the weights, the arithmetic, exp's rigour, and a record of the
    input ranges of library functions (checked exhaustively by `libm.py`)."""

    mw: ModelWeights
    ar: Arithmetic
    rigorous: bool = False
    ranges: dict = field(default_factory=dict)
    #: Relational rules (the joint rule for several heads, `joint.py`, and ReLU hinge pairs,
    #: `hinge_pairs`) are used for the models that need them: several heads in the last
    #: attention, whose certificates' trees then cut the residual (`pipeline.cuts_residual`; the
    #: independent checker meets the same boxes, `checker.joint.relational`).
    relational: bool = field(init=False)
    #: The last attention's O as one matrix, where the joint rule applies (`joint_o`).
    joint_o: np.ndarray | None = field(init=False)
    #: What a search computes once per step and reads again (the inner layers, `inner.bound_inner`).
    memo: dict = field(default_factory=dict)

    def __post_init__(self):
        spec = getattr(self.mw, "spec", None)  # rule tests pass bare weights
        self.joint_o = joint_o(self.mw) if spec is not None and relational(spec) else None
        self.relational = self.joint_o is not None

    def note(self, fn: str, x: Interval, grid: float = 0.0) -> None:
        """Record that `fn` meets inputs in x's range; `grid` > 0 (a power of two): every one
        of them is a multiple of it (see `softmax.shift_grid`). Ranges: fn -> (lo, hi, grid)."""
        lo, hi = float(np.min(x.lo)), float(np.max(x.hi))
        if np.isfinite(lo) and np.isfinite(hi):
            old = self.ranges.get(fn, (lo, hi, grid))
            self.ranges[fn] = (min(old[0], lo), max(old[1], hi), min(old[2], grid))

    def exp(self, x: Interval) -> Interval:
        lo, hi = exp_enclosure(x.lo, x.hi, self.rigorous)
        return Interval(lo, hi)

    def gelu(self, x: np.ndarray) -> Interval:
        """gelu at the points x (exact float64 values), enclosed."""
        lo, hi = gelu_enclosure(x, self.rigorous)
        return Interval(lo, hi)


def relational(spec) -> bool:
    """Whether the relational rules may apply, by the spec: the last attention has several heads
    (plain softmax: softmax1's extra 1 in the denominator would need its own term; O without bias),
    `joint.py`; `Ctx.relational` also asks that O round like one matrix (`joint_o`, by the weights).
    Its keys may come from earlier layers: the
    rule's per-(position, token) terms are then bounded over the lattice box of each (position,
    token), which holds every context."""
    att = [b.layer for b in spec.blocks if isinstance(b.layer, Attention)][-1]
    return att.n_heads > 1 and att.softmax == "softmax" and att.o.bias is None


def joint_o(mw) -> np.ndarray | None:
    """The last attention's O as one matrix [d, H * vd], where the float O-projection rounds as one
    matrix-vector product: one matrix, or a chain whose later matrices only pick and sign what the
    first computes (entries 0 and +-1, at most one non-zero a row: each of their outputs is one
    input exactly, the zero products adding nothing). qwen148 writes O as [1 0 1 0] then e_4.
    None: some later matrix mixes or scales."""
    att = [b.layer for b in mw.spec.blocks if isinstance(b.layer, Attention)][-1]
    O = mw(att.o.weights[0])
    for m in att.o.weights[1:]:
        W = mw(m)
        if not (np.isin(W, (-1.0, 0.0, 1.0)).all() and ((W != 0).sum(1) <= 1).all()):
            return None
        O = W @ O
    return O


def linear(x: Interval, lin: Linear, ctx: Ctx) -> Interval:
    """x @ W1.T @ W2.T ... + bias (each product an n-term dot product)."""
    for m in lin.weights:
        x = dot_rounded(x, ctx.mw(m), ctx.ar)
    if lin.bias is not None:
        x = rounded(x + ctx.mw(lin.bias), ctx.ar)
    return x


def norm(x: Interval, nm: Norm | None, ctx: Ctx) -> Interval:
    """RMSNorm over the last axis: x * rsqrt(mean(x^2) + eps) * weight + bias.

    Two sound enclosures, intersected: the coordinate-wise one (mean square as an interval,
    rsqrt of it, times x: forgets that one r scales every coordinate) and `_rms_correlated`,
    which keeps that correlation (exact range of each coordinate, then the float error)."""
    if nm is None:
        return x
    if nm.kind not in NORM_RULES:
        raise Unsupported(f"{nm.kind} norm has no bound rule yet")
    ar, d = ctx.ar, x.shape[-1]
    sq = rounded(x.square(), ar)
    ms = rounded(sq.sum(-1) / float(d), ar, n=d + 1)  # a d-term sum, then one division
    eps = ctx.mw.eps(nm)
    ms = rounded(ms + eps, ar)
    if eps.lo > 0:  # a float sum of squares is >= 0 and rounding is monotone: the module's ms + eps >= eps
        ms = Interval(np.maximum(ms.lo, eps.lo), ms.hi)  # (keeps a huge or infinite box's rsqrt finite)
    ctx.note("rsqrt", ms)
    r = library(ms.rsqrt(), ar, ar.rsqrt_ulps)
    y = rounded(x * Interval(r.lo[..., None], r.hi[..., None]), ar)
    w = ctx.mw(nm.weight)
    if w is not None:
        y = rounded(y * w, ar)
    tight = _rms_correlated(x, eps, w, ar)
    if tight is not None:
        y = Interval(np.maximum(y.lo, tight.lo), np.minimum(y.hi, tight.hi))
    if nm.bias is not None:
        y = rounded(y + ctx.mw(nm.bias), ar)
    return y


def _rms_upper(h: np.ndarray, s_lo: np.ndarray, s_hi: np.ndarray, eps: Interval, d: int) -> np.ndarray:
    """An upper bound of max h / sqrt(h^2/d + s/d + e) over s in [s_lo, s_hi], e in eps (h fixed):
    for h > 0 the smallest denominator, for h <= 0 the largest. Rounded outward."""
    pos = h > 0
    m_lo = down(down(down(down(h * h) + s_lo) / d) + eps.lo)  # >= eps.lo > 0
    m_hi = up(up(up(up(h * h) + s_hi) / d) + eps.hi)
    den = np.where(pos, down(np.sqrt(m_lo)), up(np.sqrt(m_hi)))
    v = up(h / den)
    return np.where(np.isnan(v), np.inf, v)  # inf / inf from an unbounded box: no bound here


def _rms_correlated(x: Interval, eps: Interval, w: np.ndarray | None, ar: Arithmetic) -> Interval | None:
    """RMSNorm's range over the box x, keeping that one rsqrt scales every coordinate (None when
    eps may be 0: the relative error argument below needs ms >= eps > 0).

    Exact part. y_i = x_i / sqrt(x_i^2/d + S_i/d + e), S_i = sum_{j != i} x_j^2, is increasing in
    x_i (dy_i/dx_i = (S_i/d + e) / (x_i^2/d + S_i/d + e)^{3/2} > 0) and |y_i| decreases in S_i and
    in e; x_i and S_i vary independently over a box. So max y_i is at x_i = hi_i with S_i, e
    smallest if hi_i > 0 (largest if hi_i <= 0), min y_i = -max over the mirrored box [-hi, -lo].
    S_i's least value takes x_j^2 = 0 where [lo_j, hi_j] holds 0, else min(lo_j^2, hi_j^2); its
    greatest max(lo_j^2, hi_j^2). |y_i| < sqrt(d) always. All rounded outward.

    Float part (standard model fl(a op b) = (a op b)(1 + delta) + t, |delta| <= u, |t| <= eta).
    The module computes ms_f = fl(fl(fl(sum_j fl(x_j^2)) / d) + e): every x_j^2 term carries at
    most d + 2 relative factors (its square, d - 1 additions, the division, + e; d + 3 if the mean
    multiplies by a rounded 1/d) and e one, all terms >= 0, so ms_f = M (1 + g1) + a with M =
    sum x_j^2 / d + e, |g1| <= gamma_{d+3}, |a| <= (2d + 3) eta (underflowing squares, sum,
    division). M >= e >= eps.lo, so ms_f = M (1 + g), |g| <= g' = gamma_{d+3} + (2d+3) eta / eps.lo,
    and rsqrt(ms_f) = rsqrt(M) (1 + g)^{-1/2} with (1 + g)^{-1/2} in [1 - g', 1 + g'] for g' <= 1/2.
    Then r_f = rsqrt(ms_f)(1 + rho) + tau (K = rsqrt_ulps: |rho| <= 2Ku, |tau| <= K eta), the
    products fl(x_i r_f), fl(. * w_i) one (1 + delta) + t each. Hence
        y_f,i = w_i y_i (1 + theta) + E_i,   |theta| <= s / (1 - s),  s = g' + 2Ku + 2u,
        |E_i| <= 2 |w_i| (K eta max(|x_i|, 1) + eta) + eta
    (a product of factors 1 + e_k, sum |e_k| <= s < 1, lies in [1 - s, 1 + s/(1 - s)])."""
    if not eps.lo > 0:
        return None
    d = x.shape[-1]
    q = x.square()  # q.lo: least x_j^2 (0 where the box holds 0), q.hi: greatest; rounded outward
    off = ~np.eye(d, dtype=bool)  # [i, j]: j != i
    zero = np.zeros(())
    s_lo = sum_down(np.where(off, q.lo[..., None, :], zero))  # [..., i]
    s_hi = sum_up(np.where(off, q.hi[..., None, :], zero))
    s_lo, s_hi = np.where(np.isnan(s_lo), 0.0, s_lo), np.where(np.isnan(s_hi), np.inf, s_hi)  # inf - inf
    bound = up(np.sqrt(float(d)))
    hi = np.minimum(_rms_upper(x.hi, s_lo, s_hi, eps, d), bound)
    lo = np.maximum(-_rms_upper(-x.lo, s_lo, s_hi, eps, d), -bound)
    y = Interval(lo, hi)
    if not ar.exact:
        g = up(ar.gamma(d + 3) + up(up((2 * d + 3) * ar.eta) / eps.lo))
        s = up(up(g + ar.ulps(ar.rsqrt_ulps)) + 2 * ar.u)
        if not np.all(g <= 0.5):
            return None
        theta = up(s / down(1 - s))
        y = y.widen(up(theta * y.mag()))
    w_mag = np.ones(()) if w is None else np.abs(w)
    if w is not None:
        y = y * w
    if not ar.exact:
        e = up(up(ar.rsqrt_ulps * ar.eta) * np.maximum(x.mag(), 1.0))
        y = y.widen(up(up(2 * w_mag * up(e + ar.eta)) + ar.eta))
    return y


def _silu_points(x: np.ndarray, ctx: Ctx) -> Interval:
    e = ctx.exp(Interval.point(-x))
    return Interval.point(x) / (e + 1.0)


def _unimodal(x: Interval, a: Interval, b: Interval, argmin: tuple[float, float], minimum: float) -> Interval:
    """The image of x under a function that decreases up to its one minimiser (in the bracket
    `argmin`) and increases after, given its values at x's ends (a at lo, b at hi) and a lower
    bound of its minimum: an endpoint on a monotone branch, else the minimum; the maximum is
    always at an endpoint."""
    left = x.hi <= argmin[0]  # decreasing branch
    right = x.lo >= argmin[1]  # increasing branch
    lo = np.where(left, b.lo, np.where(right, a.lo, minimum))
    hi = np.where(left, a.hi, np.where(right, b.hi, np.maximum(a.hi, b.hi)))
    return Interval(lo, hi)


def activation(x: Interval, act: str, ctx: Ctx) -> Interval:
    if act == "identity":
        return x
    if act == "relu":
        return x.relu()
    if act in ("silu", "silu_mlx"):
        ctx.note(act, x)
        z = _unimodal(x, _silu_points(x.lo, ctx), _silu_points(x.hi, ctx), SILU_ARGMIN, SILU_MIN)
        return library(z, ctx.ar, ctx.ar.act_ulps, ctx.ar.act_abs)
    if act == "gelu":  # F.gelu, approximate="none": x Phi(x), minimum at x* ~ -0.7518 (rigorous.py)
        ctx.note(act, x)
        a0, a1, m = gelu_minimum()
        z = _unimodal(x, ctx.gelu(x.lo), ctx.gelu(x.hi), (a0, a1), m)
        # torch's erf carries an absolute error, which x/2 (1 + erf) multiplies by |x|/2
        return library(z, ctx.ar, ctx.ar.act_ulps, up(ctx.ar.gelu_x * x.mag()))
    raise Unsupported(f"activation {act!r} has no bound rule yet")


def mlp(x: Interval, m: MLP, ctx: Ctx) -> Interval:
    """down(act(up(x))) or down(act(gate(x)) * up(x)); ReLU hinge pairs also by `hinge_pairs`."""
    u = linear(x, m.up, ctx)
    if m.gate is not None:
        h = rounded(activation(linear(x, m.gate, ctx), m.act, ctx) * u, ctx.ar)
    else:
        h = activation(u, m.act, ctx)
    out = linear(h, m.down, ctx)
    if m.act == "relu" and m.gate is None and ctx.relational:
        paired = hinge_pairs(x, u, h, m, ctx)
        if paired is not None:
            out = out.meet(paired)
    return out


def hinge_pairs(x: Interval, u: Interval, h: Interval, m: MLP, ctx: Ctx) -> Interval | None:
    """The ReLU MLP's output again, with each *hinge pair* bounded as one function.

    Two units with the same weight row w and biases b1, b2 read the same z = w . x, and
    relu(z + b1) - relu(z + b2) is a clamped ramp, monotone in z: over a box its range is its
    values at the ends of z's range. Interval arithmetic bounds the two units separately and
    their difference by the sum of their widths (for a step of height 5e-12 and gain 2e11,
    fblissjr33's carry, that is the whole line). A down row reads the pair as
    D1 h1 + D2 h2 = D1 (h1 - h2) + (D1 + D2) h2. Rounding: each unit's float pre-activation is
    within e_i of z + b_i (e_i: how far `linear` widened it), relu is 1-Lipschitz, so the float
    difference is within e_1 + e_2 of the ramp; the down product is then rounded as any dot
    product (`floatmodel.rounded`, magnitudes of the plain unit boxes). None when there is no
    pair (or up / down are not single matrices)."""
    if len(m.up.weights) != 1:
        return None
    W = ctx.mw(m.up.weights[0])  # [U, d]
    pairs = [(i, j) for i in range(len(W)) for j in range(i + 1, len(W)) if np.array_equal(W[i], W[j])]
    used = [i for p in pairs for i in p]
    if not pairs or len(used) != len(set(used)):
        return None
    b = ctx.mw(m.up.bias) if m.up.bias is not None else np.zeros(len(W))
    z = x.matvec(W)  # [..., U]: the exact w . x (outward)
    ar = ctx.ar
    # `u` is z widened by linear's rounding radius, the same over the box: the float pre-activation is within e of z + b
    e = np.maximum(up(np.maximum(down(z.lo + b) - u.lo, u.hi - up(z.hi + b))), 0.0)
    D = ctx.mw(m.down.weights[0])  # [r, U]
    single = [i for i in range(len(W)) if i not in used]
    lo = [np.zeros(z.shape[:-1] + (len(D),))]
    hi = [np.zeros(z.shape[:-1] + (len(D),))]

    def add(term: Interval):
        lo.append(term.lo)
        hi.append(term.hi)

    for i in single:
        add(h[..., i:i + 1] * D[:, i])
    for i, j in pairs:
        if b[i] < b[j]:
            i, j = j, i  # ramp(z) = relu(z + b_i) - relu(z + b_j), b_i >= b_j: non-decreasing
        ramp_lo = down(np.maximum(down(z.lo[..., i] + b[i]), 0.0) - np.maximum(up(z.lo[..., i] + b[j]), 0.0))
        ramp_hi = up(np.maximum(up(z.hi[..., i] + b[i]), 0.0) - np.maximum(down(z.hi[..., i] + b[j]), 0.0))
        slack = up(e[..., i] + e[..., j])
        ramp = Interval(down(ramp_lo - slack)[..., None], up(ramp_hi + slack)[..., None])
        add(ramp * D[:, i])
        if np.any(D[:, i] + D[:, j]):
            add(h[..., j:j + 1] * Interval(down(D[:, i] + D[:, j]), up(D[:, i] + D[:, j])))
    y = Interval(sum_down(np.stack(np.broadcast_arrays(*lo)), 0), sum_up(np.stack(np.broadcast_arrays(*hi)), 0))
    out = rounded(y, ar, n=len(W), mag=dot_mag(h, D))
    for w in m.down.weights[1:]:
        out = dot_rounded(out, ctx.mw(w), ar)
    if m.down.bias is not None:
        out = rounded(out + ctx.mw(m.down.bias), ar)
    return out


def rotate(x: Interval, cos: np.ndarray, sin: np.ndarray, convention: str, ar: Arithmetic) -> Interval:
    """RoPE on x [..., hd] with this position's tables [hd/2]: each output is a two-term dot
    product (x0 c - x1 s, x0 s + x1 c), rounded as one (covers mul/sub and complex FMA)."""
    if convention == "interleaved":
        x0, x1 = x[..., 0::2], x[..., 1::2]
    else:
        half = x.shape[-1] // 2
        x0, x1 = x[..., :half], x[..., half:]
    mag = up(x0.mag() * np.abs(cos) + x1.mag() * np.abs(sin))
    r0 = rounded(x0 * cos - x1 * sin, ar, n=2, mag=mag)
    r1 = rounded(x0 * sin + x1 * cos, ar, n=2, mag=mag)
    if convention == "interleaved":
        out = np.stack([r0.lo, r1.lo], -1).reshape(x.shape), np.stack([r0.hi, r1.hi], -1).reshape(x.shape)
        return Interval(*out)
    return concat([r0, r1])


def dot_scores(q: Interval, k: Interval, ctx: Ctx) -> Interval:
    """q . k over the head dimension (broadcasting leading axes)."""
    return dot_intervals(q, k, ctx.ar)

