"""The checker's two relational rules, written from their mathematics (docs/prove.md, "Several
heads in one layer"), not from the search's code.

**Several heads in one layer.** For a last attention with H > 1 softmax heads and an O that
rounds as one matrix (`relational`, `joint_o`), in a one-layer model or a deeper one (whose keys
are the inner lattice's boxes per (position, token), each holding that key in every context),
the margin is certified over a box of the residual after the attention, bounded per coordinate r
as one linear combination of the heads:

    h_r = x_r + sum_{h,c} O[r, hc] R_hc,   R_h = N_h - N_h rho'_h / (1 + rho'_h),
    N_h = v_d + sum_{j != d} w_j v_j,      w_j = e'_j / e'_d,   rho'_h = sum_{j != d} w_j,

for a head whose weight sits on one key d (rho <= DOMINANT); |R_h - N_h| <= (max|v_d| + rho
max|v|) rho. sum_hc O[r, hc] N_hc is a sum of one term per (position, token): its maximum and
minimum over a case's inputs are max-plus programmes over the carry automaton. Other heads
enter through their certified output boxes. The ratios w_j are bounded from the scores in log
space: fl(s_j - m) - fl(s_d - m) lies within s_j - s_d +- u(|s_j - m| + |s_d - m|), m the float
row maximum, which lies in [lo_d, m_hi] (and is s_d exactly when d's least score beats every
other position's greatest), then exp within 2K ulps relative and K eta absolute.

**ReLU hinge pairs.** Two units with one weight row w and biases b_i >= b_j give
relu(z + b_i) - relu(z + b_j), a ramp non-decreasing in z = w.x: over a box, its values at the
ends of z's range, widened by how far each float pre-activation may sit from z + b (relu is
1-Lipschitz). A down row reads D_i h_i + D_j h_j = D_i (h_i - h_j) + (D_i + D_j) h_j.
"""

from __future__ import annotations

import numpy as np

from ...compiler.spec import MLP, Attention, Linear
from .paths import Positions
from .reals import Box, exp_box, lower, sum_lower, sum_upper, upper

#: A head counts as dominated by one key when rho is below this (the search's choice; any value is sound).
DOMINANT = 1e-3


def relational(rules) -> bool:
    """Whether the joint rule bounds the residual after the last attention: several softmax heads,
    O without bias and rounding as one matrix (`joint_o`). (A step whose trees cut the residual
    then meets both boxes.)"""
    return joint_o(rules) is not None


def joint_o(rules) -> np.ndarray | None:
    """O [d, H * vd] as one matrix, or None. A chain of matrices counts as its product when every
    matrix after the first has entries 0 and +-1 only, at most one non-zero in a row: such a row's
    float dot product is one of its inputs, signed, exactly (the other products are zeros), so the
    chain rounds once, as its first matrix does."""
    att = _last(rules.spec)
    if att.n_heads < 2 or att.softmax != "softmax" or att.o.bias is not None:
        return None
    O = rules.w[id(att.o.weights[0])]
    for m in att.o.weights[1:]:
        W = rules.w[id(m)]
        if not (np.isin(W, (-1.0, 0.0, 1.0)).all() and ((W != 0).sum(1) <= 1).all()):
            return None
        O = W @ O
    return O


def _last(spec) -> Attention:
    return [b.layer for b in spec.blocks if isinstance(b.layer, Attention)][-1]


