"""The checker's bound for every operation of `AdderModel.forward`, read from the spec.

Each rule takes boxes holding what the float module can hold and returns a box holding what
it computes next: the exact operation (in `reals.Box`, rounded outward) widened by the float
error of that operation (`reals.Floats`). The rules follow `compiler/module.py` line by line;
the mathematics of each is in its docstring and in docs/prove.md ("The trusted base").

An attention layer is bounded for a batch of query rows over every key (position, token)
(`heads`), and its certified output range re-verified as one max-plus inequality per head
coordinate (`ratio_bounds_hold`). What reaches the last attention layer is `inner.py`'s; after
it only the query position matters (`tail_margin`, `Rules.margin_lower`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache

import numpy as np
import torch

from ...compiler.module import AdderModel, rotary
from ...compiler.scalars import scalar_to_float
from ...compiler.spec import MLP, Attention, Linear, Norm
from .joint import hinge_pairs
from .paths import Positions
from .reals import Box, Floats, arb, arb_map, exp_box, exp_near_zero_upper, exp_points, lower, sum_lower, sum_upper, upper


class NotCheckable(Exception):
    """The model uses something this checker has no rule for (the message says what)."""


class Rejected(Exception):
    """The certificate fails to establish something (the message says where and what)."""


def unsupported(spec) -> list[str]:
    """What in `spec` this checker cannot bound (empty: everything)."""
    out = []
    attn = [b for b in spec.blocks if isinstance(b.layer, Attention)]
    if not attn:
        out.append("no attention layer")
    norms = [b.norm for b in spec.blocks] + [spec.final_norm]
    norms += [n for b in attn for n in (b.layer.q_norm, b.layer.k_norm)]
    out += [f"{n.kind} norm" for n in norms if n is not None and n.kind != "rms"]
    out += [f"activation {b.layer.act!r}" for b in spec.blocks
            if isinstance(b.layer, MLP) and b.layer.act not in ACTIVATIONS]
    for b in attn:
        a = b.layer
        if a.softmax != "softmax":
            out.append(f"{a.softmax} attention")
        if a.rope is not None and a.rope.convention not in ("half", "interleaved"):
            out.append(f"rotary convention {a.rope.convention!r}")
    return list(dict.fromkeys(out))


@dataclass
class Rules:
    """The weights as the module uses them (float64 holds float32 exactly) and the float model."""

    model: AdderModel
    fl: Floats
    ranges: dict = field(default_factory=dict)  # library function -> (lo, hi, grid): the inputs it meets
    #: library function -> every input it can meet, where each note listed them (None: some note gave only a range)
    points: dict = field(default_factory=dict)

    def __post_init__(self):
        with torch.no_grad():
            self.w = {k: v.detach().cpu().to(torch.float64).numpy() for k, v in self.model.weights().items()}
        self.spec = self.model.spec

    def weight(self, e):
        return None if e is None else self.w[id(e)]

    def note(self, fn: str, lo, hi, grid: float = 0.0, points: np.ndarray | None = None) -> None:
        """Record that `fn` meets inputs in [lo, hi] (multiples of `grid` > 0), or, with `points`,
        exactly those inputs: the library check then evaluates `fn` on each of them."""
        lo, hi = float(np.min(lo)), float(np.max(hi))
        if np.isfinite(lo) and np.isfinite(hi):
            old = self.ranges.get(fn, (lo, hi, grid))
            self.ranges[fn] = (min(old[0], lo), max(old[1], hi), min(old[2], grid))
        if points is None:
            self.points[fn] = None
        elif self.points.get(fn, ()) is not None:
            self.points[fn] = np.union1d(self.points.get(fn, np.zeros(0)), points)

    # ------------------------------------------------------------------ linear maps
    def linear(self, x: Box, lin: Linear) -> Box:
        """x @ W1.T @ W2.T ... (+ bias): each product an n-term dot product, then one addition."""
        for m in lin.weights:
            W = self.w[id(m)]  # [out, in]
            mag = sum_upper(upper(x.mag()[..., None, :] * np.abs(W)))
            x = self.fl.op(x.times(W), n=W.shape[1], mag=mag)
        if lin.bias is not None:
            x = self.fl.op(x + self.w[id(lin.bias)])
        return x

    # ------------------------------------------------------------------ RMSNorm
    def norm(self, x: Box, nm: Norm | None) -> Box:
        """x * rsqrt(mean(x^2) + eps) * weight (+ bias), over the last axis: the meet of two
        enclosures, coordinate by coordinate (`_norm_plain`) and keeping that one factor scales
        every coordinate (`_norm_joint`)."""
        if nm is None:
            return x
        eps = self.fl.scalar(nm.eps)
        w = self.weight(nm.weight)
        y = self._norm_plain(x, eps, w)
        if eps.lo > 0:
            y = y.meet(self._norm_joint(x, eps, w))
        if nm.bias is not None:
            y = self.fl.op(y + self.w[id(nm.bias)])
        return y

    def _norm_plain(self, x: Box, eps: Box, w) -> Box:
        fl, d = self.fl, x.shape[-1]
        sq = fl.op(x.square())
        total = Box(sum_lower(sq.lo), sum_upper(sq.hi))
        mean = fl.op(Box(lower(total.lo / d), upper(total.hi / d)), n=d + 1)
        ms = fl.op(mean + eps)
        ms = Box(np.maximum(ms.lo, eps.lo), ms.hi)  # squares are >= 0 and rounding is monotone
        self.note("rsqrt", ms.lo, ms.hi)
        with np.errstate(divide="ignore", invalid="ignore"):
            r = Box(lower(1.0 / upper(np.sqrt(ms.hi))), upper(1.0 / lower(np.sqrt(ms.lo))))
        r = fl.library(Box(np.where(np.isnan(r.lo), 0.0, r.lo), np.where(np.isnan(r.hi), np.inf, r.hi)))
        y = fl.op(x * Box(r.lo[..., None], r.hi[..., None]))
        return y if w is None else fl.op(y * w)

    def _norm_joint(self, x: Box, eps: Box, w) -> Box:
        """y_i = x_i / sqrt((x_i^2 + S_i)/d + e), S_i = sum_{j != i} x_j^2, increases in x_i and
        |y_i| decreases in S_i and e, with x_i and S_i free over a box: max y_i at x_i = hi_i
        with the least S_i, e if hi_i > 0, the greatest if not; min y_i mirrored; |y_i| < sqrt d.

        Float: the module's mean square is M(1 + g), M = sum x_j^2 / d + e, |g| <= g' =
        gamma_{d+3} + (2d + 3) eta / e (each square carries at most d + 3 rounding factors,
        underflows are absolute and M >= e); rsqrt(M(1 + g)) = rsqrt(M)(1 + g'') with |g''| <= g'
        for g' <= 1/2; rsqrt is within 2K ulps relative plus K eta absolute; the products
        x * r and * w one factor and one eta each. So y_f = w y (1 + theta) + E, |theta| <=
        s / (1 - s), s = g' + 2Ku + 2u, |E| <= 2|w|(K eta max(|x|, 1) + eta) + eta."""
        fl, d = self.fl, x.shape[-1]
        q = x.square()
        off = ~np.eye(d, dtype=bool)
        s_lo = sum_lower(np.where(off, q.lo[..., None, :], 0.0))
        s_hi = sum_upper(np.where(off, q.hi[..., None, :], 0.0))
        s_lo, s_hi = np.where(np.isnan(s_lo), 0.0, s_lo), np.where(np.isnan(s_hi), np.inf, s_hi)
        root_d = upper(np.sqrt(float(d)))

        def largest(h):  # upper bound of max h / sqrt((h^2 + S)/d + e) at this h
            with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
                den_lo = lower(np.sqrt(lower(lower(lower(lower(h * h) + s_lo) / d) + eps.lo)))
                den_hi = upper(np.sqrt(upper(upper(upper(upper(h * h) + s_hi) / d) + eps.hi)))
                v = upper(h / np.where(h > 0, den_lo, den_hi))
            return np.minimum(np.where(np.isnan(v), np.inf, v), root_d)

        y = Box(-largest(-x.lo), largest(x.hi))
        g = upper(fl.gamma(d + 3) + upper(upper((2 * d + 3) * fl.eta) / eps.lo))
        if not g <= 0.5:
            return Box(np.full(x.shape, -np.inf), np.full(x.shape, np.inf))
        s = upper(upper(g + 2 * fl.ulps * fl.u) + 2 * fl.u)
        y = y.widen(upper(upper(s / lower(1 - s)) * y.mag()))
        w_mag = 1.0 if w is None else np.abs(w)
        if w is not None:
            y = y * w
        return y.widen(upper(upper(2 * w_mag * upper(upper(fl.ulps * fl.eta * np.maximum(x.mag(), 1.0)) + fl.eta)) + fl.eta))

    # ------------------------------------------------------------------ MLP
    def activation(self, x: Box, act: str) -> Box:
        if act == "identity":
            return x
        if act == "relu":  # exact in floats
            return Box(np.maximum(x.lo, 0.0), np.maximum(x.hi, 0.0))
        self.note(act, x.lo, x.hi)
        at, argmin, least = ACTIVATIONS[act]()
        a, b = at(x.lo), at(x.hi)
        left, right = x.hi <= argmin[0], x.lo >= argmin[1]  # the decreasing and the increasing branch
        z = Box(np.where(left, b.lo, np.where(right, a.lo, least)),
                np.where(left, a.hi, np.where(right, b.hi, np.maximum(a.hi, b.hi))))
        absolute = upper(self.fl.gelu_x * x.mag()) if act == "gelu" else self.fl.silu_abs
        return self.fl.library(z, absolute)

    def mlp(self, x: Box, m: MLP) -> Box:
        """down(act(up(x))) or down(act(gate(x)) * up(x)); a ReLU MLP's hinge pairs also as one
        ramp each (`joint.hinge_pairs`), the two bounds met."""
        u = self.linear(x, m.up)
        h = self.fl.op(self.activation(self.linear(x, m.gate), m.act) * u) if m.gate is not None \
            else self.activation(u, m.act)
        out = self.linear(h, m.down)
        paired = hinge_pairs(self, x, u, h, m)
        return out if paired is None else out.meet(paired)

    def residual_mlp(self, x: Box, block) -> Box:
        return self.fl.op(x + self.mlp(self.norm(x, block.norm), block.layer))

    # ------------------------------------------------------------------ the margin
    def margin_lower(self, h: Box, target: np.ndarray) -> np.ndarray:
        """Lower bound of min_{d != y} logit_y - logit_d of the float module at residual h [N, d].

        The last unembedding matrix enters as the difference of two rows (the large shared part
        of the two logits cancels in real arithmetic), plus the float error of each of the two
        dot products (gamma_n sum |z_i W_i| + n eta) and bias additions."""
        spec, fl = self.spec, self.fl
        z = self.norm(h, spec.final_norm)
        for m in spec.unembed.weights[:-1]:
            z = self.linear(z, Linear([m]))
        W = self.w[id(spec.unembed.weights[-1])]  # [V, n]
        V, n = W.shape
        bias = self.weight(spec.unembed.bias)
        diff = Box(lower(W[target][:, None, :] - W[None]), upper(W[target][:, None, :] - W[None]))  # [N, V, n]
        zl, zh = z.lo[:, None, :], z.hi[:, None, :]
        with np.errstate(invalid="ignore"):
            corners = [zl * diff.lo, zl * diff.hi, zh * diff.lo, zh * diff.hi]
        least = np.minimum(np.minimum(corners[0], corners[1]), np.minimum(corners[2], corners[3]))
        real = sum_lower(lower(least))  # [N, V]
        mag = sum_upper(upper(z.mag()[:, None, :] * np.abs(W)[None]))  # [N, V]
        err = upper(upper(fl.gamma(n) * mag) + n * fl.eta)
        if bias is not None:
            real = lower(real + lower(bias[target][:, None] - bias[None]))
            err = upper(err + upper(upper(fl.u * upper(upper(mag + np.abs(bias)[None]) + err)) + fl.eta))
        rows = np.arange(len(target))
        m = lower(lower(real - err[rows, target][:, None]) - err)
        m = np.where(np.isnan(m), -np.inf, m)
        m[rows, target] = np.inf
        return m.min(1)


