"""The joint rule for several heads of one layer: the residual after the attention, bounded as
one linear combination over the automaton instead of a box over each head's output.

Why. The margin reads the residual h = x + O (R_1, ..., R_H), a linear combination of the
heads' outputs. Bounding each R_h on its own (`softmax.dinkelbach`) and then O times the box
forgets that the heads read the same input: in the Qwen3 d=3 models four heads read a_j, b_j,
a_{j-1}, b_{j-1}, and the box holds a_j + b_j at every value from 0 to 18 even where the case
fixes it (the target digit and both carries fix a_j + b_j). No bisection of that box can help.

The rule, for a head whose weight sits on one key. Call position d the head's *dominant*
key for a query row if its least score, over the tokens the case allows there, is the largest
of the row's. With w_j = e_j / e_d (e the float exp weights softmax computes) and
rho' = sum_{j != d} w_j, for every input of the case

    R_h = (v_d + sum_{j != d} w_j v_j) / (1 + rho') = N - N rho' / (1 + rho'),
    |R_h - N| <= |N| rho <= (max|v_d| + rho max|v|) rho,

where rho bounds rho' (`key_ratios`, worked from the scores in log space, so that scores of
1e10 whose exps underflow still give a bound, and with softmax's own rounding). N is a sum of
per-position terms: v at d, and w_j v_j elsewhere, each an interval over (position, token).
So each residual coordinate

    (O R)_r = sum_p T_r(p, token at p) +- sum_{h,c} |O_{r,hc}| radius_hc,
    T_r(p, t) = sum_h sum_c O_{r,hc} (v_hc(p, t) if p = d_h else w_h(p, t) v_hc(p, t)),

is a sum of per-position terms: its maximum and minimum over the case's inputs is one max-plus
programme over the carry automaton (`StepLayout.path_max`), as for a single head. Keeping
the w_j v_j terms (not only v_d) matters where the signal *is* the small weights: fblissjr33's
head 0 puts weight e^80 on a separator whose value is 0 and reads a_k + b_k from the weights
1 of the digits, amplified by O = e^80. A head with no dominant key (rho >= `DOMINANT`) adds
O times its own Dinkelbach box instead. The float O-projection and the residual addition are
then rounded as everywhere else (`floatmodel.rounded`, any summation order), and the result is
intersected with the box route's.

Used where the last attention has several heads (`layers.relational`), in one-layer and deeper
models: in a deeper model a key's value and score are the inner lattice's box for its (position,
token), which holds that key in every context, so each term still bounds what any input puts
there. O is one matrix, or a chain that rounds like one (`layers.joint_o`). The bisection then
runs over the residual (d coordinates) instead of the head outputs (`pipeline.cuts_residual`).
"""

from __future__ import annotations

import numpy as np

from .automaton import Cases
from .floatmodel import rounded
from .intervals import Interval, down, sum_down, sum_up, up
from .layout import StepLayout
from .softmax import output_slack

#: A head counts as dominated by one key when rho is below this (else its own box is used).
DOMINANT = 1e-3


