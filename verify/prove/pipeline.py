"""One answer step, all blocks, a batch of cases: the bound of each case's margin.

`bound_cases` is the whole argument for a batch of cases of one step: the embedding
lattice, every block in order (inner attention layers bounded at every query row, MLPs box
by box), the last attention at the query position, then bisection of its output box until
the target digit's margin bound is positive. In search mode it also returns the worst-case
paths that Dinkelbach found (counterexample candidates); in check mode (`given`) it only
re-verifies the recorded bounds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ...compiler.spec import Attention
from .automaton import Cases, path_addends
from .intervals import Interval
from .layers import Ctx
from .layout import StepLayout
from .propagate import Rows, after_attention, attention, bisect_margins, embed_lattice, mlp_block


@dataclass
class Given:
    """What a certificate records for each case: the Dinkelbach bounds of every attention
    block (inner blocks: one array over the case's query rows) and the bisection tree."""

    lams: list  # per attention block: array [rows, H, vd, 2] for this batch
    trees: list


@dataclass
class Bounds:
    ok: np.ndarray  # [C] margin proven positive
    worst: np.ndarray  # [C] smallest margin lower bound over the case's boxes
    lams: list = field(default_factory=list)  # per attention block: [C, rows_per_case, H, vd, 2]
    trees: list = field(default_factory=list)
    candidates: list = field(default_factory=list)  # per case: list of (a, b) worst-case inputs


def _last_attention(spec) -> int:
    return max(i for i, b in enumerate(spec.blocks) if isinstance(b.layer, Attention))


def bound_cases(layout: StepLayout, cases: Cases, query_token: np.ndarray, target: np.ndarray, ctx: Ctx,
                given: Given | None = None, shared_inner: bool = False) -> Bounds:
    """Bound every case of the batch. `shared_inner`: bound inner attention layers once over
    all inputs of the step (one lattice for every case: looser, but cheap)."""
    spec = ctx.mw.spec
    C = len(cases)
    inner_cases = Cases.everything(1) if shared_inner else cases
    Ci = len(inner_cases)
    last = _last_attention(spec)
    x = embed_lattice(layout, ctx)  # [1, P, V, d]
    lams = []
    att_i = 0
    for block in spec.blocks[:last]:
        if not isinstance(block.layer, Attention):
            x = mlp_block(x, block, ctx)
            continue
        # an inner attention layer: every (case, position, token) is a query row
        p_idx, v_idx = np.nonzero(layout.valid)
        per = len(p_idx)
        rows = Rows(np.repeat(np.arange(Ci), per), np.tile(p_idx, Ci), np.tile(v_idx, Ci))
        row_cases = inner_cases.take(rows.case)
        digit = np.array([layout.slots[p].kind != "fixed" for p in rows.pos])
        if digit.any():
            row_cases = _fix_row_tokens(layout, row_cases, rows, digit)
        g = None if given is None else np.asarray(given.lams[att_i], dtype=np.float64)
        hb = attention(x, block, rows, row_cases, layout, ctx, g)
        lams.append(hb.lam.reshape(Ci, per, *hb.lam.shape[1:]))
        new = after_attention(hb.out, hb.residual, block.layer, ctx)  # [Ci * per, d]
        P, V, d = layout.n_pos, layout.vocab, new.shape[-1]
        lo = np.zeros((Ci, P, V, d))
        hi = np.zeros((Ci, P, V, d))
        lo[rows.case, rows.pos, rows.tok] = new.lo
        hi[rows.case, rows.pos, rows.tok] = new.hi
        x = Interval(lo, hi)
        att_i += 1
    # the last attention, at the query position only
    rows = Rows(np.arange(C), np.full(C, layout.t), np.asarray(query_token))
    g = None if given is None else np.asarray(given.lams[att_i], dtype=np.float64).reshape(C, -1)
    hb = attention(x, spec.blocks[last], rows, cases, layout, ctx, g)
    lams.append(hb.lam.reshape(C, 1, *hb.lam.shape[1:]))
    ok, worst, trees = bisect_margins(hb.out, hb.residual, spec.blocks[last].layer, spec.blocks[last + 1:],
                                      np.asarray(target), ctx, None if given is None else given.trees)
    candidates: list = [[] for _ in range(C)]
    if hb.paths is not None:
        pairs, _, owner = hb.paths
        a, b = path_addends(pairs)
        for o, x_, y_ in zip(owner, a, b):
            candidates[int(o)].append((x_, y_))
    return Bounds(ok=ok, worst=worst, lams=lams, trees=trees, candidates=candidates)


def quick_candidates(layout: StepLayout, cases: Cases, query_token: np.ndarray, target: np.ndarray,
                     ctx: Ctx) -> list:
    """Worst-case inputs of the last attention layer, per case, with inner layers bounded once
    for the whole step (`shared_inner`): cheap at any depth. The paths that maximise and
    minimise each head output are concrete inputs, often exactly where a model breaks (the
    largest or smallest operand sum a case allows); the search runs them first."""
    return bound_cases(layout, cases, query_token, target, ctx, shared_inner=True).candidates


def _fix_row_tokens(layout: StepLayout, row_cases: Cases, rows: Rows, digit: np.ndarray) -> Cases:
    """Constrain each digit-slot query row to its own token."""
    mask, final = row_cases.mask.copy(), row_cases.final.copy()
    for p in np.unique(rows.pos[digit]):
        sel = np.flatnonzero(rows.pos == p)
        fixed = layout.fix_token(Cases(mask[sel], final[sel]), int(p), rows.tok[sel])
        mask[sel], final[sel] = fixed.mask, fixed.final
    return Cases(mask, final)
