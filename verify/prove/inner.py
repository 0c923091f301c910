"""The blocks before the last attention: bounded once per answer step, for every input.

A lower layer's output at position p depends on the tokens its attention reads. Bounded as
one box per (position, token) over everything else, a sharp head that fetches one digit
(value 0..9) merges ten different inputs into one box, and an MLP that turns the fetched
sum into a carry by a steep step (qwen87's SwiGLU gate is ~6e4) then sees the whole step
inside one box: the bound is lost although every real input is far from the step.

So each query row (p, v) of an inner attention layer is *enumerated* on the key positions
its heads can attend to (`dominant`: a score within DOMINANT_GAP of the row's best, at most
MAX_ENUMERATED positions): one sub-row per combination of their tokens, each with those
tokens fixed in its automaton case (combinations no input has are dropped, `count_paths`).
The rest of the keys stays bounded by Dinkelbach over the automaton, as everywhere. Every
later MLP acts on each sub-row's box, and the next attention layer reads the lattice: per
(position, token), the hull of its sub-rows. The last attention's query row is tighter:
per case, the hull over the sub-rows that case can hold (`query_residual`).

Which positions are enumerated is a search decision, recorded in the certificate; any choice
is sound, because the sub-rows of a row enumerate every token its positions can hold.
Inner layers depend on the step only, not on the case, so they are bounded once per step.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from ...compiler.spec import Attention
from .automaton import Cases, count_paths, live_transitions
from .intervals import Interval
from .layers import Ctx
from .layout import StepLayout
from .layers import norm
from .propagate import Rows, after_attention, attention, embed_lattice, head_inputs, mlp_block

#: A key position is enumerated when a head may give it at least e^-DOMINANT_GAP of the best key's weight.
DOMINANT_GAP = 5.0
#: At most this many positions are enumerated per query row (up to 10^n sub-rows; a certificate may list as many).
MAX_ENUMERATED = 3
#: ... and the search enumerates the strongest two of them: a third multiplies a row's sub-rows by
#: ten, and the keys that matter are the first two (qwen87: the same leaves, 116 s -> 88 s a proof).
ENUMERATED = 2
#: Slices of each sub-row's box for the MLPs after an inner attention (`propagate.mlp_block`).
MLP_PIECES = 16


@dataclass
class SubRows:
    """Query rows of an inner layer, split by the tokens at their enumerated positions."""

    pos: np.ndarray  # [S] position of the row
    tok: np.ndarray  # [S] its token
    fixed_pos: np.ndarray  # [S, MAX_ENUMERATED] enumerated positions (-1: unused)
    fixed_tok: np.ndarray  # [S, MAX_ENUMERATED] their tokens
    box: Interval  # [S, d] residual after the block (and any MLPs after it)
    normed: Interval | None = None  # [S, d] the next attention's norm of `box`

    def cases(self, layout: StepLayout) -> Cases:
        """Each sub-row's case: its own token and its enumerated tokens fixed."""
        pos = np.concatenate([self.pos[:, None], self.fixed_pos], 1)
        tok = np.concatenate([self.tok[:, None], self.fixed_tok], 1)
        return layout.with_tokens(Cases.everything(len(self.pos)), pos, tok)

    def hull(self, layout: StepLayout, box: Interval | None = None) -> Interval:
        """The lattice [1, P, V, d]: per (position, token), the hull of its sub-rows' boxes
        (`box`, default the residual)."""
        box = self.box if box is None else box
        P, V, d = layout.n_pos, layout.vocab, box.shape[-1]
        lo, hi = np.full((P, V, d), np.inf), np.full((P, V, d), -np.inf)
        np.minimum.at(lo, (self.pos, self.tok), box.lo)
        np.maximum.at(hi, (self.pos, self.tok), box.hi)
        empty = lo > hi  # no sub-row: a token that cannot sit there
        return Interval(np.where(empty, 0.0, lo)[None], np.where(empty, 0.0, hi)[None])


