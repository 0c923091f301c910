"""Re-establish a proof certificate from the model's tensors, without the search's code.

For every answer step k the certificate lists one tree per root case (`paths.roots`). The
checker regenerates the cases from the split rule while it walks the trees, so the leaves
it meets cover every input by construction; then, for each leaf, it re-proves two things:

1. **The attention output box.** The leaf records lam [H, vd, 2]: for each head h and value
   coordinate c, an upper bound of the head output R and of -R over the leaf's inputs.
   R = sum_j e_j v_j / sum_j e_j <= lam holds for every input and every e, v in their boxes
   iff max over the leaf's paths of sum_j e_j (v_j - lam) <= 0 (all e_j >= 0, one > 0): a
   max-plus programme over the carry automaton (`paths.Positions.max_sum`), its float64
   rounding bounded once per path. The float module's output lies within [-lam1 - slack, lam0 + slack].
2. **The margin over that box.** The leaf's bisection tree cuts a box at midpoints; on each
   final box the margin bound must be > 0 (the argmax breaks ties by index). Where it is not,
   the checker may bisect further on its own (`EXTRA_BISECTIONS`): any partition is sound.
   The box is the head outputs' (`bounds.tail_margin`), or, where the step says
   "cut": "residual", the residual after the attention, x + O out (`bounds.after_attention`,
   met with the joint rule's box for several heads), of which the margin is a function alone
   (`bounds.residual_margin`).

A leaf that fails either, an "open" node, a tree that does not match the split rule, other
weights (sha256) or another arithmetic: the check fails, naming the first place.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ...compiler.checkpoint import weights_hash
from ...compiler.module import AdderModel
from ...compiler.spec import Attention
from .bounds import (NotCheckable, Rejected, Rules, after_attention, heads, last_attention, output_box,
                     ratio_bounds_hold, residual_margin, tail_margin, unsupported)
from .joint import relational, residual_box
from .inner import Before, before_last
from .paths import GROUPS, Positions, carry_children, has_input, pair_children, roots
from .reals import FLOATS, Box
from .table import check_table_step

#: Leaves whose attention inequalities are re-verified in one vectorised batch.
BATCH = 64
#: Further halvings of a final box that fails, along its widest side, before the leaf fails.
EXTRA_BISECTIONS = 4


@dataclass
class Result:
    passed: bool
    reason: str
    leaves: int = 0
    ranges: dict = field(default_factory=dict)  # library function -> (lo, hi, grid) of the inputs met
    seconds: float = 0.0
    boxes: int = 0  # margin boxes bounded
    halvings: int = 0  # of them, made by the checker itself (beyond the certificate's trees)
    points: dict = field(default_factory=dict)  # library function -> every input it meets, where listed


@dataclass
class Leaf:
    mask: np.ndarray  # [10, 100, 2]
    final: np.ndarray  # [2]
    query_token: int
    target: int
    lam: object
    tree: object
    label: str


def check(cert: dict, model: AdderModel, progress=None, deadline: float | None = None) -> Result:
    """Re-verify `cert` against `model`. Raises NotCheckable for a model outside this checker's
    rules, TimeoutError("the certificate check") past `deadline` (a `time.perf_counter()` value)."""
    t0 = time.perf_counter()
    missing = unsupported(model.spec)
    if missing:
        raise NotCheckable("; ".join(missing))
    dtype = str(model.dtype).replace("torch.", "")
    if cert.get("weights_sha256") != weights_hash(model):
        return Result(False, "the certificate is for other weights (sha256 differs)")
    if cert.get("dtype") != dtype or cert.get("arithmetic") != dtype or dtype not in FLOATS:
        return Result(False, f"the certificate is for {cert.get('arithmetic')} arithmetic of a {cert.get('dtype')} "
                             f"model; this model is {dtype}")
    rules = Rules(model.cpu(), FLOATS[dtype])
    fmt = model.spec.format
    steps = cert.get("steps")
    if not isinstance(steps, list) or [s.get("step") if isinstance(s, dict) else None for s in steps] \
            != list(range(fmt.out_digits)):
        return Result(False, f"the certificate must cover answer steps 0..{fmt.out_digits - 1} in order")
    tally = Tally()
    try:
        with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
            for st in steps:
                check_step(rules, fmt, st, progress, deadline, tally)
    except Rejected as e:
        return Result(False, str(e), tally.leaves, rules.ranges, time.perf_counter() - t0, tally.boxes, tally.halvings,
                      rules.points)
    own = f", {tally.halvings:,} of them halved by the checker itself" if tally.halvings else ""
    what = [f"{tally.leaves:,} leaves and {tally.boxes:,} margin boxes{own}"] if tally.leaves or not tally.rows else []
    what += [f"{tally.rows:,} table rows"] if tally.rows else []
    return Result(True, f"{' and '.join(what)} re-verified by the independent checker (verify/checker: its own case "
                        "split, bound rules and exp from arb tables)", tally.leaves + tally.rows, rules.ranges,
                  time.perf_counter() - t0, tally.boxes, tally.halvings, rules.points)


@dataclass
class Tally:
    leaves: int = 0
    rows: int = 0  # table rows (steps proven by the table rule)
    boxes: int = 0
    halvings: int = 0


def check_step(rules: Rules, fmt, st: dict, progress=None, deadline: float | None = None,
               tally: Tally | None = None) -> int:
    """Re-verify one step: the layers before the last attention (their records), then every leaf.
    Returns the number of leaves; raises Rejected."""
    tally = tally if tally is not None else Tally()
    k = st["step"]
    pos = Positions(fmt, k)
    if "table" in st:  # proven by the table rule: every row of the step's table re-evaluated
        n = check_table_step(rules, pos, st["table"])
        tally.rows += n
        if progress:
            progress(n, f"certificate check (independent checker), step {k}, table rows re-verified")
        return n
    residual_cut = _residual_cut(rules, st, k)
    rts = roots(pos)
    if not isinstance(st.get("roots"), list) or len(st["roots"]) != len(rts):
        raise Rejected(f"step {k}: expected {len(rts)} root cases")
    leaves: list[Leaf] = []
    for node, (mask, final, qt, target, label) in zip(st["roots"], rts):
        _walk(node, mask, final, qt, target, f"step {k}: {label}", leaves)
    before = before_last(rules, pos, st.get("inner", []), f"step {k}")
    leaves.sort(key=lambda leaf: leaf.query_token)  # one-layer models: a batch shares its query row
    for s in range(0, len(leaves), BATCH):
        if deadline is not None and time.perf_counter() > deadline:
            raise TimeoutError("the certificate check")
        batch = leaves[s:s + BATCH]
        _check_leaves(rules, pos, before, batch, tally, residual_cut)
        if progress:
            progress(len(batch), f"certificate check (independent checker), step {k}, leaves re-verified")
    tally.leaves += len(leaves)
    return len(leaves)


def _residual_cut(rules: Rules, st: dict, k: int) -> bool:
    """Whether step k's trees cut the residual after the attention (else its head outputs). A step
    that does not say (certificates before "cut") cut the residual only in one-layer relational models."""
    atts = [b.layer for b in rules.spec.blocks if isinstance(b.layer, Attention)]
    legacy = len(atts) == 1 and len(atts[0].o.weights) == 1 and relational(rules)
    cut = st.get("cut", "residual" if legacy else "heads")
    if cut not in ("heads", "residual"):
        raise Rejected(f"step {k}: malformed cut {cut!r} (expected \"heads\" or \"residual\")")
    return cut == "residual"


def _walk(node, mask, final, qt, target, label, leaves: list) -> None:
    """Collect the leaves of one case's tree, regenerating each child's case from the split rule."""
    if not isinstance(node, dict):
        raise Rejected(f"{label}: malformed node")
    if node.get("empty") is True:
        if has_input(mask, final):
            raise Rejected(f"{label}: marked empty but holds inputs")
    elif "split" in node:
        j, kids = node["split"], node.get("children")
        if type(j) is not int or not 0 <= j < GROUPS or not isinstance(kids, list):
            raise Rejected(f"{label}: malformed split")
        pairs = pair_children(mask, j)
        if len(kids) != len(pairs):
            raise Rejected(f"{label}: a split on group {j} must list {len(pairs)} children, not {len(kids)}")
        for child, (pair, m) in zip(kids, pairs):
            _walk(child, m, final, qt, target, f"{label} pair{j}={pair:02d}", leaves)
    elif "carry" in node:
        j, kids = node["carry"], node.get("children")
        if type(j) is not int or not 0 <= j < GROUPS or not isinstance(kids, list) or len(kids) != 2:
            raise Rejected(f"{label}: malformed carry split")
        for c, (child, m) in enumerate(zip(kids, carry_children(mask, j))):
            _walk(child, m, final, qt, target, f"{label} c{j}={c}", leaves)
    elif "leaf" in node and isinstance(node["leaf"], dict):
        leaves.append(Leaf(mask, final, qt, target, node["leaf"].get("lam"), node["leaf"].get("tree"), label))
    elif node.get("open") is True:
        raise Rejected(f"{label}: left open")
    else:
        raise Rejected(f"{label}: malformed node")


def _check_leaves(rules: Rules, pos: Positions, before: Before, batch: list[Leaf], tally: Tally,
                  residual_cut: bool) -> None:
    """Both checks of the module docstring, for a batch of leaves; `residual_cut`: the trees cut
    the residual after the attention, not the head outputs."""
    att = rules.spec.blocks[last_attention(rules.spec)].layer
    H, vd = att.n_heads, att.vd
    try:
        lam = np.array([np.asarray(leaf.lam, dtype=np.float64).reshape(H, vd, 2) for leaf in batch])
    except (TypeError, ValueError):
        raise Rejected(f"{batch[0].label} (or a leaf beside it): malformed lam (expected {H} x {vd} x 2 numbers)") from None
    masks, finals = np.array([leaf.mask for leaf in batch]), np.array([leaf.final for leaf in batch])
    qt = np.array([leaf.query_token for leaf in batch])
    residual, normed = before.query_rows(pos, qt, masks, finals)
    # leaves with the same query box share their softmax weights: bound each distinct box once
    _, first, row = np.unique(np.concatenate([normed.lo, normed.hi], 1), axis=0, return_index=True, return_inverse=True)
    row = row.reshape(-1)
    hd = heads(rules, att, before.keys, normed[first], np.full(len(first), pos.t), pos)
    ok = ratio_bounds_hold(hd, row, lam, pos, masks, finals)
    if not ok.all():
        raise Rejected(f"{batch[int(np.argmin(ok))].label}: a recorded attention bound does not hold")
    out = output_box(hd, row, lam)
    targets = np.array([leaf.target for leaf in batch])
    if residual_cut:  # the trees cut the residual after the attention, bounded jointly where the rule applies
        box = residual_box(rules, hd.s[row], hd.v, hd.live[row], out, residual, pos, masks, finals) \
            if relational(rules) else after_attention(rules, out, residual)
        _check_boxes(batch, box, lambda b, idx: residual_margin(rules, b, targets[idx]), tally)
    else:  # the trees cut the head outputs
        _check_boxes(batch, out, lambda b, idx: tail_margin(rules, b, residual[idx], targets[idx]), tally)


def _check_boxes(batch: list[Leaf], box: Box, margin, tally: Tally) -> None:
    """The margin (`margin(boxes, leaf indices)`) on every final box of each leaf's bisection tree,
    and on the checker's own halvings."""
    pending = [(i, box.lo[i], box.hi[i], batch[i].tree, 0) for i in range(len(batch))]
    while pending:
        final, split = [], []
        for item in pending:
            (split if item[3] is not None else final).append(item)
        nxt = []
        if final:
            idx = np.array([f[0] for f in final])
            m = margin(Box(np.array([f[1] for f in final]), np.array([f[2] for f in final])), idx)
            tally.boxes += len(final)
            for (i, lo, hi, _, extra), ok in zip(final, m > 0):
                if ok:
                    continue
                tally.halvings += 1
                if extra >= EXTRA_BISECTIONS or not (np.isfinite(lo).all() and np.isfinite(hi).all()):
                    raise Rejected(f"{batch[i].label}: the margin is not positive on a box after the attention")
                nxt += _halves(i, lo, hi, int(np.argmax(hi - lo)), None, None, extra + 1)
        for i, lo, hi, node, extra in split:
            if not (isinstance(node, list) and len(node) == 3 and type(node[0]) is int and 0 <= node[0] < len(lo)):
                raise Rejected(f"{batch[i].label}: malformed bisection tree")
            nxt += _halves(i, lo, hi, node[0], node[1], node[2], extra)
        pending = nxt


def _halves(i, lo, hi, dim, left, right, extra):
    """The two halves of a box at the midpoint of side `dim` (they share the cut: a cover)."""
    mid = 0.5 * (lo[dim] + hi[dim])
    if not lo[dim] <= mid <= hi[dim]:
        raise Rejected("a bisection cut lies outside its box")
    hi_a, lo_b = hi.copy(), lo.copy()
    hi_a[dim], lo_b[dim] = mid, mid
    return [(i, lo, hi_a, left, extra), (i, lo_b, hi, right, extra)]
