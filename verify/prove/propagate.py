"""Push a step's cases through the model: embedding lattice -> blocks -> margin bound.

The state before a block is a *lattice*: for every position p and every token v that can
sit there, an interval box [C, P, V, d] containing the residual the float module holds at p
when p holds v, over every input of the case (C cases; C = 1 while nothing depends on the
case, i.e. up to the first attention). MLP blocks act on each box. An attention block is
bounded per query row (case, position, token) by `softmax.dinkelbach` over the automaton,
one problem per head, value coordinate and direction. After the last attention only the
query position t matters: its attention-output box is bisected until the margin bound of
the target digit is positive everywhere (`margin_boxes`), or a depth limit is reached.

The same code runs in two modes: *search* (find the Dinkelbach bounds and the bisection)
and *check* (given them, re-verify each inequality with rigorous exp): `Given` carries them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ...compiler.spec import Attention
from .automaton import Cases
from .floatmodel import dot_rounded, rounded
from .intervals import Interval, down, sum_down, up
from .layers import Ctx, dot_scores, linear, mlp, norm, rotate
from .joint import key_ratios, residual_after
from .layout import StepLayout
from .softmax import dinkelbach, output_slack, upper_bound_holds, weights

#: Largest problem table (rows x heads x coordinates x 2 x positions x tokens) bounded at once.
MAX_CELLS = 4_000_000
#: Bisection depth of the last attention output box before a case is branched or left open.
MAX_BISECTIONS = 10
#: ... for a case the search cannot split any further (its last chance before it is left open).
DEEPEST_BISECTIONS = 14
#: A row stops bisecting once its worst margin bound cannot reach zero in the levels left even
#: if every round gained GROWTH times what the last one did.
GROWTH = 2.0


@dataclass
class Rows:
    """Query rows of an attention block: case index, position and token of each."""

    case: np.ndarray
    pos: np.ndarray
    tok: np.ndarray

    def __len__(self) -> int:
        return len(self.case)


@dataclass
class HeadBounds:
    """Result of one attention block over its query rows."""

    out: Interval  # [Q, H * vd] head outputs
    residual: Interval  # [Q, d] residual stream at the query (before this block)
    lam: np.ndarray  # [Q, H, vd, 2] certified max and -min per coordinate (NaN: not certified)
    paths: tuple | None  # maximising paths (pairs [N, 10], carries [N, 11]) of the problems, search only
    after: Interval | None = None  # [Q, d] the residual after the block by the joint rule (`joint.py`), if asked


def embed_lattice(layout: StepLayout, ctx: Ctx) -> Interval:
    """[1, P, V, d]: token embedding (+ position embedding, one rounded addition)."""
    mw = ctx.mw
    E = mw(mw.spec.embed)  # [V, d]
    x = Interval.point(np.broadcast_to(E[None], (layout.n_pos,) + E.shape).copy())
    if mw.spec.pos is not None:
        x = rounded(x + mw(mw.spec.pos)[: layout.n_pos, None, :], ctx.ar)
    return x[None]


def concat_rows(items: list[Interval]) -> Interval:
    return Interval(np.concatenate([i.lo for i in items]), np.concatenate([i.hi for i in items]))


def _heads(x: Interval, n: int, hd: int) -> Interval:
    return x.reshape(*x.shape[:-1], n, hd)


def head_inputs(x: Interval, block, rows: Rows, query_x: Interval, layout: StepLayout, ctx: Ctx,
                normed: tuple[Interval, Interval] | None = None):
    """Scores of one attention block at its query rows: s [Q, H, P, V] (q . k, scaled, plus
    ALiBi or bias), live [Q, H, P, V] (keys that can occur and are not masked), and the
    values v [C, P, V, Hkv, vd] of the lattice. query_x [Q, d]: each row's residual.
    `normed`: the block's norm of the lattice and of the query rows, when bounded tighter
    elsewhere (hulls of normed sub-boxes, `inner.py`)."""
    att = block.layer
    mw, ar = ctx.mw, ctx.ar
    H, Hkv, hd, vd = att.n_heads, att.n_kv_heads, att.head_dim, att.vd
    P, V = layout.n_pos, layout.vocab
    xc = rows.case if x.shape[0] > 1 else np.zeros(len(rows), np.int64)
    group = np.arange(H) // (H // Hkv)
    keys = norm(x, block.norm, ctx) if normed is None else normed[0]
    k = _heads(linear(keys, att.k, ctx), Hkv, hd)  # [C, P, V, Hkv, hd]
    v = _heads(linear(keys, att.v, ctx), Hkv, vd)  # [C, P, V, Hkv, vd]
    k = norm(k, att.k_norm, ctx)
    xq = norm(query_x, block.norm, ctx) if normed is None else normed[1]  # [Q, d]
    q = _heads(linear(xq, att.q, ctx), H, hd)  # [Q, H, hd]
    q = norm(q, att.q_norm, ctx)
    if att.rope is not None:
        cos, sin = mw.rope_tables(att.rope, P, hd)
        k = rotate(k, cos[None, :, None, None, :], sin[None, :, None, None, :], att.rope.convention, ar)
        q = rotate(q, cos[rows.pos][:, None, :], sin[rows.pos][:, None, :], att.rope.convention, ar)
    scale = mw.attention_scale(att)
    if att.scale_op == "mul_q":
        q = rounded(q * scale, ar)
    kq = k[xc][:, :, :, group]  # [Q, P, V, H, hd]
    s = dot_scores(Interval(q.lo[:, None, None], q.hi[:, None, None]), kq, ctx)  # [Q, P, V, H]
    s = Interval(np.moveaxis(s.lo, -1, 1), np.moveaxis(s.hi, -1, 1))  # [Q, H, P, V]
    if att.scale_op == "div":
        s = rounded(s / scale, ar)
    elif att.scale_op == "mul" and mw.model._scales[id(att)] != 1.0:
        s = rounded(s * scale, ar)
    j = np.arange(P)
    live = np.broadcast_to(layout.valid[None, None], (len(rows), H, P, V)).copy()
    if att.causal:
        live &= (j[None, :] <= rows.pos[:, None])[:, None, :, None]
    if att.alibi is not None:
        dist = (j[None, :] - rows.pos[:, None]).astype(np.float64)  # [Q, P]
        slope = mw(att.alibi)  # [H]
        s = rounded(s + rounded(Interval.point(slope[None, :, None] * dist[:, None, :])[..., None], ar), ar)
    if att.bias is not None:
        table = mw(att.bias)[:, rows.pos][:, :, :P]  # [H, Q, P]
        tb = np.moveaxis(table, 1, 0)[..., None]  # [Q, H, P, 1]
        live &= np.isfinite(tb)
        s = rounded(s + np.where(np.isfinite(tb), tb, 0.0), ar)
    return s, live, v


def attention(x: Interval, block, rows: Rows, row_cases: Cases, layout: StepLayout, ctx: Ctx,
              given: np.ndarray | None = None, query_x: Interval | None = None, relaxed: bool = False,
              normed: tuple[Interval, Interval] | None = None, joint: bool = False,
              only_read: bool = True) -> HeadBounds:
    """Bound one attention block at the query rows. x: residual lattice [C, P, V, d];
    `row_cases` holds each row's constraints (its case, with the query token fixed);
    `query_x` [Q, d], when given, is each row's own residual (tighter than the lattice box);
    `relaxed`: bound over each position's allowed tokens separately (`softmax.g_upper`);
    `normed`: (normed lattice, normed query rows), see `head_inputs`; `joint`: also bound the
    residual after the block by the joint rule for several heads (`joint.residual_after`);
    `only_read`: the head outputs are read through O alone (not bisected themselves), so a
    coordinate O does not read, and a head of the joint rule whose other keys weigh less than a
    rounding (rho < u), get the plain convex bound (`unread_bound`), not Dinkelbach's."""
    att = block.layer
    per_row = att.n_heads * att.vd * 2 * layout.n_pos * layout.vocab
    if len(rows) > 1 and len(rows) * per_row > MAX_CELLS:  # bound memory: rows in chunks
        step = max(1, MAX_CELLS // per_row)
        parts = []
        for s in range(0, len(rows), step):
            sl = slice(s, s + step)
            sub = Rows(rows.case[sl], rows.pos[sl], rows.tok[sl])
            g = None if given is None else np.asarray(given, dtype=np.float64).reshape(len(rows), -1)[sl]
            qx = None if query_x is None else query_x[sl]
            nm = None if normed is None else (normed[0], normed[1][sl])
            parts.append(attention(x, block, sub, row_cases.take(np.arange(len(rows))[sl]), layout, ctx, g, qx, relaxed,
                                   nm, joint, only_read))
        paths = None
        if given is None and any(p.paths is not None for p in parts):
            offs = np.cumsum([0] + [len(p.residual.lo) for p in parts])
            got = [(p.paths, o) for p, o in zip(parts, offs) if p.paths is not None]
            paths = (np.concatenate([q[0] for q, _ in got]), np.concatenate([q[1] for q, _ in got]),
                     np.concatenate([q[2] + o for q, o in got]))
        return HeadBounds(out=concat_rows([p.out for p in parts]), residual=concat_rows([p.residual for p in parts]),
                          lam=np.concatenate([p.lam for p in parts]), paths=paths,
                          after=concat_rows([p.after for p in parts]) if joint else None)
    ar = ctx.ar
    H, Hkv, vd = att.n_heads, att.n_kv_heads, att.vd
    P, V = layout.n_pos, layout.vocab
    xc = rows.case if x.shape[0] > 1 else np.zeros(len(rows), np.int64)
    residual = x[xc, rows.pos, rows.tok] if query_x is None else query_x
    if query_x is None and normed is None:  # rows that share (case, position, token) share their scores
        key = np.stack([xc, rows.pos, rows.tok], 1)
        _, first, back = np.unique(key, axis=0, return_index=True, return_inverse=True)
        back = back.reshape(-1)
    else:
        first, back = np.arange(len(rows)), np.arange(len(rows))
    urows = Rows(xc[first], rows.pos[first], rows.tok[first])
    s, live, v = head_inputs(x, block, urows, residual[first], layout, ctx,
                             None if normed is None else (normed[0], normed[1][first]))
    group = np.arange(H) // (H // Hkv)
    e, d0 = weights(s, live, att.softmax, ctx)  # [U, H, P, V], [U, H]
    e, d0, live, s = e[back], d0[back], live[back], s[back]
    e = Interval(np.where(live, e.lo, 0.0), np.where(live, e.hi, 0.0))

    vq = v[xc][:, :, :, group]  # [Q, P, V, H, vd]
    vq = Interval(np.moveaxis(vq.lo, (3, 4), (1, 2)), np.moveaxis(vq.hi, (3, 4), (1, 2)))  # [Q, H, vd, P, V]
    live_v = live[:, :, None]
    vmax = np.where(live_v, vq.mag(), 0.0).max((-2, -1))  # [Q, H, vd]
    zero = (vmax == 0)

    # problems: (row, head, coord, direction) with direction 0 = max v, 1 = max -v
    vhi = np.stack([vq.hi, -vq.lo], 3)  # [Q, H, vd, 2, P, V]
    shape = vhi.shape[:4]
    eN = Interval(np.broadcast_to(e.lo[:, :, None, None], vhi.shape).reshape(-1, P, V),
                  np.broadcast_to(e.hi[:, :, None, None], vhi.shape).reshape(-1, P, V))
    dN = Interval(np.broadcast_to(d0.lo[:, :, None, None], shape).reshape(-1),
                  np.broadcast_to(d0.hi[:, :, None, None], shape).reshape(-1))
    vN = np.where(np.broadcast_to(live_v[:, :, :, None], vhi.shape), vhi, 0.0).reshape(-1, P, V)
    qcases = row_cases
    rep = np.repeat(np.arange(len(rows)), int(np.prod(shape[1:])))
    caseN = qcases.take(rep)
    todo = ~np.broadcast_to(zero[..., None], shape).reshape(-1)
    allowed = layout.allowed_tokens(qcases)[rep] if relaxed else None
    lam = np.zeros(len(rep))
    paths = None
    ratios = tokens = None
    if given is None:
        if only_read:  # coordinates O does not read: the convex bound, no search
            unread = unread_coordinates(att, ctx)[None, :, :, None]  # [1, H, vd, 1]
            if joint:  # and a head whose other keys weigh less than a rounding of its output: the
                # joint rule's box is then as tight as the float arithmetic, and the head's own is not read
                tokens = layout.allowed_tokens(row_cases)
                ratios = key_ratios(s, live, tokens, ctx)
                unread = unread | (ratios[2] < ctx.ar.u)[:, :, None, None]
            free = np.flatnonzero(todo & np.broadcast_to(unread, shape).reshape(-1))
            plain = unread_bound(vN[free])
            free = free[np.isfinite(plain)]  # an unbounded value box is left to the search (it says so)
            lam[free] = plain[np.isfinite(plain)]
            todo[free] = False
        if todo.any():
            sub = np.flatnonzero(todo)
            found, p = dinkelbach(eN[sub], vN[sub], dN[sub], layout, caseN.take(sub),
                                  None if allowed is None else allowed[sub])
            lam[sub] = found
            paths = None if p is None else (p[0], p[1], rep[sub])
    else:
        lam = np.asarray(given, dtype=np.float64).reshape(-1)
        sub = np.flatnonzero(todo)
        ok = upper_bound_holds(lam[sub], eN[sub], vN[sub], dN[sub], layout, caseN.take(sub),
                               None if allowed is None else allowed[sub]) if len(sub) else []
        bad = np.ones(len(lam), bool)
        bad[sub] = ~np.asarray(ok, bool)
        bad[~todo] = lam[~todo] != 0
        lam = np.where(bad, np.nan, lam)
    lam = lam.reshape(shape)
    slack = output_slack(vmax, P, ar)
    out = Interval(down(-lam[..., 1] - slack), up(lam[..., 0] + slack))  # [Q, H, vd]
    out = Interval(np.where(np.isnan(out.lo), -np.inf, out.lo), np.where(np.isnan(out.hi), np.inf, out.hi))
    out = out.reshape(len(rows), H * vd)
    after = None
    if joint:
        after, worst = residual_after(s, live, vq, out, vmax, slack, ctx.joint_o, residual, row_cases, layout, ctx,
                                      ratios, tokens, want_paths=given is None)
        if worst is not None:  # the joint rule's extreme inputs are candidates too (its heads have no search)
            paths = worst if paths is None else tuple(np.concatenate([a, b]) for a, b in zip(paths, worst))
    return HeadBounds(out=out, residual=residual, lam=lam, paths=paths, after=after)


def unread_coordinates(att: Attention, ctx: Ctx) -> np.ndarray:
    """[H, vd]: the head-output coordinates whose column of O (its first matrix) is all zero. The
    float O-projection multiplies them by exact zeros, so their values never reach the residual."""
    return (ctx.mw(att.o.weights[0]) == 0).all(0).reshape(att.n_heads, att.vd)


def unread_bound(v_hi: np.ndarray) -> np.ndarray:
    """A bound lam of a head output R = sum_j p_j v_j (p_j >= 0, sum p_j <= 1) that needs no
    search: R <= max(max_j v_j, 0), widened by about 1e-3 (max |v| + 1) so that every term e_j (v_j
    - lam) stays negative under any rounding of v's bound (the checker's included), and written
    as a multiple of 1/1000 (a short number in the certificate; the widening dwarfs its rounding).
    Only where the bound is never used: coordinates O does not read, and heads whose joint-rule
    box stands in for theirs (`attention`). v_hi [N, P, V] (0 at dead keys)."""
    top = np.maximum(v_hi.max((1, 2)), 0.0)
    return np.ceil(1000 * top + np.abs(v_hi).max((1, 2)) + 1) / 1000


def after_attention(hb_out: Interval, residual: Interval, att: Attention, ctx: Ctx) -> Interval:
    """Residual after the block: h + o(heads)."""
    return rounded(residual + linear(hb_out, att.o, ctx), ctx.ar)


def mlp_block(x: Interval, block, ctx: Ctx, pieces: int = 1) -> Interval:
    """Residual after an MLP block: x + mlp(norm(x)). With `pieces` > 1 the box is cut into
    that many slices along its widest coordinate and the result is the hull of the slices'
    bounds: interval arithmetic forgets that norm(x) divides every coordinate by the same
    number and that two near-equal gates subtract, and the loss shrinks with the width."""
    if pieces > 1:
        dim = np.argmax(x.hi - x.lo, axis=-1)[..., None]  # [..., 1]
        lo0, hi0 = np.take_along_axis(x.lo, dim, -1), np.take_along_axis(x.hi, dim, -1)
        # shared cut points: each slice ends exactly where the next begins
        cuts = [lo0] + [lo0 + (hi0 - lo0) * (i / pieces) for i in range(1, pieces)] + [hi0]
        out = None
        for a, b in zip(cuts[:-1], cuts[1:]):
            lo, hi = x.lo.copy(), x.hi.copy()
            np.put_along_axis(lo, dim, a, -1)
            np.put_along_axis(hi, dim, b, -1)
            y = mlp_block(Interval(lo, hi), block, ctx)
            out = y if out is None else Interval(np.minimum(out.lo, y.lo), np.maximum(out.hi, y.hi))
        return out
    return rounded(x + mlp(norm(x, block.norm, ctx), block.layer, ctx), ctx.ar)


def margin_lower(h: Interval, target: np.ndarray, ctx: Ctx) -> np.ndarray:
    """Lower bound of min_{d != y} (logit_y - logit_d) of the float module, h [N, d].

    The final norm and all but the last unembedding matrix are bounded as usual; the last
    matrix W enters as the *difference* of two rows, so the large shared part of the two
    logits cancels exactly: (h . W_y - h . W_d) in real arithmetic, plus only the rounding of
    the two float dot products (and bias additions) that actually differ.
    """
    mw, ar, spec = ctx.mw, ctx.ar, ctx.mw.spec
    z = norm(h, spec.final_norm, ctx)
    for m in spec.unembed.weights[:-1]:
        z = dot_rounded(z, mw(m), ar)
    W = mw(spec.unembed.weights[-1])  # [V, n]
    V = W.shape[0]
    b = mw(spec.unembed.bias) if spec.unembed.bias is not None else np.zeros(V)
    diff = Interval.point(W[target])[:, None, :] - W[None]  # [N, V, n], rounded outward
    # lower bound only: each product's minimum over z's box and the difference's interval
    lo_, hi_ = z.lo[:, None, :], z.hi[:, None, :]
    with np.errstate(invalid="ignore"):
        least = np.minimum(np.minimum(lo_ * diff.lo, lo_ * diff.hi), np.minimum(hi_ * diff.lo, hi_ * diff.hi))
    if np.isnan(least).any():  # 0 * inf at some corner: such a corner counts as 0 (no stacked copy otherwise)
        corners = np.stack([lo_ * diff.lo, lo_ * diff.hi, hi_ * diff.lo, hi_ * diff.hi])
        least = np.where(np.isnan(corners), 0.0, corners).min(0)
    prod_lo = down(least)
    bias = Interval.point(b[target])[:, None] - b[None]
    real = Interval(down(sum_down(prod_lo) + bias.lo), np.full(bias.lo.shape, np.inf))  # [N, V]
    if not ar.exact:
        n = W.shape[1]
        mag = up((z.mag()[:, None, :] * np.abs(W)[None]).sum(-1) * (1 + 2.0**-50))  # [N, V]
        err = up(ar.gamma(n) * mag + n * ar.eta)
        if spec.unembed.bias is not None:
            err = up(err + ar.gamma(1) * up(mag + np.abs(b)[None] + err) + ar.eta)
        errs = up(err[np.arange(len(target)), target][:, None] + err)
        real = Interval(down(real.lo - errs), real.hi)
    lo = np.where(np.arange(V)[None, :] == target[:, None], np.inf, real.lo)
    return lo.min(1)


def tail_margin(out: Interval, residual: Interval, att: Attention, later: list, target: np.ndarray,
                ctx: Ctx) -> np.ndarray:
    """Margin lower bound from the last attention's output box onwards. out [N, H*vd]."""
    return residual_margin(after_attention(out, residual, att, ctx), later, target, ctx)


def residual_margin(h: Interval, later: list, target: np.ndarray, ctx: Ctx) -> np.ndarray:
    """Margin lower bound from the residual after the last attention onwards. h [N, d]."""
    for block in later:
        h = mlp_block(h, block, ctx)
    return margin_lower(h, target, ctx)


def bisect_margins(box: Interval, tail: Callable[[Interval, np.ndarray], np.ndarray], trees: list | None = None,
                   max_depth: int = MAX_BISECTIONS, splittable: np.ndarray | None = None):
    """Prove margin > 0 over each row's box by bisection; `tail(sub-boxes, rows)` is the margin
    lower bound of each sub-box of the given rows (`tail_margin` for the last attention's
    output box, `residual_margin` for the residual after it).

    Search (trees None): bisect the widest coordinate of every failing box, up to
    `max_depth` times. With `splittable` [N] (the search's cases that it can still split on a
    digit group, often cheaper than a thousand boxes): the others, which are left open if this
    fails, may go to DEEPEST_BISECTIONS; and after each round of halvings (one level per
    coordinate) a row whose worst bound m would stay below zero even if every round left gained
    GROWTH times the last round's gain g (m + GROWTH g rounds_left < 0) stops, unproven. Which
    boxes are bounded never affects soundness, only which rows end proven. Check (trees given): follow the given trees. Returns (ok [N],
    worst [N], trees): `worst` is the smallest margin bound over the row's final boxes and a
    tree is a nested list (None: a box bounded directly; [dim, lower half, upper half]).
    """
    n = box.shape[0]
    result: list = [None] * n
    slots = [(result, i) for i in range(n)]  # where each pending box's tree node goes
    subtrees = list(trees) if trees is not None else [None] * n
    rows = np.arange(n)
    lo, hi = box.lo.copy(), box.hi.copy()
    worst = np.full(n, np.inf)
    ok = np.ones(n, bool)
    depth = 0
    history = []  # per level: each row's worst bound among its failing boxes (+inf: none)
    rounds = box.shape[1]  # levels in one round of halvings
    limit = np.full(n, max_depth) if splittable is None else np.where(splittable, max_depth, DEEPEST_BISECTIONS)
    while len(rows):
        with np.errstate(invalid="ignore", over="ignore"):
            m = tail(Interval(lo, hi), rows)
        m = np.where(np.isnan(m), -np.inf, m)
        if trees is not None:
            split = np.array([t is not None for t in subtrees], bool)
        else:
            split = ~(m > 0) & (depth < limit[rows]) & np.isfinite(lo).all(1) & np.isfinite(hi).all(1)
            if splittable is not None:
                level = np.full(n, np.inf)
                np.minimum.at(level, rows, np.where(m > 0, np.inf, m))
                history.append(level)
                if len(history) > rounds:
                    now, before = history[-1], history[-1 - rounds]
                    left = (limit - depth) / rounds
                    with np.errstate(invalid="ignore"):
                        gain = np.maximum(now - before, 0.0)
                        hopeless = np.isfinite(now) & (now + GROWTH * gain * left < 0)
                    split &= ~hopeless[rows]
        final = ~split
        np.minimum.at(worst, rows[final], m[final])
        np.logical_and.at(ok, rows[final & ~(m > 0)], False)
        if not split.any():
            break
        idx = np.flatnonzero(split)
        if trees is not None:
            dims = np.array([subtrees[i][0] for i in idx], np.int64)
        else:
            dims = np.argmax(hi[idx] - lo[idx], axis=1)
        k = np.arange(len(idx))
        mid = 0.5 * (lo[idx, dims] + hi[idx, dims])
        lo_a, hi_a, lo_b, hi_b = lo[idx].copy(), hi[idx].copy(), lo[idx].copy(), hi[idx].copy()
        hi_a[k, dims] = mid
        lo_b[k, dims] = mid
        nodes = [[d, None, None] for d in dims.tolist()]  # plain lists and ints: this loop meets every box
        for node, i in zip(nodes, idx.tolist()):
            box, pos = slots[i]
            box[pos] = node
        new_slots = [(node, half) for node in nodes for half in (1, 2)]
        if trees is not None:
            new_subtrees = [subtrees[i][half] for i in idx.tolist() for half in (1, 2)]
        else:
            new_subtrees = [None] * (2 * len(nodes))
        rows = np.repeat(rows[idx], 2)
        lo = np.stack([lo_a, lo_b], 1).reshape(-1, lo.shape[1])
        hi = np.stack([hi_a, hi_b], 1).reshape(-1, hi.shape[1])
        slots, subtrees = new_slots, new_subtrees
        depth += 1
    return ok, worst, result
