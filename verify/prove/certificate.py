"""Proof certificates: what a proof consists of, written down, and its independent check.

A certificate is JSON:

    {"format": "adder-proof-certificate", "version": 1,
     "weights_sha256": ..., "name": ..., "dtype": "float32", "arithmetic": "float32",
     "assumptions": [...],
     "steps": [{"step": k, "inner": [...], "cut": "residual", "roots": [node, ...]}, ...]}

where "inner" records the layers before the last attention (`inner.py`: per inner attention
layer, the positions enumerated at each query row and the Dinkelbach bounds of every
sub-row), bounded once per step, "cut" which box the leaves' bisection trees cut ("heads": the
last attention's head outputs, the default; "residual": the residual after it, x + O out), and

with one node per root case of each step (in `split.root_cases` order), each node one of

    {"empty": true}                       the case holds no input
    {"split": j, "children": [node...]}   one child per digit pair group j still allows
    {"carry": j, "children": [n0, n1]}    the carry into group j is 0, is 1
    {"leaf": {"lam": [...], "tree": T}}   Dinkelbach bounds of the last attention block
                                          and the bisection tree of the step's cut box
    {"open": true}                        not proven (the certificate is then not a proof)

`check` hands the certificate to the independent checker (`adder.verify.checker`: its own case
split, bound rules and arithmetic, nothing shared with the search), the trusted base of a
`proven` verdict. For models it does not handle yet (softmax1, LayerNorm)
`recheck` re-verifies it with the search's own rules in rigorous arithmetic, and says so: that
catches a changed weight (hash), number or tree, not a wrong rule.
"""

from __future__ import annotations

import gzip
import json
import lzma
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...compiler.checkpoint import weights_hash
from ...compiler.errors import AdderError
from ...compiler.files import write_whole
from ...compiler.module import AdderModel
from ...compiler.spec import Attention
from .. import checker as independent
from .automaton import GROUPS, Cases, count_paths, path_of
from .floatmodel import ARITHMETICS
from .intervals import decimal_down, decimal_up
from .layers import Ctx, Unsupported
from .inner import bound_inner
from .layout import StepLayout
from .pipeline import Given, bound_cases
from .split import carry_children, children, root_cases
from .weights import ModelWeights

FORMAT = "adder-proof-certificate"
VERSION = 2
#: Leaves re-checked per vectorised batch.
CHECK_BATCH = 512


class CertificateError(AdderError):
    """A certificate file is unreadable, malformed or for another model."""


@dataclass
class CheckResult:
    passed: bool
    reason: str
    leaves: int = 0
    steps_checked: list = field(default_factory=list)
    ranges: dict = field(default_factory=dict)  # library-function input ranges met (for libm)
    seconds: float = 0.0
    independent: bool = False  # re-established by `adder.verify.checker`, not by the search's rules
    points: dict = field(default_factory=dict)  # library function -> every input it meets (where the checker lists them)


def build(model: AdderModel, arithmetic: str, assumptions: list[str], steps: list[dict]) -> dict:
    return {"format": FORMAT, "version": VERSION, "weights_sha256": weights_hash(model),
            "name": model.spec.name, "dtype": str(model.dtype).replace("torch.", ""),
            "arithmetic": arithmetic, "assumptions": assumptions, "steps": steps}


#: Compressed certificates, by file suffix when written and by magic bytes when read: a big
#: proof's certificate is mostly structure and short numbers, which xz shrinks about 20-fold.
COMPRESSORS = {".xz": (lzma, b"\xfd7zXZ\x00"), ".gz": (gzip, b"\x1f\x8b")}


def write(cert: dict, path: Path) -> None:
    """Write `cert` as JSON; compressed when the name ends in .xz (xz's strongest preset: ~13%
    smaller than the default, measured on a 95,244-leaf certificate: 2.32 MB against 2.67 MB,
    24 s against 17 s) or .gz."""
    data = json.dumps(cert, separators=(",", ":")).encode()
    suffix = Path(path).suffix
    if suffix == ".xz":
        data = lzma.compress(data, preset=9 | lzma.PRESET_EXTREME)
    elif suffix in COMPRESSORS:
        data = COMPRESSORS[suffix][0].compress(data)
    write_whole(Path(path), data)


