"""One row of a step's table (`table.py`): a lower bound of the float32 margin.

The row fixes the query token and the token at every position some head reads. The residual at
the query plus the attention output (each head exactly its key's value vector where it reads one
key and nothing else weighs; else its softmax over the keys it reads, `_mix`), then every MLP
block, the final norm and the unembedding, all in `tight.py`'s float32 boxes. Two places need more
than boxes, because boxes forget that two quantities move together: a head's weights (they sum
to one: the score shift is taken value by value) and two logits (they read the same final-norm
output: its costliest coordinate is taken value by value, `margin_lower`).
"""

from __future__ import annotations

import numpy as np

from ...compiler.scalars import scalar_to_float
from .bounds import Rules, score_grid
from .paths import Positions
from .reals import Box, exp_box, lower, sum_lower, sum_upper, upper
from .tight import Tight, products, rn, snap, tree_sum

#: Most float32 values (or grid values) of a quantity taken one by one (`_values`).
MAX_VALUES = 64
#: Pieces the second costliest coordinate is cut into, for the rows one enumeration leaves open.
PIECES = 16


def evaluate(r: Rules, pos: Positions, reads: list[list[int]], column: dict, tup: np.ndarray, target: np.ndarray,
             tails: tuple[np.ndarray, Box]) -> np.ndarray:
    """Lower bound of the float32 margin of each row (query token, tokens read at the positions
    `column` maps to table columns): the residual at the query plus the attention output (a head
    reading one key and no tail: exactly its value vector; else `_mix`), then every MLP block,
    the final norm and the unembedding, in `tight.py`'s boxes. tails: (rho [V, H], values [H, vd])
    of the keys each head does not read but whose weight is not exactly 0."""
    spec = r.spec
    att = spec.blocks[0].layer
    tight = Tight(r)
    x = tight.embedding(len(pos.slots))  # [P, V, d]
    normed = tight.norm(x, spec.blocks[0].norm)
    v = tight.linear(normed, att.v)  # [P, V, Hkv * vd]
    group = np.arange(att.n_heads) // (att.n_heads // att.n_kv_heads)
    rho, v_tail = tails
    parts = []
    for h, ps in enumerate(reads):
        cols = slice(group[h] * att.vd, (group[h] + 1) * att.vd)
        values = [v[p, tup[:, column[p]]][:, cols] for p in ps]
        tail = (rho[tup[:, 0], h], v_tail[h]) if rho[:, h].any() else None
        parts.append(values[0] if len(ps) == 1 and tail is None else
                     _mix(tight, pos, normed, tup, column, h, ps, values, tail))
    concat = Box(np.concatenate([b.lo for b in parts], 1), np.concatenate([b.hi for b in parts], 1))
    h = tight.add(x[pos.t, tup[:, 0]], tight.linear(concat, att.o))
    # rows with the same residual box and target share everything after: bound each once
    d = h.shape[1]
    key, back = np.unique(np.concatenate([h.lo, h.hi, target[:, None]], 1), axis=0, return_inverse=True)
    h = Box(key[:, :d], key[:, d:2 * d])
    for block in spec.blocks[1:]:
        h = tight.mlp_block(h, block)
    return margin_lower(tight, h, key[:, -1].astype(np.int64))[back.reshape(-1)]