@dataclass
class Inner:
    """The state before the last attention: the lattice, the query position's sub-rows
    (None when no attention layer precedes the last) and the certificate record."""

    lattice: Interval  # [1, P, V, d]
    keys: Interval | None  # [1, P, V, d] the last attention's norm of the lattice, as a hull of normed sub-rows
    query: SubRows | None
    record: list  # per inner attention layer: {"enumerate": [[p, ...] per row], "lam": [...]}


def last_attention(spec) -> int:
    return max(i for i, b in enumerate(spec.blocks) if isinstance(b.layer, Attention))


def _reach(s: Interval, live: np.ndarray) -> np.ndarray:
    """[Q, P]: how close each key position's score may come to the row's best key (the best
    case over heads); 0 for a position that may hold the maximum."""
    best = np.where(live, s.lo, -np.inf).max((-2, -1))  # [Q, H]
    top = np.where(live, s.hi, -np.inf).max(-1)  # [Q, H, P]
    return (top - best[..., None]).max(1)


def dominant(x: Interval, block, rows: Rows, layout: StepLayout, ctx: Ctx) -> list[tuple[int, ...]]:
    """Per query row, the digit positions (other than its own) whose keys may carry a weight
    within e^-DOMINANT_GAP of the best key's in some head, strongest first, the ENUMERATED
    strongest of them; () when there are more than MAX_ENUMERATED (diffuse attention:
    enumeration would not pay)."""
    reach = _reach(*head_inputs(x, block, rows, x[rows.case, rows.pos, rows.tok], layout, ctx)[:2])
    digit = np.array([sl.kind != "fixed" for sl in layout.slots])
    out = []
    for q in range(len(rows)):
        cand = [p for p in np.argsort(-reach[q], kind="stable")
                if digit[p] and p != rows.pos[q] and reach[q, p] >= -DOMINANT_GAP]
        out.append(tuple(int(p) for p in cand[:ENUMERATED]) if len(cand) <= MAX_ENUMERATED else ())
    return out


def expand(layout: StepLayout, pos: np.ndarray, tok: np.ndarray, enum: list) -> SubRows:
    """One sub-row per combination of tokens at each row's enumerated positions, keeping only
    the combinations some input has."""
    rp, rt, fp, ft = [], [], [], []
    for p, t, ps in zip(pos, tok, enum):
        options = [np.flatnonzero(layout.valid[q]) for q in ps]
        for combo in itertools.product(*options):
            rp.append(p)
            rt.append(t)
            fp.append(list(ps) + [-1] * (MAX_ENUMERATED - len(ps)))
            ft.append(list(combo) + [-1] * (MAX_ENUMERATED - len(ps)))
    sub = SubRows(np.array(rp, np.int64), np.array(rt, np.int64), np.array(fp, np.int64).reshape(-1, MAX_ENUMERATED),
                  np.array(ft, np.int64).reshape(-1, MAX_ENUMERATED), box=None)
    keep = count_paths(sub.cases(layout)) > 0
    return SubRows(sub.pos[keep], sub.tok[keep], sub.fixed_pos[keep], sub.fixed_tok[keep], box=None)


def _read_enum(given: dict, n_rows: int, layout: StepLayout) -> list[tuple[int, ...]]:
    """The certificate's enumeration choice, validated (ValueError: malformed)."""
    enum = given["enumerate"]
    if not isinstance(enum, list) or len(enum) != n_rows:
        raise ValueError(f"an inner layer lists {len(enum) if isinstance(enum, list) else '?'} rows, expected {n_rows}")
    out = []
    for ps in enum:
        ps = tuple(int(p) for p in ps)
        if len(ps) > MAX_ENUMERATED or len(set(ps)) != len(ps) or \
                any(not 0 <= p < layout.n_pos or layout.slots[p].kind == "fixed" for p in ps):
            raise ValueError(f"bad enumerated positions {list(ps)}")
        out.append(ps)
    return out