# ---------------------------------------------------------------------------- activations
def _sigmoid(a):
    return 1 / (1 + (-a).exp())


def _phi(a):  # the standard normal distribution function
    return (1 + (a / a.__class__(2).sqrt()).erf()) / 2


def _lower_end(ball) -> float:
    return float(lower(lower(float(ball.mid())) - upper(float(ball.rad()))))


def _bracket(slope, lo: float, hi: float) -> tuple[float, float]:
    """[a0, a1] holding the zero of an increasing `slope` (arb -> arb): bisection while the
    sign of each midpoint is decided by its ball (ends: slope(a0) < 0 < slope(a1), in arb)."""
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        s = slope(arb(mid))
        if s < 0:
            lo = mid
        elif s > 0:
            hi = mid
        else:
            break
    if not slope(arb(lo)) < 0 < slope(arb(hi)):
        raise NotCheckable("could not bracket an activation's minimum")
    return lo, hi


def _silu_at(x: np.ndarray) -> Box:
    """silu(x) = x / (1 + exp(-x)) at each float64 point, from `exp_points` (no arb per point):
    1 / (1 + e) falls as e grows, so exp(-x)'s enclosure gives the sigmoid's, and x times it."""
    x = np.asarray(x, dtype=np.float64)
    e = exp_points(-x)
    sigmoid = Box(np.maximum(lower(1 / upper(1 + e.hi)), 0.0), upper(1 / lower(1 + e.lo)))
    y = Box.exact(x) * sigmoid  # (-inf) * 0 is the limit 0 there
    nan = np.isnan(x)
    return Box(np.where(nan, -np.inf, y.lo), np.where(nan, np.inf, y.hi))