def key_ratios(s: Interval, live: np.ndarray, allowed: np.ndarray, ctx) -> tuple[np.ndarray, Interval, np.ndarray]:
    """Per (row, head): the dominant position d [Q, H], an enclosure w [Q, H, P, V] of
    e'_j / e'_d for every other key (position, token) (0 at d, at masked keys and at tokens
    the case does not allow), and rho [Q, H] >= sum_{j != d} e'_j / e'_d (inf where no
    position dominates). s [Q, H, P, V] scores, live [Q, H, P, V] keys not masked, allowed
    [Q, P, V] the tokens each row's case allows at each position.

    softmax computes e'_j = exp(fl(s_j - m)), m the row's float maximum score, and
    |fl(x) - x| <= u |x|. Two cases:

    * known maximum: d's least score beats every other position's greatest. Then m = s_d
      exactly, fl(s_d - m) = 0 and e'_d = exp(0); for j != d, |s_j - m| <= s_hi_d - s_lo_j;
    * otherwise m lies in [s_lo_d, m_hi] and |s_j - m| <= m_hi - s_lo_j, |s_d - m| <= m_hi - s_lo_d.

    Either way fl(s_j - m) - fl(s_d - m) lies within s_j - s_d +- u (|s_j - m| + |s_d - m|),
    i.e. in [D_lo, D_hi], and exp within `rel` (relative) plus K eta (a subnormal result) gives
        e'_j / e'_d <= (exp(D_hi) (1 + rel) + t) / ((1 - rel) - t),
        e'_j / e'_d >= (exp(D_lo) (1 - rel) - t) / ((1 + rel) + t),   t = K eta / E,
    E the least exp(fl(s_d - m)) (1 with a known maximum). In real arithmetic u = rel = eta = 0."""
    ar = ctx.ar
    Q, H, P, V = s.shape
    ok = allowed[:, None] & live  # [Q, H, P, V]
    s_lo_p = np.where(ok, s.lo, np.inf).min(-1)  # [Q, H, P]: least score of position p
    s_hi_p = np.where(ok, s.hi, -np.inf).max(-1)
    filled = ok.any(-1)
    d = np.where(filled, s_lo_p, -np.inf).argmax(-1)  # [Q, H]
    at_d = np.arange(P) == d[..., None]  # [Q, H, P]
    lo_d = np.take_along_axis(s_lo_p, d[..., None], -1)[..., None]  # [Q, H, 1, 1]
    hi_d = np.take_along_axis(s_hi_p, d[..., None], -1)[..., None]
    known = lo_d > np.where(filled & ~at_d, s_hi_p, -np.inf).max(-1)[..., None, None]
    m_hi = np.where(filled, s_hi_p, -np.inf).max(-1)[..., None, None]
    other = ok & ~at_d[..., None]  # [Q, H, P, V]
    s_lo = np.where(other, s.lo, m_hi)
    rel, tiny = ar.ulps(ar.exp_ulps), ar.exp_ulps * ar.eta
    with np.errstate(invalid="ignore", over="ignore"):
        off = np.where(known, up(hi_d - s_lo), up(up(m_hi - s_lo) + up(m_hi - lo_d)))  # |s_j - m| + |s_d - m|
        slack = up(ar.u * off)
        d_hi = np.where(other, up(up(s.hi - lo_d) + slack), -np.inf)
        d_lo = np.where(other, down(down(s.lo - hi_d) - slack), -np.inf)
        if tiny > 0:
            e_log = np.where(known, 0.0, down(down(lo_d - m_hi) * (1 + ar.u)))
            t = up(tiny / ctx.exp(Interval(e_log, e_log)).lo)  # [Q, H, 1, 1]
        else:
            t = np.zeros((Q, H, 1, 1))
        w_hi = up(up(up(ctx.exp(Interval(d_hi, d_hi)).hi * up(1 + rel)) + t) / down(down(1 - rel) - t))
        w_lo = np.maximum(down(down(down(ctx.exp(Interval(d_lo, d_lo)).lo * down(1 - rel)) - t) / up(up(1 + rel) + t)),
                          0.0)
        bad = ~(down(down(1 - rel) - t) > 0) | ~np.isfinite(lo_d)  # [Q, H, 1, 1]
        w_hi = np.where(other, np.where(bad, np.inf, w_hi), 0.0)
        w_lo = np.where(other, w_lo, 0.0)
        rho = sum_up(w_hi.max(-1), -1)  # [Q, H]
    rho = np.where(np.isnan(rho), np.inf, rho)
    return d, Interval(w_lo, np.where(np.isnan(w_hi), np.inf, w_hi)), rho


