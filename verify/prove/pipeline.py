"""One answer step, all blocks, a batch of cases: the bound of each case's margin.

`bound_cases` is the argument for a batch of cases of one step, given the blocks before
the last attention (`inner.py`, bounded once per step): the last attention at the query
position, then bisection of its output box until the target digit's margin bound is
positive. In search mode it also returns the worst-case paths that Dinkelbach found
(counterexample candidates); in check mode (`given`) it only re-verifies the recorded bounds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .automaton import Cases, path_addends
from .inner import Inner, last_attention, query_residual
from .layers import Ctx
from .layout import StepLayout
from .propagate import HeadBounds, Rows, after_attention, attention, bisect_margins, residual_margin, tail_margin


@dataclass
class Given:
    """What a certificate records for each case: the Dinkelbach bounds of the last attention
    block and the bisection tree of its output box."""

    lams: np.ndarray  # [C * H * vd * 2] for this batch
    trees: list


def cuts_residual(ctx: Ctx) -> bool:
    """Whether a step's bisection cuts the residual after the last attention (x + O out, of which
    the margin is a function alone) rather than the head outputs out: where O writes at most as
    many residual coordinates as the heads have outputs (H * vd), and always for the relational
    models (`layers.relational`), whose joint rule bounds that residual. Why: a head's outputs are
    often tied to each other (wonderfall27's two coordinates are one number and its negative), so
    their box is two-dimensional while what the margin reads, the one coordinate O writes, moves
    along one line: cut there, each halving halves what the margin sees (10,422 margin boxes a
    step instead of 2.3M). Where O spreads few outputs over many coordinates, a box of the
    residual holds points no input reaches, and the head outputs are cut instead."""
    if ctx.relational:
        return True
    spec = ctx.mw.spec
    att = spec.blocks[last_attention(spec)].layer
    reach = None  # which head outputs reach which residual coordinate, through O's chain of matrices
    for m in att.o.weights:
        w = np.abs(ctx.mw(m)) > 0
        reach = w if reach is None else (w.astype(np.int64) @ reach.astype(np.int64)) > 0
    return int(reach.any(1).sum()) <= att.n_heads * att.vd


@dataclass
class Bounds:
    ok: np.ndarray  # [C] margin proven positive
    worst: np.ndarray  # [C] smallest margin lower bound over the case's boxes
    lams: np.ndarray  # [C, H, vd, 2] the last attention's bounds
    trees: list = field(default_factory=list)
    candidates: list = field(default_factory=list)  # per case: list of (a, b) worst-case inputs


def bound_cases(layout: StepLayout, cases: Cases, query_token: np.ndarray, target: np.ndarray, ctx: Ctx,
                inner: Inner, given: Given | None = None, splittable: np.ndarray | None = None,
                residual_cut: bool | None = None) -> Bounds:
    """Bound every case of the batch, given the step's inner layers (`inner.bound_inner`).
    `splittable` [C]: cases the search can still split (their bisection may stop early).
    `residual_cut`: the trees cut the residual after the attention, not the head outputs
    (None: as `cuts_residual` decides)."""
    spec = ctx.mw.spec
    last = last_attention(spec)
    hb = last_attention_bounds(layout, cases, query_token, ctx, inner, given)
    att, later, target = spec.blocks[last].layer, spec.blocks[last + 1:], np.asarray(target)
    if residual_cut is None:
        residual_cut = cuts_residual(ctx)
    if residual_cut:  # bisect the residual after the attention
        with np.errstate(invalid="ignore"):  # an unbounded head box gives NaN here; the joint box stands in
            box = after_attention(hb.out, hb.residual, att, ctx)
            box = box.meet(hb.after) if hb.after is not None else box
        def tail(h, r): return residual_margin(h, later, target[r], ctx)
    else:  # bisect the head outputs
        box = hb.out
        def tail(out, r): return tail_margin(out, hb.residual[r], att, later, target[r], ctx)
    ok, worst, trees = bisect_margins(box, tail, None if given is None else given.trees,
                                      splittable=None if given is not None else splittable)
    return Bounds(ok=ok, worst=worst, lams=hb.lam, trees=trees, candidates=_candidates(hb, len(cases)))


def last_attention_bounds(layout: StepLayout, cases: Cases, query_token: np.ndarray, ctx: Ctx, inner: Inner,
                          given: Given | None = None, joint: bool = True) -> HeadBounds:
    """The last attention block at the query position of each case (`propagate.attention`), with
    the joint rule's residual box where several heads allow it (`layers.relational`) and `joint`
    asks for it."""
    C = len(cases)
    rows = Rows(np.zeros(C, np.int64), np.full(C, layout.t), np.asarray(query_token))
    g = None if given is None else np.asarray(given.lams, dtype=np.float64).reshape(C, -1)
    query = query_residual(inner, layout, cases, query_token)
    block = ctx.mw.spec.blocks[last_attention(ctx.mw.spec)]
    return attention(inner.lattice, block, rows, cases, layout, ctx, g, None if query is None else query[0],
                     normed=None if query is None else (inner.keys, query[1]), joint=joint and ctx.relational,
                     only_read=cuts_residual(ctx))


def _candidates(hb: HeadBounds, n: int) -> list:
    """Per case, the (a, b) of the paths Dinkelbach found maximising and minimising its head outputs."""
    candidates: list = [[] for _ in range(n)]
    if hb.paths is not None:
        pairs, _, owner = hb.paths
        a, b = path_addends(pairs)
        for o, x_, y_ in zip(owner, a, b):
            candidates[int(o)].append((x_, y_))
    return candidates


def quick_candidates(layout: StepLayout, cases: Cases, query_token: np.ndarray, ctx: Ctx, inner: Inner) -> list:
    """Worst-case inputs of the last attention layer, per case. The paths that maximise and
    minimise each head output are concrete inputs, often exactly where a model breaks (the
    largest or smallest operand sum a case allows); the search runs them first. No margin is
    bounded: only the attention's optima are wanted."""
    return _candidates(last_attention_bounds(layout, cases, query_token, ctx, inner, joint=False), len(cases))