@cache
def _silu():
    """silu(x) = x sigmoid(x): decreasing, then increasing; its minimum lies in [a0, a1] (where
    the slope sigmoid(x)(1 + x(1 - sigmoid(x))) changes sign) and is >= a0 sigmoid(a1) (x < 0)."""
    a0, a1 = _bracket(lambda a: _sigmoid(a) * (1 + a * (1 - _sigmoid(a))), -3.0, 0.0)
    return _silu_at, (a0, a1), _lower_end(arb(a0) * _sigmoid(arb(a1)))


@cache
def _gelu():
    """gelu(x) = x Phi(x) (F.gelu, exact form): decreasing, then increasing; minimum in [a0, a1]
    where Phi(x) + x phi(x) changes sign, and >= a0 Phi(a1)."""
    def slope(a):
        return _phi(a) + a * (-(a * a) / 2).exp() / (2 * a.__class__.pi()).sqrt()
    a0, a1 = _bracket(slope, -3.0, 0.0)
    return (lambda x: arb_map(lambda a: a * _phi(a), x)), (a0, a1), _lower_end(arb(a0) * _phi(arb(a1)))


#: activation -> a function giving (its enclosure at points: ndarray -> Box, argmin bracket,
#: lower bound of the minimum)
ACTIVATIONS = {"identity": None, "relu": None, "silu": _silu, "silu_mlx": _silu, "gelu": _gelu}