def bound_inner(layout: StepLayout, ctx: Ctx, record: list | None = None) -> Inner:
    """Bound every block before the last attention, for every input of the step. With
    `record` (a certificate's), re-verify its bounds instead of searching.

    Search runs twice: first with no enumeration (cheap), to see which key positions the
    last attention can attend to; then enumerating the last inner layer's rows at those
    positions and at the query position only (the other keys carry no weight worth it)."""
    spec = ctx.mw.spec
    last = last_attention(spec)
    n_inner = sum(isinstance(b.layer, Attention) for b in spec.blocks[:last])
    if record is not None:
        if not isinstance(record, list) or len(record) != n_inner or not all(isinstance(r, dict) for r in record):
            raise ValueError(f"expected {n_inner} inner attention records")
        return _bound(layout, ctx, lambda i, x, block, rows: _read_enum(record[i], len(rows), layout),
                      [np.asarray(r["lam"], dtype=np.float64) for r in record])
    if n_inner == 0:
        return _bound(layout, ctx, None, None)
    key = ("inner", layout.k)  # the quick counterexample pass and the search both need it
    if key not in ctx.memo:
        ctx.memo[key] = _search_inner(layout, ctx, spec, last, n_inner)
    return ctx.memo[key]


def _search_inner(layout: StepLayout, ctx: Ctx, spec, last: int, n_inner: int) -> Inner:
    plain = _bound(layout, ctx, lambda i, x, block, rows: [()] * len(rows), None)
    targets = set(attended(plain, spec.blocks[last], layout, ctx)) | {layout.t}

    def choose(i, x, block, rows):
        enum = dominant(x, block, rows, layout, ctx)
        if i == n_inner - 1:
            enum = [e if p in targets else () for e, p in zip(enum, rows.pos)]
        return enum
    return _bound(layout, ctx, choose, None)


def attended(inner: Inner, block, layout: StepLayout, ctx: Ctx) -> list[int]:
    """Key positions the last attention may weigh within e^-DOMINANT_GAP of its best key,
    at the query position, for any query token (bounds from `inner`'s lattice)."""
    tok = np.flatnonzero(layout.valid[layout.t])
    rows = Rows(np.zeros(len(tok), np.int64), np.full(len(tok), layout.t), tok)
    qx = inner.lattice[rows.case, rows.pos, rows.tok]
    normed = None if inner.keys is None else (inner.keys, inner.keys[rows.case, rows.pos, rows.tok])
    reach = _reach(*head_inputs(inner.lattice, block, rows, qx, layout, ctx, normed)[:2])
    return [int(p) for p in np.flatnonzero((reach >= -DOMINANT_GAP).any(0))]


def _bound(layout: StepLayout, ctx: Ctx, choose, lams: list | None) -> Inner:
    """The inner blocks with enumeration `choose(layer, lattice, block, rows)` (search) or
    the recorded bounds `lams` (check)."""
    spec = ctx.mw.spec
    x = embed_lattice(layout, ctx)
    sub: SubRows | None = None
    record: list = []
    for block in spec.blocks[:last_attention(spec)]:
        if not isinstance(block.layer, Attention):
            if sub is None:
                x = mlp_block(x, block, ctx)
            else:
                sub.box = mlp_block(sub.box, block, ctx, MLP_PIECES)
            continue
        if sub is not None:
            x = sub.hull(layout)
        pos, tok = np.nonzero(layout.valid)
        enum = choose(len(record), x, block, Rows(np.zeros(len(pos), np.int64), pos, tok))
        sub = expand(layout, pos, tok, enum)
        if lams is None and not record:  # the first inner attention: its rows recur in every step
            out, lam = _first_attention(x, block, sub, layout, ctx)
        else:
            rows = Rows(np.zeros(len(sub.pos), np.int64), sub.pos, sub.tok)
            given = None if lams is None else lams[len(record)]
            hb = attention(x, block, rows, sub.cases(layout), layout, ctx, given, relaxed=True)
            out, lam = hb.out, hb.lam
        sub.box = after_attention(out, x[0, sub.pos, sub.tok], block.layer, ctx)
        record.append({"enumerate": [list(e) for e in enum], "lam": lam.reshape(-1).tolist()})
    if sub is None:
        return Inner(x, None, None, record)
    # norm each sub-row before taking hulls: a hull of boxes forgets which coordinates move
    # together, and the norm divides by all of them
    sub.normed = norm(sub.box, spec.blocks[last_attention(spec)].norm, ctx)
    at_t = sub.pos == layout.t
    query = SubRows(sub.pos[at_t], sub.tok[at_t], sub.fixed_pos[at_t], sub.fixed_tok[at_t], sub.box[at_t],
                    sub.normed[at_t])
    return Inner(sub.hull(layout), sub.hull(layout, sub.normed), query, record)


