"""The search: find a case split and bounds that prove every step, or a counterexample.

For each answer step: bound the root cases (`split.root_cases`) in one vectorised batch;
for each case that is not proven, run its worst-case paths (the Dinkelbach optima, concrete
inputs) through the compiled module and, if one is decoded wrongly, stop with `refuted`;
otherwise split it on a digit group and try its children, until a depth or time budget.
Cases still open are reported with how many inputs they hold. Everything found is written
into a certificate tree that `certificate.check` re-verifies without this module.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from ...compiler.decode import add, teacher_forced
from ...compiler.module import AdderModel
from ...compiler.spec import Attention
from ..checker.bounds import Rejected, Rules
from ..checker.paths import Positions
from ..checker.reals import FLOATS
from ..checker.table import not_applicable, read_positions, table
from .automaton import GROUPS, PAIRS, Cases, count_paths, path_of
from .layers import Ctx, Unsupported
from .layout import StepLayout
from .inner import bound_inner
from .intervals import decimal_down
from .pipeline import bound_cases, cuts_residual, quick_candidates
from .split import carry_children, children, root_cases

log = logging.getLogger(__name__)

#: How many times a case may be split on a digit group before it is left open.
MAX_SPLIT_DEPTH = 2
#: Cases bounded per vectorised batch (bounds memory).
BATCH = 256
#: Significant digits of the margin written in a leaf (rounded down: still a lower bound).
MARGIN_DIGITS = 4
#: Worst-case inputs run through the module per unproven case.
CANDIDATES_PER_CASE = 8
#: Worst-case inputs kept per step for training on (`adder train --until-proven`): the deepest failing cases'.
WEAK_INPUTS = 256


@dataclass
class StepSearch:
    """What the search found for one answer step."""

    step: int
    roots: list  # certificate nodes, one per root case (see certificate.py)
    inner: list = field(default_factory=list)  # the inner layers' record (see inner.py)
    open_inputs: float = 0.0  # inputs in cases left open
    open_regions: list = field(default_factory=list)  # labels of open cases (first few)
    certified_margin: float = np.inf  # smallest margin lower bound over proven leaves
    leaves: int = 0
    counterexample: tuple | None = None  # (a, b, printed sum)
    weak_inputs: list = field(default_factory=list)  # (a, b): worst-case inputs of cases whose bound failed, last first
    unsupported: str | None = None
    table: dict | None = None  # proven by the table rule (`checker/table.py`): {"heads": [key positions per head]}
    table_note: str = ""  # what the table rule found where it applied but did not decide the step
    residual_cut: bool = False  # the bisection trees cut the residual after the attention (`pipeline.cuts_residual`)
    seconds: float = 0.0
    budget_ran_out: bool = False  # the deadline left cases unbounded (not a property of the model)

    def record(self) -> dict:
        """The step as a certificate writes it (`certificate.py`)."""
        how = {"table": self.table} if self.table else {"cut": "residual" if self.residual_cut else "heads"}
        return {"step": self.step, "inner": self.inner, "roots": self.roots, **how}

    @property
    def proven(self) -> bool:
        return self.counterexample is None and self.unsupported is None and self.open_inputs == 0 and \
            not self.open_regions


def n_attention(model: AdderModel) -> int:
    return sum(isinstance(b.layer, Attention) for b in model.spec.blocks)


def branch_order(layout: StepLayout) -> list[int]:
    """Groups to split on, nearest first: the target digit's group, then the groups below it
    (whose carries reach it), then the ones above."""
    j = min(layout.target_group, GROUPS - 1)
    return [j] + list(range(j - 1, -1, -1)) + list(range(j + 1, GROUPS))


def next_split(case: Cases, order: list[int], depth: int) -> tuple[str, int] | None:
    """How to split a case that is not proven: along `order`, the first group whose carry in
    is still free (two children; only the first MAX_SPLIT_DEPTH groups), else whose digit
    pair is (one child per pair, up to MAX_SPLIT_DEPTH such splits). None: leave it open."""
    for n, g in enumerate(order):
        if n < MAX_SPLIT_DEPTH and 1 <= g < GROUPS and case.free_carries(g)[0].sum() > 1:
            return "carry", g
        if depth < MAX_SPLIT_DEPTH and case.free_pairs(g)[0].sum() > 1:
            return "pair", g
    return None


def _refute(model: AdderModel, step: int, pairs: list[tuple[int, int]]) -> tuple | None:
    """Run candidate inputs; return (a, b, printed) for one the generic decoder gets wrong."""
    if not pairs:
        return None
    pairs = list(dict.fromkeys(pairs))
    a = torch.tensor([p[0] for p in pairs], dtype=torch.long)
    b = torch.tensor([p[1] for p in pairs], dtype=torch.long)
    checked = teacher_forced(model, a, b)
    fmt = model.spec.format
    wrong = (checked.pred[:, step] != fmt.answer(a, b)[:, step]).nonzero().flatten().tolist()
    for i in wrong[:4]:
        x, y = pairs[i]
        printed = add(model, x, y)[0]
        if printed != x + y:
            return (x, y, printed)
    return None


#: What the bound-free probe runs (`probe_refute`), in this order, and how it is seeded.
PROBE_SUITES, PROBE_SEED = ("adderboard", "carry", "chains"), 0
#: How a refutation by the probe is credited in the report.
PROBE_FOUND_BY = f"the bound-free probe (official cases, carry patterns and chains, seed {PROBE_SEED})"
#: Cases per forward pass of the probe.
PROBE_CHUNK = 8192


def probe_refute(model: AdderModel) -> tuple | None:
    """Bound-free counterexample search, for a model the bounds cannot read (an operation without a
    rule): the official cases, every carry pattern once and every carry chain (seed PROBE_SEED), run
    through the module under teacher forcing. The first case with a wrong answer digit that greedy
    decoding confirms: (a, b, printed, step), else None. Sound as any refutation is: the module itself
    printed the wrong sum; it proves nothing when it finds none."""
    from ..cases import SuiteOptions, get_suite

    fmt, options = model.spec.format, SuiteOptions(k=1)
    with torch.no_grad():
        for name in PROBE_SUITES:
            for a, b in get_suite(name).chunks(PROBE_SEED, PROBE_CHUNK, options):
                wrong = teacher_forced(model, a, b).pred != fmt.answer(a, b)
                for i in wrong.any(1).nonzero().flatten().tolist()[:4]:
                    x, y = int(a[i]), int(b[i])
                    printed = add(model, x, y)[0]
                    if printed != x + y:
                        return (x, y, printed, int(wrong[i].nonzero()[0]))
    return None


def quick_refute(model: AdderModel, layout: StepLayout, ctx: Ctx) -> tuple | None:
    """Cheap counterexample search for one step, at any depth: the last attention layer's
    worst-case paths per root case (inner layers bounded once for the step), run through the
    module. Deep models are tried this way on every step before any case-by-case bounding."""
    roots = root_cases(layout)
    try:
        inner = bound_inner(layout, ctx)
        quick = quick_candidates(layout, roots.cases, roots.query_token, ctx, inner)
    except Unsupported:
        return None
    return _refute(model, layout.k, [p for c in quick for p in c[:CANDIDATES_PER_CASE]])


def point_bound(model: AdderModel, ctx: Ctx, step: int, a: int, b: int) -> float:
    """The margin lower bound of answer step `step` on the single input a + b: its case holds
    that one path (every digit and carry fixed), so what is left of the bound's width is
    rounding, not the spread of inputs."""
    fmt = model.spec.format
    layout = StepLayout(fmt, len(model.spec.vocab), step)
    pairs, carries = path_of(int(a), int(b))
    mask = np.zeros((1, GROUPS, PAIRS, 2), bool)
    mask[0, np.arange(GROUPS), pairs, carries[:GROUPS]] = True
    final = np.zeros((1, 2), bool)
    final[0, carries[GROUPS]] = True
    query = layout.tokens_of(pairs[None], carries[None])[:, layout.t]
    target = fmt.answer(torch.tensor([int(a)]), torch.tensor([int(b)]))[0, step].numpy()[None]
    bounds = bound_cases(layout, Cases(mask, final), query, target, ctx, bound_inner(layout, ctx),
                         splittable=np.zeros(1, bool))  # one input: no split is left, it gets every bisection
    return float(bounds.worst[0])


def _unsupported(res: StepSearch, why: str, pending: list) -> StepSearch:
    res.unsupported = why
    for box, i, *_ in pending:
        box[i] = {"open": True}
    res.open_inputs = float("nan")
    return res


def _out_of_budget(res: StepSearch, layout: StepLayout, pending: list) -> StepSearch:
    """Mark every case not yet bounded open, because the deadline passed."""
    res.budget_ran_out = True
    for box, i, cases, *_rest, label in pending:
        box[i] = {"open": True}
        res.open_inputs += float(count_paths(cases)[0])
        if len(res.open_regions) < 20:
            res.open_regions.append(f"step {layout.k}: {label} (not reached: the budget ran out)")
    return res


def table_step(model: AdderModel, k: int, ctx: Ctx) -> tuple[StepSearch | None, str]:
    """Step k by the table rule (`checker/table.py`), where every head reads one to three keys
    in float32: (proven step, "") if every row of the table has a positive margin bound, (refuted
    step, "") if a row's input is printed wrongly; (None, what the rule found, or "") where it
    does not apply or decides nothing (the split search then runs). The rule's code is the
    checker's own: a table step has nothing to search but the key positions, and the
    certificate records them."""
    t0 = time.perf_counter()
    dtype = str(model.dtype).replace("torch.", "")
    if dtype not in FLOATS or ctx.ar.name != dtype:  # the rule is about the module's own arithmetic
        return None, ""
    rules = Rules(model, FLOATS[dtype])
    if not_applicable(rules):
        return None, ""
    pos = Positions(model.spec.format, k)
    reading, _ = read_positions(rules, pos)
    if reading is None:
        return None, ""
    try:
        t = table(rules, pos, reading)
    except Rejected as e:
        return None, str(e)
    res = StepSearch(step=k, roots=[], seconds=time.perf_counter() - t0)
    if (t.margin > 0).all():
        res.table, res.leaves, res.certified_margin = {"heads": reading.heads}, len(t.margin), float(t.margin.min())
        return res, ""
    worst = np.argsort(t.margin)[:CANDIDATES_PER_CASE * 4]
    found = _refute(model, k, [tuple(int(v) for v in t.example[i]) for i in worst])
    if found:
        res.counterexample = found
        return res, ""
    a, b = (int(v) for v in t.example[worst[0]])
    return None, (f"step {k}: the table rule leaves {int((t.margin <= 0).sum()):,} of {len(t.margin):,} rows open "
                  f"(margin bound {t.margin[worst[0]]:.3g} at {a} + {b}, which the module adds correctly)")


def search_step(model: AdderModel, layout: StepLayout, ctx: Ctx, deadline: float,
                progress: Callable[[int, str], None] | None = None, phase: str = "") -> StepSearch:
    """Bound the cases of one step, splitting the ones not proven, until proven, refuted, at the
    deepest split, or past `deadline`. `progress(n, phase)` hears of each batch of n cases bounded.
    A step the table rule decides (`table_step`) is not searched."""
    tabled, note = table_step(model, layout.k, ctx)
    if tabled is not None:
        if progress:
            progress(0, f"step {layout.k}{phase}: decided by the table rule")
        return tabled
    res = _split_search(model, layout, ctx, deadline, progress, phase)
    if note and not res.proven:  # what the table rule found, first
        res.table_note = note
        res.open_regions.insert(0, note)
    return res


def _split_search(model: AdderModel, layout: StepLayout, ctx: Ctx, deadline: float,
                  progress: Callable[[int, str], None] | None, phase: str) -> StepSearch:
    """The split search of one step (`search_step`)."""
    t0 = time.perf_counter()
    roots = root_cases(layout)
    res = StepSearch(step=layout.k, roots=[None] * len(roots.cases), residual_cut=cuts_residual(ctx))
    # pending: (container, index, case row, query token, target, depth, label)
    pending = [(res.roots, i, roots.cases.take([i]), roots.query_token[i], roots.target[i], 0, roots.labels[i])
               for i in range(len(roots.cases))]
    order = branch_order(layout)
    if time.perf_counter() > deadline:
        return _out_of_budget(res, layout, pending)
    try:
        inner = bound_inner(layout, ctx)
    except Unsupported as e:
        return _unsupported(res, str(e), pending)
    res.inner = inner.record
    while pending:
        if time.perf_counter() > deadline:
            _out_of_budget(res, layout, pending)
            break
        batch, pending = pending[:BATCH], pending[BATCH:]
        cases = Cases(np.concatenate([p[2].mask for p in batch]), np.concatenate([p[2].final for p in batch]))
        counts = count_paths(cases)
        try:
            splittable = np.array([next_split(p[2], order, p[5]) is not None for p in batch])
            bounds = bound_cases(layout, cases, np.array([p[3] for p in batch]), np.array([p[4] for p in batch]), ctx,
                                 inner, splittable=splittable, residual_cut=res.residual_cut)
        except Unsupported as e:
            return _unsupported(res, str(e), batch + pending)
        if progress:
            progress(len(batch), f"step {layout.k}{phase}, cases bounded")
        failing = []
        for r, (box, i, c, q, y, depth, label) in enumerate(batch):
            if counts[r] == 0:
                box[i] = {"empty": True}
            elif bounds.ok[r]:
                box[i] = {"leaf": {"lam": bounds.lams[r].tolist(), "tree": bounds.trees[r],
                                   "margin": float(decimal_down(bounds.worst[r], MARGIN_DIGITS))}}
                res.leaves += 1
                res.certified_margin = min(res.certified_margin, float(bounds.worst[r]))
            else:
                failing.append(r)
        cands = [pair for r in failing for pair in bounds.candidates[r][:CANDIDATES_PER_CASE]]
        found = _refute(model, layout.k, cands)
        res.weak_inputs = ([tuple(int(v) for v in pair) for pair in cands[::-1]] + res.weak_inputs)[:WEAK_INPUTS]
        if found:
            res.counterexample = found
            for box, i, *_ in [batch[r] for r in failing] + pending:
                box[i] = {"open": True}
            break
        for r in failing:
            box, i, c, q, y, depth, label = batch[r]
            how = next_split(c, order, depth)
            if how is None:
                box[i] = {"open": True}
                res.open_inputs += float(counts[r])
                if len(res.open_regions) < 20:
                    res.open_regions.append(f"step {layout.k}: {label} (margin bound {bounds.worst[r]:.3g})")
                continue
            kind, group = how
            if kind == "carry":
                kids = carry_children(c, 0, group)
                node = {"carry": group, "children": [None, None]}
                pending += [(node["children"], n, kids.take([n]), q, y, depth, f"{label} c{group}={n}")
                            for n in range(2)]
            else:
                kids, pairs = children(c, 0, group)
                node = {"split": group, "children": [None] * len(pairs)}
                pending += [(node["children"], n, kids.take([n]), q, y, depth + 1, f"{label} pair{group}={int(p):02d}")
                            for n, p in enumerate(pairs)]
            box[i] = node
    res.seconds = time.perf_counter() - t0
    return res
