"""The table rule: one-hot attention makes an answer step a finite table, evaluated exactly.

Many hand-coded one-layer models route attention by position alone, with scores so far apart
that every softmax is one-hot *in float32*: a key whose score lies ZERO_GAP or more below the
row's best gets exp(fl(s_j - max)) = 0 exactly, the best one exp(0) = 1, so the row's weights
are exactly [0, .., 1, .., 0] and the head's output is exactly the value vector of the one key
it reads (0 * v = 0 and x + 0 = x in any order, fused or not). That is the rule's one
library assumption, checked on every float32 shift that can occur (`libm` "softmax_zero").

Then, at answer step k, the logits are a function of the tokens at the query position and at
the positions the heads read. Those tokens depend on the operand digits of a short window of
digit groups (and the carry into it), so the step is a table of at most 2 * 100^w rows, and
each row is bounded by `tight.py`'s float32 boxes: nearly exact, where the case split of the
main rule must bound sums of 10^20 inputs with the general float error model. A step is
proven when every row's margin bound is positive; the certificate names the positions read
(`{"table": {"heads": [p, ...]}}`) and this module re-derives everything else.

Conditions (`not_applicable` says which one fails): float32; one attention layer, the first
block, with softmax; only MLP blocks after it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...compiler.spec import MLP, Attention
from ...compiler.scalars import scalar_to_float
from .bounds import Rejected, Rules, heads, score_grid
from .inner import embedding
from .paths import GROUPS, Positions
from .reals import Box, exp_box, lower, sum_lower, sum_upper, upper
from .tight import Tight, products, rn, snap, tree_sum

#: A key this far (or further) below its row's best score gets softmax weight exactly 0.
ZERO_GAP = 110.0
#: Most rows a table may have (2 * 100^w for a window of w digit groups).
MAX_ROWS = 2_000_000
#: Most float32 values of the logit-moving coordinate enumerated one by one (`margin_lower`).
MAX_VALUES = 64
#: Keys within this of a head's best guaranteed score are read (their tokens are table columns).
NEAR_GAP = 8.0
#: Most keys one head may read.
MAX_KEYS = 3
#: Heaviest tail (the exp weights, summed, of the keys between NEAR_GAP and ZERO_GAP below the best).
MAX_TAIL = 1e-3
#: Pieces the second costliest coordinate is cut into, for the rows one enumeration leaves open.
PIECES = 16


def not_applicable(rules: Rules) -> str | None:
    """Why the table rule cannot apply to this model (None: it can be tried)."""
    spec = rules.spec
    if rules.fl.name != "float32":
        return "the table rule is for float32 models"
    kinds = [isinstance(b.layer, Attention) for b in spec.blocks]
    if sum(kinds) != 1 or not kinds[0]:
        return "the table rule needs one attention layer, the first block"
    if not all(isinstance(b.layer, MLP) for b in spec.blocks[1:]):
        return "the table rule needs only MLP blocks after the attention"
    if spec.blocks[0].layer.softmax != "softmax":
        return "the table rule needs a softmax attention"
    return None


@dataclass
class Table:
    """One step's table: each row's query token, tokens read by the heads, target and margin bound."""

    heads: list[list[int]]  # the key positions each head reads
    tokens: np.ndarray  # [M, 1 + K]: the query token, then the token at each position read (`positions`)
    target: np.ndarray  # [M] the token the step must print
    margin: np.ndarray  # [M] lower bound of the float32 margin
    example: np.ndarray  # [M, 2] an input (a, b) of each row


def _scores(r: Rules, pos: Positions):
    """The general rule's scores at the step's query position, one row per query token it can
    hold: (query tokens [R], heads, least [R, H, P] and most [R, H, P] score at each position,
    floor [R, H] the best guaranteed score)."""
    att = r.spec.blocks[0].layer
    x = embedding(r, pos)
    keys = r.norm(x, r.spec.blocks[0].norm)
    q_tok = np.flatnonzero(pos.can_hold(x.shape[1])[pos.t])
    hd = heads(r, att, keys, keys[pos.t][q_tok], np.full(len(q_tok), pos.t), pos)
    least = np.where(hd.live, hd.s.lo, np.inf).min(-1)
    most = np.where(hd.live, hd.s.hi, -np.inf).max(-1)
    floor = np.where(np.isfinite(least), least, -np.inf).max(-1)
    return q_tok, hd, least, most, floor


def read_positions(r: Rules, pos: Positions) -> tuple[list[list[int]] | None, str]:
    """The key positions each head reads at step pos.k: those scoring within NEAR_GAP of the
    best guaranteed score at some query token. Every key ZERO_GAP or more below gets softmax
    weight exactly 0; the ones between (the tail) weights of at most e^-NEAR_GAP each, bounded
    together (`tails`). One position and no tail: the head's output is exactly that key's value
    vector. Otherwise its softmax over them is bounded in `_mix`. More than MAX_KEYS positions, a
    tail heavier than MAX_TAIL, or several positions whose scores need RoPE, ALiBi or a bias
    table: (None, why not)."""
    att = r.spec.blocks[0].layer
    _, hd, least, most, floor = _scores(r, pos)
    out = []
    for h in range(att.n_heads):
        near = np.flatnonzero((most[:, h] > floor[:, h, None] - NEAR_GAP).any(0))
        if len(near) > MAX_KEYS or not np.isfinite(floor[:, h]).all():
            return None, (f"head {h}'s softmax is not sparse in float32: {len(near)} keys score within "
                          f"{NEAR_GAP:g} of its best (at most {MAX_KEYS} can be read)")
        if len(near) > 1 and (att.rope is not None or att.alibi is not None or att.bias is not None):
            return None, f"head {h} reads {len(near)} keys, whose scores need RoPE, ALiBi or a bias: no tight rule yet"
        out.append([int(p) for p in near])
    rho, _ = tails(r, pos, out, (hd, most, floor))
    if (rho > MAX_TAIL).any():
        h = int(np.argmax(rho.max(0)))
        return None, (f"head {h}'s softmax is not sparse in float32: the keys it does not read weigh up to "
                      f"{float(rho.max()):.3g} together")
    note_shifts(r, hd.s, hd.live)
    return out, ""


def tails(r: Rules, pos: Positions, reads: list[list[int]], scored=None) -> tuple[np.ndarray, Box]:
    """The keys each head does not read but whose weight is not exactly 0 (scores within ZERO_GAP
    of the best): rho [V, H], an upper bound of their exp weights summed (relative to exp(0) at
    the row maximum, which is at least the best guaranteed score), per query token; and the
    range of their value vectors, [H, vd]. exp(fl(s_j - m)) <= exp(most_j - floor) times the
    shift's rounding exp(u |s_j - m|) and exp's ulps, plus its subnormal error."""
    att = r.spec.blocks[0].layer
    if scored is None:
        _, hd, _, most, floor = _scores(r, pos)
    else:
        hd, most, floor = scored
    V = hd.v.shape[-1]
    q_tok = np.flatnonzero(pos.can_hold(V)[pos.t])
    rho = np.zeros((V, att.n_heads))
    lo = np.full((att.n_heads, att.vd), np.inf)
    hi = np.full((att.n_heads, att.vd), -np.inf)
    fl = r.fl
    for h, ps in enumerate(reads):
        rest = np.ones(most.shape[-1], bool)
        rest[ps] = False
        rest &= (most[:, h] > floor[:, h, None] - ZERO_GAP).any(0)
        if not rest.any():
            continue
        seen = rest[None] & np.isfinite(most[:, h])  # [R, P]: a key there, in this row
        gap = upper(np.where(seen, most[:, h] - floor[:, h, None], -ZERO_GAP))  # elsewhere: any value, unused
        grow = upper(1 + upper(fl.u * upper(-gap.clip(max=0)))) * upper(1 + 2 * fl.ulps * fl.u)
        e = exp_box(Box(gap, gap)).hi
        rho[q_tok, h] = upper(upper(np.where(seen, e * grow, 0.0).sum(-1) * (1 + 1e-12)) + rest.sum() * fl.ulps * fl.eta)
        live = hd.live[:, h][:, rest].any(0)  # [P', V]
        vals = hd.v[h][:, rest]  # [vd, P', V]
        lo[h] = np.where(live[None], vals.lo, np.inf).min((-2, -1))
        hi[h] = np.where(live[None], vals.hi, -np.inf).max((-2, -1))
    return rho, Box(np.where(np.isfinite(lo), lo, 0.0), np.where(np.isfinite(hi), hi, 0.0))


def note_shifts(r: Rules, s: Box, live: np.ndarray) -> None:
    """Record the shifts fl(s_j - max) softmax meets, for the exact-zero check of exp."""
    top = np.where(live, s.hi, -np.inf).max((-2, -1))  # [R, H]
    low = np.where(live, s.lo, np.inf).min((-2, -1))
    r.note("softmax_zero", lower(lower(low - top) * (1 + r.fl.u)), -ZERO_GAP)


def checked_heads(r: Rules, pos: Positions, claimed) -> list[list[int]]:
    """The certificate's head positions, re-derived (Rejected if they differ or fail)."""
    found, why = read_positions(r, pos)
    if found is None:
        raise Rejected(f"step {pos.k}: {why}")
    if claimed != found:
        raise Rejected(f"step {pos.k}: the certificate's head positions {claimed} are not the ones read ({found})")
    return found