def _mix(tight: Tight, pos: Positions, normed: Box, tup: np.ndarray, column: dict, h: int, ps: list[int],
         values: list[Box], tail: tuple[np.ndarray, Box] | None = None) -> Box:
    """Head h's output where it reads the keys ps: the scores q . k_j as tree sums, then softmax
    as the module computes it, e_j = exp(fl(s_j - m)) with m the row maximum (one of these keys:
    each case of which one is taken, and the hull kept), the weights e_j * fl(1 / sum e) or
    e_j / sum e, and the mix sum_j p_j v_j, a tree sum. exp is within the library's ulps
    (snapped; its inputs recorded for the library check). With a tail (`tails`: its exp weights
    at most rho [N] together, its values in a box [vd]) the sums over every key are the exact
    ones widened by the gamma_n rule instead (the tail's terms may sit anywhere in the tree)."""
    r, att = tight.r, tight.r.spec.blocks[0].layer
    hd, g = att.head_dim, h // (att.n_heads // att.n_kv_heads)
    q = tight.linear(normed[pos.t, tup[:, 0]], att.q)
    q = tight.norm(Box(q.lo.reshape(len(tup), att.n_heads, hd)[:, h], q.hi.reshape(len(tup), att.n_heads, hd)[:, h]),
                   att.q_norm)
    scale = r.fl.scalar(scalar_to_float(att.scale))
    if att.scale_op == "mul_q":
        q = _times(q, scale)
    scores = []
    for p in (ps if len(ps) > 1 else []):  # one key: it is the row maximum, no score needed
        k = tight.linear(normed[p, tup[:, column[p]]], att.k)
        k = tight.norm(Box(k.lo.reshape(len(tup), att.n_kv_heads, hd)[:, g], k.hi.reshape(len(tup), att.n_kv_heads, hd)[:, g]),
                       att.k_norm)
        s = tree_sum([products(q[:, i], k[:, i]) for i in range(hd)])
        if att.scale_op == "div":
            s = _over(s, scale)
        elif att.scale_op == "mul" and scalar_to_float(att.scale) != 1.0:
            s = _times(s, scale)
        scores.append(s)
    out = None
    for top in range(len(ps)):  # the row maximum is key `top`'s score
        if len(ps) > 1 and not all((scores[top].hi >= scores[j].lo).any() for j in range(len(ps))):
            continue
        zero = Box(np.zeros(len(tup)), np.zeros(len(tup)))
        shifts = [zero if j == top else
                  Box(rn(lower(scores[j].lo - scores[top].hi)), np.minimum(0.0, rn(upper(scores[j].hi - scores[top].lo))))
                  for j in range(len(ps))]
        if len(ps) > 1:  # (one key: its shift is 0, a point the general rule's range already holds)
            step = score_grid(scores[top].lo, scores[top].hi, r.fl)  # [N]: every shift is a multiple of it
            r.note("exp", min(float(b.lo.min()) for b in shifts), 0.0, grid=float(step.min()))
        # the weights move together (they sum to 1): with two keys, the other's shift is taken value
        # by value, so that both weights see the same one
        per = 1
        if len(ps) == 2:
            j = 1 - top
            shifts[j], per = _values(shifts[j], np.where(step > 0, step, np.nan))
            shifts[top] = Box(np.zeros(len(shifts[j].lo)), np.zeros(len(shifts[j].lo)))
        vals = [Box(np.repeat(vj.lo, per, 0), np.repeat(vj.hi, per, 0)) for vj in values]
        e = [snap(r.fl.library(exp_box(b))) for b in shifts]
        if tail is None:
            total = tree_sum(e)
        else:  # every key's e summed in some order: the exact range, widened by gamma_n
            rho = np.repeat(tail[0], per)
            n = len(pos.slots)
            exact = Box(sum_lower(np.stack([ej.lo for ej in e], -1)), upper(sum_upper(np.stack([ej.hi for ej in e], -1)) + rho))
            total = snap(r.fl.op(exact, n=n))
        # a wider accumulator's sum and quotient, rounded once: the exact sum's range as the divisor too
        wide = Box(np.minimum(total.lo, sum_lower(np.stack([ej.lo for ej in e], -1))),
                   np.maximum(total.hi, sum_upper(np.stack([ej.hi for ej in e], -1)) + (0.0 if tail is None else rho)))
        with np.errstate(divide="ignore"):
            inv = Box(rn(lower(1.0 / wide.hi)), rn(upper(1.0 / wide.lo)))
        weights = []
        for ej in e:
            times, over = tight.mul(ej, inv), Box(rn(lower(ej.lo / wide.hi)), rn(upper(ej.hi / wide.lo)))
            weights.append(Box(np.minimum(times.lo, over.lo), np.maximum(times.hi, over.hi)))
        if tail is None:
            mixed = [tree_sum([products(w, vj[:, c]) for w, vj in zip(weights, vals)]) for c in range(vals[0].shape[1])]
        else:  # the tail's weights sum to at most rho / total (times their rounding), each value in its box
            mass = upper(upper(rho / total.lo) * upper(1 + 4 * r.fl.ulps * r.fl.u)) + n * r.fl.eta
            mixed = []
            for c in range(vals[0].shape[1]):
                terms = [products(w, vj[:, c]) for w, vj in zip(weights, vals)]
                exact = Box(lower(sum_lower(np.stack([t.lo for t in terms], -1)) + lower(mass * min(tail[1].lo[c], 0.0))),
                            upper(sum_upper(np.stack([t.hi for t in terms], -1)) + upper(mass * max(tail[1].hi[c], 0.0))))
                mag = upper(sum_upper(np.stack([np.maximum(np.abs(t.lo), np.abs(t.hi)) for t in terms], -1))
                            + upper(mass * max(abs(tail[1].lo[c]), abs(tail[1].hi[c]))))
                mixed.append(snap(r.fl.op(exact, n=n, mag=mag)))
        lo = np.stack([m.lo for m in mixed], 1).reshape(len(tup), per, -1).min(1)
        hi = np.stack([m.hi for m in mixed], 1).reshape(len(tup), per, -1).max(1)
        out = Box(lo, hi) if out is None else Box(np.minimum(out.lo, lo), np.maximum(out.hi, hi))
    return out


