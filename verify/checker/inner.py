"""The residual stream before the last attention layer, for every input of one step.

Before the first attention every position's residual depends on its own token: one box per
(position p, token v), the *lattice*. An attention layer before the last makes position p
depend on the tokens it reads; the certificate says, per query row (p, v), which key positions
to *enumerate* (at most 3): the row splits into one sub-row per combination of tokens there
(combinations no input has are dropped), each a case of the automaton with those tokens fixed.
Every sub-row's head outputs are bounded by the certificate's lam (relaxed: each position picks
its worst allowed token on its own, a superset of the paths), then o, the residual addition and
the MLPs after it (each box cut into 16 slices along its widest side, the hull of the slices'
images: sound for any cut). Any choice of enumerated positions is sound: the sub-rows of a row
cover every token its positions can hold. The next layer reads, per (p, v), the hull of its
sub-rows; the last layer's query position keeps its sub-rows, so that each certificate leaf
takes the hull of only those sub-rows an input of its case can be in.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from ...compiler.spec import Attention
from .bounds import Rejected, Rules, heads, last_attention, output_box, ratio_bounds_hold
from .paths import Positions, everything, has_input, live_transitions
from .reals import Box

#: At most this many enumerated positions per row (10^3 sub-rows).
MAX_ENUMERATED = 3
#: Slices of a sub-row's box for the MLPs after an inner attention layer.
MLP_PIECES = 16
#: Sub-rows whose attention inequalities are checked in one vectorised batch.
BATCH = 64


@dataclass
class SubRows:
    p: np.ndarray  # [S] position
    v: np.ndarray  # [S] token
    masks: np.ndarray  # [S, 10, 100, 2] each sub-row's case
    finals: np.ndarray  # [S, 2]
    box: Box | None = None  # [S, d] residual after the layer (and the MLPs after it)
    normed: Box | None = None  # [S, d] the last attention's norm of `box`


@dataclass
class Before:
    """What the last attention layer reads: key boxes [P, V, d] (its norm of the lattice), the
    lattice itself, and the query position's sub-rows (None: one box per query token)."""

    lattice: Box
    keys: Box
    query: SubRows | None

    def query_rows(self, pos: Positions, query_token: np.ndarray, masks: np.ndarray, finals: np.ndarray):
        """Per case: (residual [N, d], normed [N, d]) at the query position: the hull of the query
        sub-rows that hold its query token and that an input of the case can be in."""
        t = pos.t
        if self.query is None:
            return self.lattice[t, query_token], self.keys[t, query_token]
        q = self.query
        live, final = live_transitions(masks, finals)
        ok = (q.v[None, :] == np.asarray(query_token)[:, None]) & (final[:, None] & q.finals[None]).any(-1)
        for j in np.flatnonzero(~q.masks.all((0, 2, 3))):  # the groups some sub-row constrains
            ok &= (live[:, None, j] & q.masks[None, :, j]).any((-2, -1))
        none = ~ok.any(1)  # a case without inputs: any box will do

        def hull(box: Box, fallback: Box) -> Box:
            lo = np.where(ok[..., None], box.lo[None], np.inf).min(1)
            hi = np.where(ok[..., None], box.hi[None], -np.inf).max(1)
            return Box(np.where(none[:, None], fallback.lo, lo), np.where(none[:, None], fallback.hi, hi))
        return hull(q.box, self.lattice[t, query_token]), hull(q.normed, self.keys[t, query_token])


def embedding(r: Rules, pos: Positions) -> Box:
    """[P, V, d]: token embedding (+ position embedding, one rounded addition)."""
    spec = r.spec
    E = r.w[id(spec.embed)]
    P = len(pos.slots)
    x = Box.exact(np.broadcast_to(E[None], (P,) + E.shape).copy())
    if spec.pos is not None:
        x = r.fl.op(x + r.w[id(spec.pos)][:P, None, :])
    return x


def before_last(r: Rules, pos: Positions, records, label: str) -> Before:
    """Bound every block before the last attention, re-verifying the certificate's `records`
    (one per inner attention layer: {"enumerate": [[p, ...] per row], "lam": [...]})."""
    spec = r.spec
    last = last_attention(spec)
    n_inner = sum(isinstance(b.layer, Attention) for b in spec.blocks[:last])
    if not isinstance(records, list) or len(records) != n_inner or not all(isinstance(x, dict) for x in records):
        raise Rejected(f"{label}: expected {n_inner} inner attention records")
    x = embedding(r, pos)
    sub: SubRows | None = None
    layer = 0
    for block in spec.blocks[:last]:
        if not isinstance(block.layer, Attention):
            if sub is None:
                x = r.residual_mlp(x, block)
            else:
                sub.box = sliced(r, sub.box, block)
            continue
        if sub is not None:
            x = hull(sub, sub.box, x.shape)
        sub = _attention_layer(r, pos, block, x, records[layer], label)
        layer += 1
    keys_norm = spec.blocks[last].norm
    if sub is None:
        return Before(x, r.norm(x, keys_norm), None)
    sub.normed = r.norm(sub.box, keys_norm)
    at_t = sub.p == pos.t
    query = SubRows(sub.p[at_t], sub.v[at_t], sub.masks[at_t], sub.finals[at_t], sub.box[at_t], sub.normed[at_t])
    return Before(hull(sub, sub.box, x.shape), hull(sub, sub.normed, x.shape), query)