def read(path: Path) -> dict:
    try:
        data = Path(path).read_bytes()
        for codec, magic in COMPRESSORS.values():
            if data.startswith(magic):
                data = codec.decompress(data)
        cert = json.loads(data.decode())
    except FileNotFoundError:
        raise CertificateError(f"certificate {path} does not exist") from None
    except (OSError, EOFError, lzma.LZMAError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CertificateError(f"certificate {path} is not readable JSON ({type(e).__name__}); "
                               "write one with `adder prove TARGET --certificate FILE`") from None
    if not isinstance(cert, dict) or cert.get("format") != FORMAT:
        raise CertificateError(f"{path} is not an adder proof certificate")
    if cert.get("version") != VERSION:
        raise CertificateError(f"certificate version {cert.get('version')!r} is not supported (this adder reads {VERSION})")
    return cert


def _walk(node, cases: Cases, qtok, target, label: str, leaves: list, problems: list) -> None:
    """Collect the leaves under `node` (a certificate node for the single case `cases`)."""
    if not isinstance(node, dict):
        raise CertificateError(f"malformed certificate node at {label}")
    if node.get("empty"):
        if count_paths(cases)[0] != 0:
            problems.append(f"{label}: marked empty but holds inputs")
    elif "split" in node:
        group = node["split"]
        if not isinstance(group, int) or not 0 <= group < 10 or not isinstance(node.get("children"), list):
            raise CertificateError(f"malformed split at {label}")
        kids, pairs = children(cases, 0, group)
        if len(pairs) != len(node["children"]):
            problems.append(f"{label}: split on group {group} lists {len(node['children'])} children, "
                            f"the case allows {len(pairs)} pairs")
            return
        for n, (child, p) in enumerate(zip(node["children"], pairs)):
            _walk(child, kids.take([n]), qtok, target, f"{label} pair{group}={int(p):02d}", leaves, problems)
    elif "carry" in node:
        group = node["carry"]
        if not isinstance(group, int) or not 1 <= group < 10 or not isinstance(node.get("children"), list) \
                or len(node["children"]) != 2:
            raise CertificateError(f"malformed carry split at {label}")
        kids = carry_children(cases, 0, group)
        for c, child in enumerate(node["children"]):
            _walk(child, kids.take([c]), qtok, target, f"{label} c{group}={c}", leaves, problems)
    elif "leaf" in node:
        leaf = node["leaf"]
        if not isinstance(leaf, dict) or not isinstance(leaf.get("lam"), list):
            raise CertificateError(f"malformed leaf at {label}")
        leaves.append((cases, qtok, target, leaf, label))
    elif node.get("open"):
        problems.append(f"{label}: left open")
    else:
        raise CertificateError(f"malformed certificate node at {label}")


def leaf_of(cert: dict, fmt, vocab: int, step: int, a: int, b: int) -> dict | None:
    """The certificate node that covers input (a, b) at `step` (a leaf, or an open/empty node)."""
    layout = StepLayout(fmt, vocab, step)
    roots = root_cases(layout)
    pairs, carries = path_of(a, b)
    i = int(np.flatnonzero(roots.cases.contains(pairs, carries))[0])
    node, cases = cert["steps"][step]["roots"][i], roots.cases.take([i])
    while "split" in node or "carry" in node:
        if "carry" in node:
            n = int(carries[node["carry"]])
            node, cases = node["children"][n], carry_children(cases, 0, node["carry"]).take([n])
            continue
        kids, kid_pairs = children(cases, 0, node["split"])
        n = int(np.flatnonzero(kid_pairs == pairs[node["split"]])[0])
        node, cases = node["children"][n], kids.take([n])
    return node


def leaf_margins(cert: dict, fmt, vocab: int, step: int, pairs: np.ndarray, carries: np.ndarray) -> np.ndarray:
    """The certified margin bound of the leaf covering each input at `step` (NaN where the
    node is not a leaf), for many inputs at once: pairs [N, 10], carries [N, 11]."""
    roots = root_cases(StepLayout(fmt, vocab, step))
    inside = roots.cases.final[:, carries[:, GROUPS]]  # [R, N]
    for j in range(GROUPS):
        inside &= roots.cases.mask[:, j, pairs[:, j], carries[:, j]]
    root = inside.argmax(0)
    out = np.full(len(pairs), np.nan)

    def walk(node, cases: Cases, idx: np.ndarray) -> None:
        if not len(idx):
            return
        if "leaf" in node:
            out[idx] = node["leaf"]["margin"]
        elif "carry" in node:
            g = node["carry"]
            kids = carry_children(cases, 0, g)
            for c in (0, 1):
                walk(node["children"][c], kids.take([c]), idx[carries[idx, g] == c])
        elif "split" in node:
            g = node["split"]
            kids, kid_pairs = children(cases, 0, g)
            where = np.searchsorted(kid_pairs, pairs[idx, g])
            for n in np.unique(where):
                walk(node["children"][n], kids.take([n]), idx[where == n])

    for i, node in enumerate(cert["steps"][step]["roots"]):
        walk(node, roots.cases.take([i]), np.flatnonzero(inside.any(0) & (root == i)))
    return out


def check(cert: dict, model: AdderModel, progress=None, deadline: float | None = None) -> CheckResult:
    """Re-verify a certificate against a compiled model: by the independent checker
    (`adder.verify.checker`, which shares no bound rule with the search) where it handles the
    model, else by the search's own rules in rigorous arithmetic (`recheck`), and the reason says
    which. `progress(n, phase)` hears of each batch of n leaves re-verified; past `deadline` (a
    `time.perf_counter()` value) it raises TimeoutError("the certificate check")."""
    try:
        r = independent.check(cert, model, progress=progress, deadline=deadline)
    except independent.NotCheckable as e:
        r = recheck(cert, model, progress=progress, deadline=deadline)
        if r.passed:
            r.reason += (f"; re-checked with the search's own bound rules, not by the independent checker "
                         f"(it does not handle {e} yet)")
        return r
    return CheckResult(r.passed, r.reason, r.leaves, ranges=r.ranges, seconds=r.seconds, independent=True,
                       points=r.points)


def recheck(cert: dict, model: AdderModel, progress=None, deadline: float | None = None) -> CheckResult:
    """Re-verify a certificate with the search's own bound rules, in rigorous arithmetic (exp in
    arb balls): it catches a changed weight, number or tree, not a wrong rule (`check`)."""
    t0 = time.perf_counter()
    if cert.get("weights_sha256") != weights_hash(model):
        return CheckResult(False, "the certificate is for other weights (sha256 differs)")
    dtype = str(model.dtype).replace("torch.", "")
    if cert.get("dtype") != dtype or cert.get("arithmetic") not in ARITHMETICS:
        return CheckResult(False, f"the certificate is for {cert.get('arithmetic')} arithmetic of a "
                                  f"{cert.get('dtype')} model, this model is {dtype}")
    if cert["arithmetic"] != dtype:
        return CheckResult(False, f"a {cert['arithmetic']}-arithmetic certificate does not prove the {dtype} model")
    mw = ModelWeights(model)
    ctx = Ctx(mw, ARITHMETICS[cert["arithmetic"]], rigorous=True)
    fmt = model.spec.format
    steps = cert.get("steps")
    if not isinstance(steps, list) or [s.get("step") for s in steps] != list(range(fmt.out_digits)):
        return CheckResult(False, f"the certificate must cover answer steps 0..{fmt.out_digits - 1} in order")
    try:
        with np.errstate(invalid="ignore", over="ignore"):  # a failed bound is an infinite box: it fails below
            return _check_steps(steps, fmt, model, ctx, progress, t0, deadline)
    except (KeyError, TypeError, ValueError, IndexError) as e:
        raise CertificateError(f"malformed certificate ({type(e).__name__}: {e})") from None
    except Unsupported as e:
        return CheckResult(False, str(e))


#: Significant digits `compact` tries for a leaf's head bounds, fewest first (the search writes 9).
COMPACT_DIGITS = (4, 5, 6, 7)
#: ... and for its recorded margin (a lower bound, informational).
MARGIN_DIGITS = 4


def compact(cert: dict, model: AdderModel, progress=None) -> tuple[dict, dict]:
    """A copy of `cert` whose leaves' head bounds lam are written with as few significant digits
    (COMPACT_DIGITS) as still certify the leaf, and how many leaves took each (`digits -> count`).

    Why it is sound. Each lam entry is an upper bound (of a head output R, or of -R), rounded
    *up* here: G(lam) = max sum_j e_j (v_j - lam) only falls as lam grows, so the attention
    inequality still holds, and the output box only widens. What may fail is the margin over
    the wider box, so a shorter lam is kept only where the margin, re-bounded on the leaf's own
    bisection tree with the search's rules in rigorous arithmetic, stays positive (the leaf's
    recorded margin is updated to that new, smaller bound). The result is a certificate like
    any other: `check` (the independent checker) must still pass it. Why: the head bounds are
    most of a big certificate's bytes (a 99,487-leaf one: 2.4 MB with xz, 8 numbers of 9 digits a
    leaf), and most leaves have margin to spare. `counts`: leaves per digits, and "unchanged"."""
    import copy

    out = copy.deepcopy(cert)
    mw = ModelWeights(model)
    ctx = Ctx(mw, ARITHMETICS[out["arithmetic"]], rigorous=True)
    fmt = model.spec.format
    counts = {**{d: 0 for d in COMPACT_DIGITS}, "unchanged": 0}
    with np.errstate(invalid="ignore", over="ignore"):
        for st in out["steps"]:
            layout, inner, leaves, problems = _step_leaves(st, fmt, len(model.spec.vocab), ctx)
            if problems:
                raise CertificateError(f"compact takes a certificate that checks: {problems[0]}")
            todo = list(range(len(leaves)))
            for digits in COMPACT_DIGITS:
                kept = []
                for s in range(0, len(todo), CHECK_BATCH):
                    batch = [leaves[i] for i in todo[s:s + CHECK_BATCH]]
                    lams = [decimal_up(np.asarray(b[3]["lam"], dtype=np.float64), digits) for b in batch]
                    bounds = _bound_leaves(layout, inner, ctx, batch, lams, st)
                    for b, lam, ok, worst, i in zip(batch, lams, bounds.ok, bounds.worst, todo[s:s + CHECK_BATCH]):
                        if ok:
                            b[3]["lam"] = lam.tolist()
                            b[3]["margin"] = float(decimal_down(worst, MARGIN_DIGITS))
                            counts[digits] += 1
                        else:
                            kept.append(i)
                    if progress:
                        progress(len(batch), f"compacting step {st['step']} ({digits} digits)")
                todo = kept
            counts["unchanged"] += len(todo)
    return out, counts


def _step_leaves(st: dict, fmt, vocab: int, ctx: Ctx):
    """One step of a certificate: its layout, its inner layers (their records re-verified), its
    leaves as (case, query token, target, leaf dict, label), and what is wrong with its tree."""
    layout = StepLayout(fmt, vocab, st["step"])
    roots = root_cases(layout)
    inner = bound_inner(layout, ctx, st.get("inner"))
    leaves, problems = [], []
    for i, node in enumerate(st["roots"]):
        _walk(node, roots.cases.take([i]), roots.query_token[i], roots.target[i],
              f"step {st['step']}: {roots.labels[i]}", leaves, problems)
    return layout, inner, leaves, problems


def _bound_leaves(layout: StepLayout, inner, ctx: Ctx, batch: list, lams: list, st: dict):
    """The leaves' margins re-bounded with the given head bounds `lams` and their own trees, which
    cut the box the step's "cut" names (`step_cut`)."""
    cases = Cases(np.concatenate([b[0].mask for b in batch]), np.concatenate([b[0].final for b in batch]))
    given = Given(lams=np.concatenate([lam.reshape(-1) for lam in lams]), trees=[b[3].get("tree") for b in batch])
    return bound_cases(layout, cases, np.array([b[1] for b in batch]), np.array([b[2] for b in batch]), ctx, inner,
                       given, residual_cut=step_cut(st, ctx) == "residual")


def step_cut(st: dict, ctx: Ctx) -> str:
    """The box a step's trees cut: its "cut", or for a certificate written before that field, the
    residual in one-layer models with several heads and one O matrix (the joint rule's models
    then), else the head outputs (as the checker reads it, `checker.check`)."""
    spec = ctx.mw.spec
    atts = [b.layer for b in spec.blocks if isinstance(b.layer, Attention)]
    legacy = len(atts) == 1 and len(atts[0].o.weights) == 1 and ctx.relational
    cut = st.get("cut", "residual" if legacy else "heads")
    if cut not in ("heads", "residual"):
        raise CertificateError(f"step {st.get('step')}: malformed cut {cut!r} (expected \"heads\" or \"residual\")")
    return cut


def _check_steps(steps: list, fmt, model: AdderModel, ctx: Ctx, progress, t0: float,
                 deadline: float | None) -> CheckResult:
    """Every step of a certificate: regenerate its cases and inner sub-rows, re-verify its bounds."""
    n_leaves = 0
    for st in steps:
        n_roots = len(root_cases(StepLayout(fmt, len(model.spec.vocab), st["step"])).cases)
        if not isinstance(st.get("roots"), list) or len(st["roots"]) != n_roots:
            return CheckResult(False, f"step {st['step']}: expected {n_roots} root cases")
        layout, inner, leaves, problems = _step_leaves(st, fmt, len(model.spec.vocab), ctx)
        if any(np.isnan(np.asarray(r["lam"], dtype=np.float64)).any() for r in inner.record):
            return CheckResult(False, f"step {st['step']}: a recorded bound of an inner attention layer does "
                                      "not hold", n_leaves, ranges=ctx.ranges)
        if problems:
            return CheckResult(False, problems[0] + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""))
        for s in range(0, len(leaves), CHECK_BATCH):
            if deadline is not None and time.perf_counter() > deadline:
                raise TimeoutError("the certificate check")
            batch = leaves[s:s + CHECK_BATCH]
            bounds = _bound_leaves(layout, inner, ctx, batch, [np.asarray(b[3]["lam"], dtype=np.float64) for b in batch],
                                   st)
            bad = np.flatnonzero(~bounds.ok)
            if len(bad):
                return CheckResult(False, f"{batch[bad[0]][4]}: a recorded bound does not hold "
                                          f"({len(bad)} leaves fail)", n_leaves, ranges=ctx.ranges)
            n_leaves += len(batch)
            if progress:
                progress(len(batch), f"certificate check, step {st['step']}, leaves re-verified")
    return CheckResult(True, f"{n_leaves:,} leaves re-verified (exp in arb balls, outward rounding)", n_leaves,
                       ranges=ctx.ranges, seconds=time.perf_counter() - t0)