def _values(b: Box, step: np.ndarray | None = None) -> tuple[Box, int]:
    """Each row's interval as pieces [N * K], and K: its float32 values one by one (with `step`
    [N], finite: the multiples of it, all a value on that grid can be), or, where there are more
    than MAX_VALUES of them, MAX_VALUES equal pieces between float32 (grid) cut points."""
    grid = step is not None and bool(np.isfinite(step).all())
    if grid:
        first = np.ceil(b.lo / step) * step  # the least multiple in the interval (the value is one)
        count = np.floor((b.hi - first) / step) + 1
    else:
        count = (_ordinal(b.hi) - _ordinal(b.lo) + 1).astype(np.float64)
    K = int(min(MAX_VALUES, max(1, count.max())))
    k = np.arange(K)[None]
    if grid:
        stride = np.maximum(1.0, np.ceil(count / K))[:, None] * step[:, None]  # whole grid steps
        lo = np.minimum(first[:, None] + k * stride, b.hi[:, None])
        hi = np.where(stride > step[:, None], np.minimum(lo + stride - step[:, None], b.hi[:, None]), lo)
    else:
        ordinal = _ordinal(b.lo)[:, None] + np.floor(k * np.maximum(1.0, count[:, None] / K)).astype(np.int64)
        lo = np.minimum(_from_ordinal(ordinal), b.hi[:, None])
        hi = np.concatenate([_from_ordinal(np.maximum(ordinal[:, 1:] - 1, ordinal[:, :-1])), b.hi[:, None]], 1)
        hi = np.maximum(np.minimum(hi, b.hi[:, None]), lo)
    hi[:, -1] = b.hi  # the last piece runs to the end
    return Box(lo.reshape(-1), hi.reshape(-1)), K


def _from_ordinal(o: np.ndarray) -> np.ndarray:
    """Inverse of `_ordinal`: the float32 values (as float64)."""
    bits = np.where(o < 0, (-o) | 0x80000000, o).astype(np.uint32)
    return bits.view(np.float32).astype(np.float64)


def _times(x: Box, scale: Box) -> Box:
    """x * a Python-float scale (torch may round it to float32 first, or not: both, `Floats.scalar`)."""
    c = [x.lo * scale.lo, x.lo * scale.hi, x.hi * scale.lo, x.hi * scale.hi]
    return Box(rn(lower(np.minimum.reduce(c))), rn(upper(np.maximum.reduce(c))))


def _over(x: Box, scale: Box) -> Box:
    """x / a positive Python-float scale."""
    c = [x.lo / scale.lo, x.lo / scale.hi, x.hi / scale.lo, x.hi / scale.hi]
    return Box(rn(lower(np.minimum.reduce(c))), rn(upper(np.maximum.reduce(c))))