def read_union(reads: list[list[int]]) -> list[int]:
    """The positions some head reads, in order: the table's columns after the query token."""
    return sorted({p for ps in reads for p in ps})


def rows(pos: Positions, read: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every (query token, tokens read) an input can show at this step, with its target and one
    input (a, b) showing it: the operand digits of the window of groups the positions and the
    target depend on, and the carry into it, enumerated (a row per distinct token tuple).
    Raises Rejected when one token tuple needs two different answers (the model is then wrong
    on one of them) or the window is too wide."""
    need = [pos.t] + list(read)
    groups = {pos.target_group} | {g for kind, g in (pos.slots[p] for p in need) if kind != "fixed"}
    lo, hi = min(groups), min(max(groups), GROUPS - 1)
    w = max(0, hi - lo + 1)
    carries = 2 if lo > 0 else 1
    if carries * 100 ** w > MAX_ROWS:
        raise Rejected(f"step {pos.k}: the positions read span {w} digit groups, too many rows to enumerate")
    grid = np.indices((carries,) + (10,) * (2 * w)).reshape(1 + 2 * w, -1)
    cin, a_d, b_d = grid[0], grid[1:1 + w], grid[1 + w:]
    digits = {"a": {}, "b": {}, "s": {}}
    c = cin
    for i in range(w):
        g = lo + i
        total = a_d[i] + b_d[i] + c
        digits["a"][g], digits["b"][g], digits["s"][g] = a_d[i], b_d[i], total % 10
        c = total // 10
    digits["s"][hi + 1] = c  # s_10 is the last carry; s_g beyond the window is not read
    tokens = pos.tokens
    cols = []
    for p in need:
        kind, g = pos.slots[p]
        cols.append(np.full(len(cin), g) if kind == "fixed" else tokens[digits[kind][g]])
    target = tokens[digits["s"][pos.target_group]]
    # one input per row: the window's digits, and 9 + 9 below it when a carry comes in
    a = sum(a_d[i].astype(np.int64) * 10 ** (lo + i) for i in range(w)) + cin * 9 * 10 ** max(lo - 1, 0)
    b = sum(b_d[i].astype(np.int64) * 10 ** (lo + i) for i in range(w)) + cin * 9 * 10 ** max(lo - 1, 0)
    tup = np.stack(cols, 1)
    keyed = np.concatenate([tup, target[:, None]], 1)
    _, first = np.unique(keyed, axis=0, return_index=True)
    uniq, inv = np.unique(tup[first], axis=0, return_inverse=True)
    if len(uniq) != len(first):
        j = int(np.flatnonzero(np.bincount(inv.reshape(-1)) > 1)[0])
        raise Rejected(f"step {pos.k}: the tokens read {uniq[j].tolist()} occur with two different answers; "
                       "the logits cannot be right for both")
    return tup[first], target[first], np.stack([a[first], b[first]], 1)


def evaluate(r: Rules, pos: Positions, reads: list[list[int]], tup: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Lower bound of the float32 margin of each row (query token, tokens read): the residual at
    the query plus the attention output (a head reading one key: exactly its value vector; two
    or three: `_mix`), then every MLP block, the final norm and the unembedding, in `tight.py`'s
    boxes."""
    spec = r.spec
    att = spec.blocks[0].layer
    tight = Tight(r)
    x = tight.embedding(len(pos.slots))  # [P, V, d]
    normed = tight.norm(x, spec.blocks[0].norm)
    v = tight.linear(normed, att.v)  # [P, V, Hkv * vd]
    group = np.arange(att.n_heads) // (att.n_heads // att.n_kv_heads)
    column = {p: 1 + i for i, p in enumerate(read_union(reads))}
    rho, v_tail = tails(r, pos, reads)
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
        step = score_grid(scores[top].lo, scores[top].hi, r.fl) if len(ps) > 1 else np.zeros(len(tup))
        r.note("exp", min(float(b.lo.min()) for b in shifts), 0.0, grid=float(step.min()) if len(ps) > 1 else 0.0)
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
        with np.errstate(divide="ignore"):
            inv = Box(rn(lower(1.0 / total.hi)), rn(upper(1.0 / total.lo)))
        weights = []
        for ej in e:
            times, over = tight.mul(ej, inv), Box(rn(lower(ej.lo / total.hi)), rn(upper(ej.hi / total.lo)))
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


def table(r: Rules, pos: Positions, reads: list[list[int]]) -> Table:
    tup, target, example = rows(pos, read_union(reads))
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):  # infinities and NaN are handled
        margin = evaluate(r, pos, reads, tup, target)
    return Table(reads, tup, target, margin, example)


def check_table_step(r: Rules, pos: Positions, record) -> int:
    """Re-verify a step the certificate proves by the table rule; returns its number of rows."""
    if not isinstance(record, dict) or not isinstance(record.get("heads"), list):
        raise Rejected(f"step {pos.k}: malformed table record")
    why = not_applicable(r)
    if why:
        raise Rejected(f"step {pos.k}: {why}")
    reads = checked_heads(r, pos, record["heads"])
    t = table(r, pos, reads)
    bad = np.flatnonzero(~(t.margin > 0))
    if len(bad):
        i = bad[0]
        raise Rejected(f"step {pos.k}: table row (query token, tokens read) {t.tokens[i].tolist()}: the margin bound "
                       f"{t.margin[i]:.3g} is not positive")
    return len(t.margin)