def _attention_layer(r: Rules, pos: Positions, block, x: Box, record: dict, label: str) -> SubRows:
    """One inner attention layer: its sub-rows, their recorded bounds re-verified, their boxes."""
    att = block.layer
    V = x.shape[1]
    rows_p, rows_v = np.nonzero(pos.can_hold(V))
    sub, row_of = _expand(pos, rows_p, rows_v, record.get("enumerate"), label, V)
    keys = r.norm(x, block.norm)
    hd = heads(r, att, keys, keys[rows_p, rows_v], rows_p, pos)
    try:
        lam = np.asarray(record.get("lam"), dtype=np.float64).reshape(len(sub.p), att.n_heads, att.vd, 2)
    except (TypeError, ValueError):
        raise Rejected(f"{label}: an inner layer's lam does not have {len(sub.p)} x {att.n_heads} x {att.vd} x 2 numbers") from None
    for s in range(0, len(sub.p), BATCH):
        sl = slice(s, s + BATCH)
        ok = ratio_bounds_hold(hd, row_of[sl], lam[sl], pos, sub.masks[sl], sub.finals[sl], relaxed=True)
        if not ok.all():
            i = s + int(np.argmin(ok))
            raise Rejected(f"{label}: an inner attention bound does not hold (row at position {sub.p[i]}, token {sub.v[i]})")
    out = output_box(hd, row_of, lam)
    sub.box = r.fl.op(x[sub.p, sub.v] + r.linear(out, att.o))
    return sub


def _expand(pos: Positions, rows_p, rows_v, enum, label: str, V: int) -> tuple[SubRows, np.ndarray]:
    """The sub-rows of every row (in row order, then token combinations in product order), and
    each one's row index."""
    if not isinstance(enum, list) or len(enum) != len(rows_p):
        raise Rejected(f"{label}: an inner layer must list {len(rows_p)} rows of enumerated positions")
    can = pos.can_hold(V)
    ps_, vs, masks, finals, row_of = [], [], [], [], []
    for i, (p, v, chosen) in enumerate(zip(rows_p, rows_v, enum)):
        if not isinstance(chosen, list) or len(chosen) > MAX_ENUMERATED or len(set(map(str, chosen))) != len(chosen) \
                or any(type(q) is not int or not 0 <= q < len(pos.slots) or pos.slots[q][0] == "fixed" for q in chosen):
            raise Rejected(f"{label}: bad enumerated positions {chosen!r}")
        mask, final = pos.constrain(*everything(), int(p), int(v))
        for combo in itertools.product(*[np.flatnonzero(can[q]) for q in chosen]):
            m, f = mask, final
            for q, tok in zip(chosen, combo):
                m, f = pos.constrain(m, f, q, int(tok))
            ps_.append(p), vs.append(v), masks.append(m), finals.append(f), row_of.append(i)
    masks, finals = np.array(masks), np.array(finals)
    keep = has_input(masks, finals)  # combinations no input has are dropped
    sub = SubRows(np.array(ps_)[keep], np.array(vs)[keep], masks[keep], finals[keep])
    return sub, np.array(row_of)[keep]


def hull(sub: SubRows, box: Box, shape) -> Box:
    """[P, V, d]: per (position, token), the hull of its sub-rows' boxes (0 where there are none:
    a token that cannot sit there, never read)."""
    lo, hi = np.full(shape, np.inf), np.full(shape, -np.inf)
    np.minimum.at(lo, (sub.p, sub.v), box.lo)
    np.maximum.at(hi, (sub.p, sub.v), box.hi)
    empty = lo > hi
    return Box(np.where(empty, 0.0, lo), np.where(empty, 0.0, hi))


def sliced(r: Rules, x: Box, block, pieces: int = MLP_PIECES) -> Box:
    """x + mlp(norm(x)) over each box as the hull of its images over `pieces` slices along its
    widest side (shared cut points: the slices cover the box)."""
    dim = np.argmax(x.hi - x.lo, axis=-1)[..., None]
    lo0, hi0 = np.take_along_axis(x.lo, dim, -1), np.take_along_axis(x.hi, dim, -1)
    cuts = [lo0] + [lo0 + (hi0 - lo0) * (i / pieces) for i in range(1, pieces)] + [hi0]
    out = None
    for a, b in zip(cuts[:-1], cuts[1:]):
        if not (np.all(a <= b)):
            raise Rejected("a slice of a box is empty")
        lo, hi = x.lo.copy(), x.hi.copy()
        np.put_along_axis(lo, dim, a, -1)
        np.put_along_axis(hi, dim, b, -1)
        y = r.residual_mlp(Box(lo, hi), block)
        out = y if out is None else Box(np.minimum(out.lo, y.lo), np.maximum(out.hi, y.hi))
    return out