def margin_lower(tight: Tight, h: Box, target: np.ndarray) -> np.ndarray:
    """Lower bound of min_{d != y} logit_y - logit_d at residual h [N, d]. The two logits share
    the final norm's output z, but two boxes bounded apart forget that: each coordinate costs
    its width times its largest weight. So the costliest coordinate is enumerated value by
    value (at most MAX_VALUES float32 values, the last piece an interval), both logits seeing
    the same value; rows still not positive have the next costliest cut in PIECES pieces too.
    Each logit is a tree sum (`tight`)."""
    r = tight.r
    spec = r.spec
    z = tight.norm(h, spec.final_norm)
    for m in spec.unembed.weights[:-1]:
        z = tight.matvec(z, r.w[id(m)])
    W = r.w[id(spec.unembed.weights[-1])]  # [V, n]
    cost = ((z.hi - z.lo) * np.abs(W).max(0)[None]).max(0)
    order = [int(j) for j in np.argsort(-cost)]
    m = _margins(tight, z, target, None, None)
    reach = 4 * ((z.hi - z.lo) * np.abs(W).max(0)[None]).sum(1)  # about what refining can win back
    for j, cut in ((order[0], None), (order[0], order[1] if len(order) > 1 else None)):
        bad = np.flatnonzero(~(m > 0) & (m > -reach))  # refine the rows left open, where it may help
        if len(bad):
            m[bad] = np.maximum(m[bad], _margins(tight, z[bad], target[bad], j, cut))
    return m


def _ordinal(x: np.ndarray) -> np.ndarray:
    """float32 values -> integers in the same order, consecutive floats one apart."""
    bits = x.astype(np.float32).view(np.int32).astype(np.int64)
    return np.where(bits < 0, -(bits & 0x7FFFFFFF), bits)


def _margins(tight: Tight, z: Box, target: np.ndarray, j: int | None, cut: int | None) -> np.ndarray:
    """The margin bound with coordinate j (if any) enumerated and coordinate `cut` (if any) in
    PIECES pieces."""
    N, n = z.shape
    if j is None:
        return _margin_rows(tight, z, target, 1)
    piece, K = _values(z[:, j])
    lo_j, hi_j = piece.lo.reshape(N, K), piece.hi.reshape(N, K)
    lo = np.repeat(z.lo[:, None], K, 1)
    hi = np.repeat(z.hi[:, None], K, 1)
    lo[..., j], hi[..., j] = lo_j, hi_j
    if cut is not None:  # float32 cut points, so that every piece's ends are float32 values
        t = np.linspace(0.0, 1.0, PIECES + 1)
        ends = z.lo[:, cut, None] + (z.hi[:, cut] - z.lo[:, cut])[:, None] * t[None]
        ends = np.clip(ends.astype(np.float32).astype(np.float64), z.lo[:, cut, None], z.hi[:, cut, None])
        ends[:, 0], ends[:, -1] = z.lo[:, cut], z.hi[:, cut]
        lo = np.repeat(lo[:, :, None], PIECES, 2)
        hi = np.repeat(hi[:, :, None], PIECES, 2)
        lo[..., cut], hi[..., cut] = ends[:, None, :-1], ends[:, None, 1:]
    return _margin_rows(tight, Box(lo.reshape(-1, n), hi.reshape(-1, n)), target, lo.size // (N * n))


def _margin_rows(tight: Tight, pieces: Box, target: np.ndarray, per: int) -> np.ndarray:
    """The least margin bound over each row's `per` consecutive pieces of z."""
    W = tight.r.w[id(tight.r.spec.unembed.weights[-1])]
    N = len(target)
    logits = tight.matvec(pieces, W)
    if tight.r.spec.unembed.bias is not None:
        logits = tight.add(logits, tight.r.w[id(tight.r.spec.unembed.bias)])
    y = np.repeat(target, per)
    rows = np.arange(len(y))
    rival = logits.hi.copy()
    rival[rows, y] = -np.inf
    m = logits.lo[rows, y] - rival.max(1)
    m = np.where(np.isnan(m), -np.inf, m)
    return m.reshape(N, per).min(1)