def key_ratios(fl, s: Box, ok: np.ndarray):
    """Per (row, head): the dominant position d [N, H], the box w [N, H, P, V] of e'_j / e'_d (0 at
    d and where not `ok`), and rho [N, H] >= sum_{j != d} w_j (inf: none dominates)."""
    N, H, P, V = s.shape
    lo_p = np.where(ok, s.lo, np.inf).min(-1)  # [N, H, P]
    hi_p = np.where(ok, s.hi, -np.inf).max(-1)
    filled = ok.any(-1)
    d = np.where(filled, lo_p, -np.inf).argmax(-1)  # [N, H]
    at_d = np.arange(P) == d[..., None]
    lo_d = np.take_along_axis(lo_p, d[..., None], -1)[..., None]  # [N, H, 1, 1]
    hi_d = np.take_along_axis(hi_p, d[..., None], -1)[..., None]
    known = lo_d > np.where(filled & ~at_d, hi_p, -np.inf).max(-1)[..., None, None]
    m_hi = np.where(filled, hi_p, -np.inf).max(-1)[..., None, None]
    other = ok & ~at_d[..., None]
    s_lo = np.where(other, s.lo, m_hi)
    rel, tiny = 2 * fl.ulps * fl.u, fl.ulps * fl.eta
    off = np.where(known, upper(hi_d - s_lo), upper(upper(m_hi - s_lo) + upper(m_hi - lo_d)))
    slack = upper(fl.u * off)
    d_hi = np.where(other, upper(upper(s.hi - lo_d) + slack), -np.inf)
    d_lo = np.where(other, lower(lower(s.lo - hi_d) - slack), -np.inf)
    e_log = np.where(known, 0.0, lower(lower(lo_d - m_hi) * (1 + fl.u)))  # log of the least e'_d
    t = upper(tiny / exp_box(Box(e_log, e_log)).lo)
    den_hi = lower(lower(1 - rel) - t)
    w_hi = upper(upper(upper(exp_box(Box(d_hi, d_hi)).hi * upper(1 + rel)) + t) / den_hi)
    w_lo = np.maximum(lower(lower(lower(exp_box(Box(d_lo, d_lo)).lo * lower(1 - rel)) - t) / upper(upper(1 + rel) + t)), 0.0)
    bad = ~(den_hi > 0) | ~np.isfinite(lo_d)
    w_hi = np.where(other, np.where(bad, np.inf, w_hi), 0.0)
    w_lo = np.where(other, w_lo, 0.0)
    rho = sum_upper(w_hi.max(-1))
    return d, Box(w_lo, np.where(np.isnan(w_hi), np.inf, w_hi)), np.where(np.isnan(rho), np.inf, rho)


def residual_box(rules, s: Box, v: Box, live: np.ndarray, out: Box, residual: Box, pos: Positions,
                 masks: np.ndarray, finals: np.ndarray) -> Box:
    """[N, d]: where the float residual after the attention lies, by the joint rule, met with
    x + O out. s [N, H, P, V] scores, v [H, vd, P, V] values, live [N, H, P, V], out [N, H * vd] the
    certified head boxes, residual [N, d] before the block, masks/finals each row's case."""
    fl, spec = rules.fl, rules.spec
    att = _last(spec)
    O = joint_o(rules)  # [d, H * vd]
    N, H, P, V = s.shape
    vd = v.shape[1]
    ok = pos.allowed_tokens(masks, finals, V)[:, None] & live  # [N, H, P, V]
    d, w, rho = key_ratios(fl, s, ok)
    joint = rho < DOMINANT  # [N, H]
    vmag = v.mag()[None]  # [1, H, vd, P, V]
    vmax = np.where(live[:, :, None], vmag, 0.0).max((-2, -1))  # [N, H, vd]
    at_d = (np.arange(P) == d[..., None])[..., None] & ok  # [N, H, P, V]
    v_d = np.where(at_d[:, :, None], vmag, 0.0).max((-2, -1))
    g = fl.gamma(P + 1)
    kappa = upper(upper(upper((1 + fl.u) ** 2 * upper(1 + g)) / lower(1 - g)) - 1)
    with np.errstate(invalid="ignore", over="ignore"):
        mixed = upper(v_d + upper(rho[..., None] * vmax))  # >= |N| >= sum_j p_j |v_j|
        slack = upper(upper(kappa * mixed) + upper(2 * (P + 1) * fl.eta * upper(vmax + 1)))
        radius = np.where(joint[..., None], upper(upper(mixed * rho[..., None]) + slack), 0.0)  # [N, H, vd]
    # each key's share of N: v at d, w v elsewhere; only the joint heads
    wv = Box(w.lo[:, :, None], w.hi[:, :, None]) * Box(v.lo[None], v.hi[None])  # [N, H, vd, P, V]
    on = joint[:, :, None, None, None] & ok[:, :, None]
    share_lo = np.where(on, np.where(at_d[:, :, None], v.lo[None], wv.lo), 0.0)
    share_hi = np.where(on, np.where(at_d[:, :, None], v.hi[None], wv.hi), 0.0)
    Oh = O.reshape(len(O), H, vd)
    lo_t, hi_t = np.zeros((N, len(O), P, V)), np.zeros((N, len(O), P, V))
    for h in range(H):
        for c in range(vd):
            k = Oh[:, h, c][None, :, None, None]
            a, b = k * share_lo[:, h, c][:, None], k * share_hi[:, h, c][:, None]
            lo_t = lower(lo_t + np.where(k == 0, 0.0, lower(np.minimum(a, b))))
            hi_t = upper(hi_t + np.where(k == 0, 0.0, upper(np.maximum(a, b))))
    r = len(O)
    written = np.flatnonzero((O != 0).any(1))  # a row O does not write is 0 exactly
    top, bottom = np.zeros((N, r)), np.zeros((N, r))
    if len(written):
        n_w = len(written)
        rows_m, rows_f = np.repeat(masks, n_w, 0), np.repeat(finals, n_w, 0)
        top[:, written] = pos.max_sum(hi_t[:, written].reshape(N * n_w, P, V), rows_m, rows_f).reshape(N, n_w)
        bottom[:, written] = -pos.max_sum(-lo_t[:, written].reshape(N * n_w, P, V), rows_m, rows_f).reshape(N, n_w)
    spread = sum_upper(upper(np.abs(Oh)[None] * radius[:, None]).reshape(N, r, -1))
    others = Box(np.where(joint[..., None], 0.0, out.lo.reshape(N, H, vd)).reshape(N, -1),
                 np.where(joint[..., None], 0.0, out.hi.reshape(N, H, vd)).reshape(N, -1))
    z = Box(lower(bottom - spread), upper(top + spread)) + others.times(O)
    size = np.where(joint[..., None], upper(mixed * upper(1 + rho[..., None])), vmax)  # |R| <= |N|(1 + rho) or max|v|
    mag = sum_upper(upper(np.abs(O)[None] * upper(size + slack).reshape(N, 1, H * vd)))
    joint_box = fl.op(residual + fl.op(z, n=H * vd, mag=mag))
    plain = fl.op(residual + rules.linear(out, att.o))
    return plain.meet(joint_box)