def _first_attention(x: Interval, block, sub: SubRows, layout: StepLayout, ctx: Ctx) -> tuple[Interval, np.ndarray]:
    """The first inner attention's head outputs [S, H * vd] and bounds [S, H, vd, 2] per sub-row,
    each sub-row (position, token, enumerated tokens) bounded once per proof (`Ctx.memo`). Why
    that holds: before the first attention nothing depends on the step (the lattice is the
    embedding's), and a causal row at position p reads keys 0..p only, which every later step
    holds alike; a later step's longer sequence adds only keys of weight exactly 0. Search only:
    the certificate records the bounds, and the checker re-verifies them step by step."""
    memo = ctx.memo.setdefault("first inner attention", {})
    keys = list(zip(sub.pos.tolist(), sub.tok.tolist(), map(tuple, sub.fixed_pos.tolist()),
                    map(tuple, sub.fixed_tok.tolist())))
    miss = np.array([i for i, key in enumerate(keys) if key not in memo], np.int64)
    if len(miss):
        rows = Rows(np.zeros(len(miss), np.int64), sub.pos[miss], sub.tok[miss])
        hb = attention(x, block, rows, sub.cases(layout).take(miss), layout, ctx, relaxed=True)
        for j, i in enumerate(miss.tolist()):
            memo[keys[i]] = (hb.out.lo[j], hb.out.hi[j], hb.lam[j])
    got = [memo[key] for key in keys]
    return Interval(np.stack([g[0] for g in got]), np.stack([g[1] for g in got])), np.stack([g[2] for g in got])


def query_residual(inner: Inner, layout: StepLayout, cases: Cases, query_token: np.ndarray):
    """Per case: (residual [C, d], normed [C, d]) at the query position, the hulls over the
    query position's sub-rows that hold the case's query token and are consistent with the
    case (each fixed group keeps a live transition). None when no inner attention layer
    precedes the last (the lattice box is all there is)."""
    q = inner.query
    if q is None:
        return None
    live, final = live_transitions(cases)  # [C, 10, 100, 2], [C, 2]
    subc = q.cases(layout)
    sm, sf = subc.mask, subc.final  # [S, 10, 100, 2], [S, 2]
    ok = (q.tok[None, :] == np.asarray(query_token)[:, None])  # [C, S]
    ok &= (final[:, None] & sf[None]).any(-1)
    for j in np.flatnonzero(~sm.all((0, 2, 3))):  # groups some sub-row constrains
        ok &= (live[:, None, j] & sm[None, :, j]).any((-2, -1))
    none = ~ok.any(1)  # an empty case: any box will do
    at = (0, layout.t, np.asarray(query_token))

    def hull(box: Interval, lattice: Interval) -> Interval:
        lo = np.where(ok[..., None], box.lo[None], np.inf).min(1)
        hi = np.where(ok[..., None], box.hi[None], -np.inf).max(1)
        return Interval(np.where(none[:, None], lattice[at].lo, lo), np.where(none[:, None], lattice[at].hi, hi))
    return hull(q.box, inner.lattice), hull(q.normed, inner.keys)