def residual_after(s: Interval, live: np.ndarray, v: Interval, box: Interval, vmax: np.ndarray, slack: np.ndarray,
                   O: np.ndarray, residual: Interval, cases: Cases, layout: StepLayout, ctx, ratios=None,
                   allowed: np.ndarray | None = None, want_paths: bool = False):
    """Enclosure of the float residual x + O R after the attention, per row [Q, d], and (with
    `want_paths`, else None) the inputs that maximise and minimise each coordinate O writes.

    s [Q, H, P, V] scores, live [Q, H, P, V], v [Q, H, vd, P, V] values, box [Q, H * vd] each
    head's own output box (only the heads that are not joint are read), vmax and slack [Q, H, vd]
    (max |v| over live keys and the float normalise-and-mix error), O [d, H * vd], residual [Q,
    d], cases: each row's case; `ratios` and `allowed`: `key_ratios` of these rows and the tokens
    their cases allow (`StepLayout.allowed_tokens`), if already at hand. The
    paths are (pairs, carries, row): the search's counterexample candidates."""
    Q, H, vd, P, V = v.shape
    ar = ctx.ar
    allowed = layout.allowed_tokens(cases) if allowed is None else allowed
    d, w, rho = key_ratios(s, live, allowed, ctx) if ratios is None else ratios
    joint = rho < DOMINANT  # [Q, H]
    at_d = (np.arange(P) == d[..., None])[..., None] & allowed[:, None] & live  # [Q, H, P, V]
    v_d = np.where(at_d[:, :, None], v.mag(), 0.0).max((-2, -1))  # [Q, H, vd]: max |v| at d
    with np.errstate(invalid="ignore", over="ignore"):
        mixed = up(v_d + up(rho[..., None] * vmax))  # >= |N| >= sum_j p_j |v_j|
        slack = np.where(joint[..., None], output_slack(vmax, P, ar, mixed), slack)
        radius = up(up(mixed * rho[..., None]) + slack)
    radius = np.where(joint[..., None], radius, 0.0)  # [Q, H, vd]
    # each key's share of N: v at d, w v elsewhere (intervals); only the joint heads
    wv = Interval(w.lo[:, :, None], w.hi[:, :, None]) * v  # [Q, H, vd, P, V]
    share = Interval(np.where(at_d[:, :, None], v.lo, wv.lo), np.where(at_d[:, :, None], v.hi, wv.hi))
    on = joint[:, :, None, None, None] & allowed[:, None, None] & live[:, :, None]
    share = Interval(np.where(on, share.lo, 0.0), np.where(on, share.hi, 0.0))
    Oh = O.reshape(O.shape[0], H, vd)  # [r, h, c]
    lo_terms, hi_terms = [], []  # T_r(p, t): one term per (h, c), products rounded outward
    for h in range(H):
        for c in range(vd):
            k = Oh[:, h, c][None, :, None, None]  # [1, r, 1, 1]
            a, b = k * share.lo[:, h, c][:, None], k * share.hi[:, h, c][:, None]  # [Q, r, P, V]
            lo_terms.append(np.where(k == 0, 0.0, down(np.minimum(a, b))))
            hi_terms.append(np.where(k == 0, 0.0, up(np.maximum(a, b))))
    lo_t, hi_t = sum_down(np.stack(lo_terms), 0), sum_up(np.stack(hi_terms), 0)  # [Q, r, P, V]
    r = O.shape[0]
    written = np.flatnonzero((O != 0).any(1))  # a row O does not write stays 0 exactly: no programme for it
    top, bottom = np.zeros((Q, r)), np.zeros((Q, r))
    paths = None
    if len(written):
        n_w = len(written)
        owner = np.repeat(np.arange(Q), n_w)
        rows = cases.take(owner)
        hi = layout.path_max(hi_t[:, written].reshape(Q * n_w, P, V), rows, want_paths)
        lo = layout.path_max(-lo_t[:, written].reshape(Q * n_w, P, V), rows, want_paths)
        if want_paths:
            (hi, (p_hi, c_hi)), (lo, (p_lo, c_lo)) = hi, lo
            paths = (np.concatenate([p_hi, p_lo]), np.concatenate([c_hi, c_lo]), np.concatenate([owner, owner]))
        top[:, written], bottom[:, written] = hi.reshape(Q, n_w), -lo.reshape(Q, n_w)
    # the radius of the joint heads, and the boxes of the others
    spread = sum_up((np.abs(Oh)[None] * radius[:, None]).reshape(Q, r, -1), -1)  # [Q, r]
    others = Interval(np.where(joint[..., None], 0.0, box.lo.reshape(Q, H, vd)),
                      np.where(joint[..., None], 0.0, box.hi.reshape(Q, H, vd))).reshape(Q, H * vd)
    z = Interval(down(bottom - spread), up(top + spread)) + _times(others, O)
    size = np.where(joint[..., None], up(mixed * up(1 + rho[..., None])), vmax)  # |R| <= |N| (1 + rho), or max|v|
    mag = up(sum_up(np.abs(O)[None] * up(size + slack).reshape(Q, 1, H * vd), -1))  # sum |O| |out|
    return rounded(residual + rounded(z, ar, n=H * vd, mag=mag), ar), paths


def _times(x: Interval, w: np.ndarray) -> Interval:
    """x @ w.T with 0 * inf = 0 (a head bounded by an infinite box but not read by O)."""
    lo, hi = x.lo[..., None, :] * w, x.hi[..., None, :] * w
    lo, hi = np.where(w == 0, 0.0, np.minimum(lo, hi)), np.where(w == 0, 0.0, np.maximum(lo, hi))
    return Interval(sum_down(down(lo)), sum_up(up(hi)))