def hinge_pairs(rules, x: Box, u: Box, h: Box, m: MLP) -> Box | None:
    """The ReLU MLP's output with each hinge pair bounded as one ramp (module docstring); x the
    MLP's input box, u its float pre-activations, h their relus. None: no pairs to use."""
    if len(m.up.weights) != 1 or m.gate is not None or m.act != "relu":
        return None
    W = rules.w[id(m.up.weights[0])]  # [U, d]
    pairs = [(i, j) for i in range(len(W)) for j in range(i + 1, len(W)) if np.array_equal(W[i], W[j])]
    used = [i for p in pairs for i in p]
    if not pairs or len(used) != len(set(used)):
        return None
    b = rules.w[id(m.up.bias)] if m.up.bias is not None else np.zeros(len(W))
    z = x.times(W)  # exact w . x
    e = np.maximum(upper(np.maximum(lower(z.lo + b) - u.lo, u.hi - upper(z.hi + b))), 0.0)
    D = rules.w[id(m.down.weights[0])]  # [r, U]
    terms = []
    for i in range(len(W)):
        if i not in used:
            terms.append(h[..., i:i + 1] * D[:, i])
    for i, j in pairs:
        if b[i] < b[j]:
            i, j = j, i
        ramp_lo = lower(np.maximum(lower(z.lo[..., i] + b[i]), 0.0) - np.maximum(upper(z.lo[..., i] + b[j]), 0.0))
        ramp_hi = upper(np.maximum(upper(z.hi[..., i] + b[i]), 0.0) - np.maximum(lower(z.hi[..., i] + b[j]), 0.0))
        gap = upper(e[..., i] + e[..., j])
        terms.append(Box(lower(ramp_lo - gap)[..., None], upper(ramp_hi + gap)[..., None]) * D[:, i])
        if np.any(D[:, i] + D[:, j]):
            terms.append(h[..., j:j + 1] * Box(lower(D[:, i] + D[:, j]), upper(D[:, i] + D[:, j])))
    y = Box(sum_lower(np.stack(np.broadcast_arrays(*[t.lo for t in terms]), -1)),
            sum_upper(np.stack(np.broadcast_arrays(*[t.hi for t in terms]), -1)))
    out = rules.fl.op(y, n=len(W), mag=sum_upper(upper(h.mag()[..., None, :] * np.abs(D))))
    return rules.linear(out, Linear(m.down.weights[1:], m.down.bias))  # the rest of `down`, as any linear map