# ---------------------------------------------------------------------------- attention
def rope_tables(model: AdderModel, att: Attention, n_pos: int) -> tuple[np.ndarray, np.ndarray]:
    """(cos, sin) [n_pos, hd/2] as the module's own rotation computes them: rotating the unit
    vector (1, 0) of every pair returns exactly (cos, sin) (1 c - 0 s = c)."""
    hd = att.head_dim
    x = torch.zeros(1, n_pos, 1, hd, dtype=model.dtype)
    first = (slice(None), slice(None), slice(None), slice(0, None, 2) if att.rope.convention == "interleaved" else slice(0, hd // 2))
    x[first] = 1
    with torch.no_grad():
        y = rotary(x, torch.arange(n_pos, dtype=model.dtype), model.weights()[id(att.rope.omegas)],
                   att.rope.convention)[0, :, 0].to(torch.float64).numpy()
    if att.rope.convention == "interleaved":
        return y[:, 0::2], y[:, 1::2]
    return y[:, : hd // 2], y[:, hd // 2:]


def rotate(r: Rules, x: Box, cos: np.ndarray, sin: np.ndarray, convention: str) -> Box:
    """x0 c - x1 s and x0 s + x1 c: two-term dot products (complex multiply or mul/sub alike)."""
    if convention == "interleaved":
        x0, x1 = x[..., 0::2], x[..., 1::2]
    else:
        half = x.shape[-1] // 2
        x0, x1 = x[..., :half], x[..., half:]
    mag = upper(upper(x0.mag() * np.abs(cos)) + upper(x1.mag() * np.abs(sin)))
    r0 = r.fl.op(x0 * cos + -(x1 * sin), n=2, mag=mag)
    r1 = r.fl.op(x0 * sin + x1 * cos, n=2, mag=mag)
    if convention == "interleaved":
        return Box(np.stack([r0.lo, r1.lo], -1).reshape(x.shape), np.stack([r0.hi, r1.hi], -1).reshape(x.shape))
    return Box(np.concatenate([r0.lo, r1.lo], -1), np.concatenate([r0.hi, r1.hi], -1))


@dataclass
class Heads:
    """One attention block read by R query rows: for every key (position p, token v), each
    row's softmax weight e [R, H, P, V] (up to a common positive factor per row and head) and
    the values v [H, vd, P, V]; `live` [R, H, P, V] the keys a row's head can see that can occur; `slack`
    [R, H, vd] the rounding of normalise-and-mix."""

    e: Box
    v: Box
    live: np.ndarray
    slack: np.ndarray
    s: Box  # [R, H, P, V] the scores (the joint rule reads them)


def heads(r: Rules, att: Attention, keys: Box, queries: Box, q_pos: np.ndarray, pos: Positions) -> Heads:
    """keys [P, V, d]: the block's norm of each key's residual; queries [R, d]: the norm of each
    query row's residual, at positions q_pos [R] (causal: keys at p <= q_pos)."""
    fl = r.fl
    H, Hkv, hd, vd = att.n_heads, att.n_kv_heads, att.head_dim, att.vd
    P, V = keys.shape[0], keys.shape[1]
    R = queries.shape[0]
    k = r.linear(keys, att.k)
    k = r.norm(Box(k.lo.reshape(P, V, Hkv, hd), k.hi.reshape(P, V, Hkv, hd)), att.k_norm)
    v = r.linear(keys, att.v)
    v = Box(v.lo.reshape(P, V, Hkv, vd), v.hi.reshape(P, V, Hkv, vd))
    q = r.linear(queries, att.q)
    q = r.norm(Box(q.lo.reshape(R, H, hd), q.hi.reshape(R, H, hd)), att.q_norm)
    if att.rope is not None:
        cos, sin = rope_tables(r.model, att, P)
        k = rotate(r, k, cos[:, None, None, :], sin[:, None, None, :], att.rope.convention)
        q = rotate(r, q, cos[q_pos][:, None, :], sin[q_pos][:, None, :], att.rope.convention)
    scale = fl.scalar(scalar_to_float(att.scale))
    if att.scale_op == "mul_q":
        q = fl.op(q * scale)
    group = np.arange(H) // (H // Hkv)
    kh = k[:, :, group]  # [P, V, H, hd]
    qb = Box(q.lo[:, None, None], q.hi[:, None, None])  # [R, 1, 1, H, hd]
    s = fl.op(qb.dot(kh), n=hd, mag=sum_upper(upper(qb.mag() * kh.mag())))  # [R, P, V, H]
    if att.scale_op == "div":
        s = fl.op(s.divide(scale))
    elif att.scale_op == "mul" and scalar_to_float(att.scale) != 1.0:
        s = fl.op(s * scale)
    s = Box(np.moveaxis(s.lo, -1, 1), np.moveaxis(s.hi, -1, 1))  # [R, H, P, V]
    seen = np.arange(P)[None, :] <= np.asarray(q_pos)[:, None]  # [R, P]: causal
    live = np.broadcast_to((pos.can_hold(V)[None] & seen[..., None])[:, None], (R, H, P, V)).copy()
    if att.alibi is not None:  # + slope (j - i): one rounded product, one rounded sum
        dist = (np.arange(P)[None, :] - np.asarray(q_pos)[:, None]).astype(np.float64)  # [R, P]
        slope = r.w[id(att.alibi)][None, :, None] * dist[:, None, :]  # [R, H, P]
        s = fl.op(s + fl.op(Box(lower(slope), upper(slope)))[..., None])
    if att.bias is not None:  # + the table's entry (query row i, key j); -inf: never attended
        table = r.w[id(att.bias)][:, np.asarray(q_pos)][:, :, :P]  # [H, R, P]
        tb = np.moveaxis(table, 1, 0)[..., None]  # [R, H, P, 1]
        live &= np.isfinite(tb)
        s = fl.op(s + np.where(np.isfinite(tb), tb, 0.0))
    fixed = fixed_scores(r, att, q, k, q_pos, P)
    if fixed is not None:  # the module's own floats: a point box
        point = np.broadcast_to(np.where(np.isfinite(fixed), fixed, 0.0)[..., None], s.shape)
        s = Box(point.copy(), point.copy())
    e = softmax_weights(r, s, live, exact=fixed is not None)
    vh = v[:, :, group]  # [P, V, H, vd]
    vh = Box(np.moveaxis(vh.lo, (2, 3), (0, 1)), np.moveaxis(vh.hi, (2, 3), (0, 1)))  # [H, vd, P, V]
    vmax = np.where(live[:, :, None], vh.mag()[None], 0.0).max((-2, -1))  # [R, H, vd]
    g = fl.gamma(P + 1)
    kappa = upper(upper(upper((1 + fl.u) ** 2 * upper(1 + g)) / lower(1 - g)) - 1)
    slack = upper(upper(kappa * vmax) + upper(2 * (P + 1) * fl.eta * upper(vmax + 1)))
    return Heads(e, vh, live, slack, s)


def fixed_scores(r: Rules, att: Attention, q: Box, k: Box, q_pos: np.ndarray, P: int) -> np.ndarray | None:
    """[R, H, P]: the module's float scores themselves, where they cannot depend on the residual;
    None elsewhere.

    If q's map (or k's) has a zero weight matrix, no bias and no norm, that side is exactly 0
    for every finite input (RoPE and the scale keep 0), so every product of the dot product is
    +-0 and so is their sum, in any order, with or without FMA, and the scale keeps it 0. What
    the module adds next, `+ slope * (j - i)` and then `+ bias` (compiler/module.py, in that
    order), are single rounded operations on known floats: done here in the model's format
    they give the module's floats exactly (-inf where the bias masks a key)."""
    def zero(lin: Linear, norm: Norm | None) -> bool:
        return lin.bias is None and norm is None and any(not r.w[id(m)].any() for m in lin.weights)

    scale = scalar_to_float(att.scale)
    finite = all(np.isfinite(b.lo).all() and np.isfinite(b.hi).all() for b in (q, k))
    if not (finite and np.isfinite(scale) and scale != 0 and (zero(att.q, att.q_norm) or zero(att.k, att.k_norm))):
        return None
    dt = np.float32 if r.fl.name == "float32" else np.float64
    q_pos = np.asarray(q_pos)
    s = np.zeros((len(q_pos), att.n_heads, P), dt)
    with np.errstate(invalid="ignore"):
        if att.alibi is not None:
            dist = (np.arange(P)[None, :] - q_pos[:, None]).astype(dt)  # [R, P]
            s = s + r.w[id(att.alibi)].astype(dt)[None, :, None] * dist[:, None, :]
        if att.bias is not None:
            s = s + np.moveaxis(r.w[id(att.bias)][:, q_pos][:, :, :P].astype(dt), 1, 0)
    return s.astype(np.float64)


def ratio_bounds_hold(heads: Heads, row: np.ndarray, lam: np.ndarray, pos: Positions, masks: np.ndarray,
                      finals: np.ndarray, relaxed: bool = False) -> np.ndarray:
    """Whether each lam [N, H, vd, 2] bounds its row's head outputs: lam[..., 0] >= R and
    lam[..., 1] >= -R for every input of its case (masks [N, 10, 100, 2], finals [N, 2]); `row` [N]
    picks each one's row of `heads`. R <= lam iff G(lam) = max over paths of sum_j e_j (v_j - lam)
    <= 0 (all e_j >= 0, one > 0), e and v anywhere in their boxes. `relaxed`: every position picks
    any token its case allows on its own (a superset of the paths; no dynamic programme).
    Returns [N] booleans."""
    e, v = heads.e, heads.v  # [R, H, P, V], [H, vd, P, V]
    N, H, vd = lam.shape[:3]
    worst = np.stack([v.hi, -v.lo], 2)  # [H, vd, 2, P, V]: the largest v and -v
    diff = upper(worst[None] - lam[..., None, None])  # [N, H, vd, 2, P, V]
    e_hi, e_lo = e.hi[row][:, :, None, None], e.lo[row][:, :, None, None]
    terms = upper(np.where(diff >= 0, e_hi, e_lo) * diff)
    terms = np.where(heads.live[row][:, :, None, None], terms, 0.0).reshape(N * H * vd * 2, *e.shape[2:])
    per = H * vd * 2
    if relaxed:
        allowed = np.repeat(pos.allowed_tokens(masks, finals, e.shape[-1]), per, 0)
        best = np.where(allowed, terms, -np.inf).max(-1)  # [N', P]
        empty = ~np.isfinite(best).all(1)  # a position no input fills: no input at all
        g = np.where(empty, -np.inf, sum_upper(np.where(empty[:, None], 0.0, best)))
    else:
        g = pos.max_sum(terms, np.repeat(masks, per, 0), np.repeat(finals, per, 0))
    return (g <= 0).reshape(N, per).all(1)


def output_box(heads: Heads, row: np.ndarray, lam: np.ndarray) -> Box:
    """[N, H * vd]: where the float head outputs lie, given certified bounds lam [N, H, vd, 2]."""
    slack = heads.slack[row]
    return Box(lower(-lam[..., 1] - slack).reshape(len(lam), -1), upper(lam[..., 0] + slack).reshape(len(lam), -1))


def softmax_weights(r: Rules, s: Box, live: np.ndarray, exact: bool = False) -> Box:
    """e [..., P, V]: the float exp(fl(s_j - m_f)) of each key, times exp(m_f - m) for the constant
    m = max s_hi (every ratio sum e v / sum e is unchanged by a common factor).

    fl(s_j - m_f) = (s_j - m_f)(1 + d) with |s_j - m_f| <= m - s_lo_j (the float row maximum m_f
    is at least s_j and at most m), so exp of it is exp(s_j - m_f) times a factor within
    exp(+-u (m - s_lo_j)), close to 1 for the keys that carry weight; exp itself is within
    2K ulps plus K eta, and exp(m_f - m) <= 1 scales that absolute term down. Dead keys: 0.
    `exact`: s holds the module's floats themselves (`fixed_scores`), so the row maximum m_f is
    known and exp's inputs are exactly the floats fl(s_j - m_f): the library check is given them."""
    fl = r.fl
    lo, hi = np.where(live, s.lo, np.inf), np.where(live, s.hi, -np.inf)
    m = hi.max((-2, -1), keepdims=True)  # [..., 1, 1]
    base = exp_box(Box(np.where(live, lower(lo - m), 0.0), np.where(live, upper(hi - m), 0.0)))
    gap = np.where(live, upper(m - lo), 0.0)  # |s_j - m_f| <= m - s_lo_j: m_f lies in [s_j, m]
    x = upper(fl.u * gap)  # the factor exp(u gap), near 1 for every key that carries weight
    grow = exp_near_zero_upper(x)
    far = ~(grow < np.inf)
    if far.any():
        grow[far] = exp_box(Box.exact(x[far])).hi
    f_hi = upper(grow * upper(1 + 2 * fl.ulps * fl.u))
    f_lo = lower(lower(1 - 2 * fl.ulps * fl.u) / grow)
    absolute = fl.ulps * fl.eta
    e = Box(np.maximum(lower(lower(base.lo * f_lo) - absolute), 0.0), upper(upper(base.hi * f_hi) + absolute))
    # the inputs softmax's exp meets: fl(s_j - m_f) in [(min s_lo - m)(1 + u), 0], on a grid
    m_lo = np.where(live, s.lo, -np.inf).max((-2, -1))
    lowest = lower(lower(lo.min((-2, -1)) - m[..., 0, 0]) * (1 + fl.u))
    grid = float(score_grid(m_lo, m[..., 0, 0], fl).min())
    if exact:  # the module subtracts its row maximum in its own format: one rounding, done here
        dt = np.float32 if fl.name == "float32" else np.float64
        shifted = s.lo.astype(dt) - m.astype(dt)
        r.note("exp", lowest, 0.0, grid, points=np.unique(shifted[live]).astype(np.float64))
    else:
        r.note("exp", lowest, 0.0, grid)
    return Box(np.where(live, e.lo, 0.0), np.where(live, e.hi, 0.0))


def score_grid(m_lo: np.ndarray, m_hi: np.ndarray, fl: Floats) -> np.ndarray:
    """A power of two q of which every fl(s_j - m_f) is a multiple, when the float row maximum
    m_f lies in [m_lo, m_hi] away from 0 (else 0: no grid). With 2^E <= |m_f|, q = max(2^E u, eta):
    a score with |s_j| >= 2^(E-1) is a multiple of q and so is s_j - m_f and its rounding; a
    smaller one leaves |s_j - m_f| > 2^(E-1), whose float is a multiple of q too."""
    mag = np.where((m_lo > 0) | (m_hi < 0), np.minimum(np.abs(m_lo), np.abs(m_hi)), 0.0)
    e = np.floor(np.log2(np.where(mag > 0, mag, 1.0)))
    e = np.where(np.exp2(e) > mag, e - 1, e)
    return np.where(mag > 0, np.maximum(np.exp2(e) * fl.u, fl.eta), 0.0)


def after_attention(r: Rules, out: Box, residual: Box) -> Box:
    """[N, d]: the residual after the last attention, x + O out, given its head outputs
    out [N, H * vd] and the residual before it [N, d]."""
    return r.fl.op(residual + r.linear(out, r.spec.blocks[last_attention(r.spec)].layer.o))


def tail_margin(r: Rules, out: Box, residual: Box, target: np.ndarray) -> np.ndarray:
    """Margin lower bound at the query position, given the last attention's head outputs
    out [N, H * vd] and the residual before it [N, d]."""
    return residual_margin(r, after_attention(r, out, residual), target)


def residual_margin(r: Rules, h: Box, target: np.ndarray) -> np.ndarray:
    """Margin lower bound at the query position, given the residual after the last attention [N, d]."""
    for block in r.spec.blocks[last_attention(r.spec) + 1:]:
        h = r.residual_mlp(h, block)
    return r.margin_lower(h, target)


def last_attention(spec) -> int:
    return max(i for i, b in enumerate(spec.blocks) if isinstance(b.layer, Attention))
