"""`prove(model)`: the search, the independent check, the library checks, one verdict.

A model with an operation the bounds have no rule for cannot be proven: it is only run through
the bound-free probe (`search.probe_refute`), which can refute it, and is otherwise undecided at once.

The order is the argument's: (1) search each answer step for a case split whose bounds
prove it, stopping early on a confirmed counterexample; (2) for unproven steps, search again
in exact real arithmetic to tell `real-only` from `undecided`; (3) write the certificate and
re-verify it with `certificate.check` (arb-ball exp, outward rounding, no search code);
(4) check the library-function assumptions exhaustively over the input ranges the check
met. Only when all four went through is the verdict `proven`.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ...compiler.checkpoint import weights_hash
from ...compiler.errors import AdderError
from ...compiler.module import AdderModel
from ...compiler.spec import Attention
from . import certificate as cert_mod
from .floatmodel import GELU_X_ULPS, LIBRARY_ULPS, REAL
from .joint import DOMINANT
from .layers import Ctx
from .layout import StepLayout
from .libm import check_range
from .report import ProofReport, StepVerdict, Verdict
from .search import PROBE_FOUND_BY, n_attention, point_bound, probe_refute, quick_refute, search_step
from .support import unsupported
from .weights import ModelWeights

#: Share of the time budget for the float search (the rest decides real-only vs undecided).
FLOAT_SHARE = 0.75
#: A step's float search may use at most this many fair shares (what is left / steps left):
#: one step whose float bound cannot close (a margin of one ulp) may not take all the time,
#: and every step is searched, then tried in real arithmetic.
STEP_SHARES = 3.0
#: Share of the time budget for the quick counterexample pass of deep models.
QUICK_SHARE = 0.3
#: Default time budget of the search (seconds); what is left open is reported undecided.
DEFAULT_TIMEOUT = 600.0


def sampled_margins(model: AdderModel) -> tuple[np.ndarray, list]:
    """Smallest margin per answer step over the official 10,010 cases (the sampled view), and
    the (a, b) that has it (where an obstruction is measured)."""
    from ...compiler.decode import teacher_forced
    from ..cases import official_pairs

    pairs = official_pairs()
    a = torch.tensor([p[0] for p in pairs], dtype=torch.long)
    b = torch.tensor([p[1] for p in pairs], dtype=torch.long)
    out = []
    for s in range(0, len(pairs), 4096):
        out.append(teacher_forced(model, a[s:s + 4096], b[s:s + 4096]).margin.double())
    least, at = torch.cat(out).min(0)
    return least.numpy(), [pairs[int(i)] for i in at]


def assumptions(dtype: str) -> list[str]:
    return [
        f"IEEE 754 {dtype} arithmetic, round to nearest, subnormals kept (no flush-to-zero), on the CPU",
        "sums and dot products in any order, with or without fused multiply-add (gamma_n bound)",
        f"torch's exp (inside softmax, and torch.exp), rsqrt, silu and gelu accurate to {LIBRARY_ULPS:g} ulp on the "
        "input ranges met (silu: plus 2^-100 absolute in float32, where it returns 0 for x < -88.7; gelu, "
        f"F.gelu with approximate='none', x Phi(x): plus {GELU_X_ULPS:g} u |x| absolute, erf's absolute error "
        "times |x|/2; checked below)",
        "the weights are the compiled module's, as hashed (sha256 of spec and parameters)",
    ]


def table_assumption(steps: list[int]) -> str:
    """What the steps decided by the table rule (`checker/table.py`) assume beyond the list above."""
    return (f"step{'s' if len(steps) > 1 else ''} {_ranges(steps)}, decided by the table rule (every head reads at most "
            "three keys; any other key's softmax weight is exactly 0 (softmax_zero, checked below) or, within 110 of "
            "the best score, bounded with the others as a tail): every sum there is a binary tree "
            "of float32 additions, each possibly fused with one product, or the exact sum rounded once (the orders "
            "the gamma_n bound covers, bounded one by one)")


def check_timeout(timeout: float) -> float:
    """`timeout` if it is a usable wall-clock budget (finite, positive seconds); else a one-line error."""
    if not (isinstance(timeout, (int, float)) and math.isfinite(timeout) and timeout > 0):
        raise AdderError(f"--timeout must be a positive finite number of seconds, got {timeout}")
    return float(timeout)


def prove(model: AdderModel, target: str, *, timeout: float = DEFAULT_TIMEOUT, certificate: Path | None = None,
          check_libm: bool = True, sampled: bool = True,
          progress: Callable[[int, str], None] | None = None) -> ProofReport:
    """Search, check and decide. `timeout` is a wall-clock budget for the whole run (search,
    real-arithmetic pass, certificate and library checks): what it leaves undone is reported
    undecided with "the budget ran out", never as a property of the model."""
    timeout = check_timeout(timeout)
    t0 = time.perf_counter()
    model = model.cpu()
    dtype = str(model.dtype).replace("torch.", "")
    report = ProofReport(target=target, name=model.spec.name, weights_sha256=weights_hash(model), dtype=dtype,
                         assumptions=assumptions(dtype))
    missing = unsupported(model.spec)
    if missing:  # no bound can be had: say so at once, after a bound-free look for a counterexample
        report.reason = "not provable yet: " + "; ".join(missing)
        found = probe_refute(model)
        if found:
            a, b, printed, step = found
            report.verdict = Verdict.REFUTED
            report.counterexample = {"a": a, "b": b, "printed": printed, "expected": a + b, "step": step,
                                     "found_by": PROBE_FOUND_BY}
        report.seconds = time.perf_counter() - t0
        return report
    mw = ModelWeights(model)
    fmt = model.spec.format
    deadline = t0 + FLOAT_SHARE * timeout  # the rest of the budget is for the real-arithmetic pass
    ctx = Ctx(mw, mw.arithmetic)
    searches = []
    try:  # Ctrl-C ends the search: what was bounded so far is reported (and certified), undecided
        margins, worst = sampled_margins(model) if sampled else (None, None)
        _search(model, report, ctx, mw, searches, (margins, worst), t0, timeout, deadline, progress)
    except KeyboardInterrupt:
        _interrupted(report, f"after {time.perf_counter() - t0:.0f} s, {len(searches)} of {fmt.out_digits} steps "
                             "searched")
    if report.verdict == Verdict.REFUTED and not searches:  # refuted by the quick pass: no search to certify
        report.seconds = time.perf_counter() - t0
        return report
    tabled = [s.step for s in searches if s.table]
    if tabled:
        report.assumptions.insert(2, table_assumption(tabled))
    steps = [s.record() for s in searches]
    arith = ctx.ar.name
    cert = cert_mod.build(model, arith, report.assumptions, steps)
    if certificate is not None:
        cert_mod.write(cert, certificate)
        report.certificate = str(certificate)
    if report.verdict == Verdict.CANDIDATE:
        try:
            _check(report, cert, model, dtype, check_libm, progress, t0 + timeout)
        except KeyboardInterrupt:
            _interrupted(report, "during the certificate and library checks")
        except TimeoutError as e:
            report.verdict, report.budget_ran_out = Verdict.UNDECIDED, True
            report.reason = (f"the budget ran out ({timeout:g} s) during {e}, after the search closed every step; "
                             "run again with a larger --timeout")
    if report.verdict in (Verdict.PROVEN, Verdict.CONDITIONAL):
        for sv in report.steps:
            sv.verdict = report.verdict
    report.seconds = time.perf_counter() - t0
    return report


def _interrupted(report: ProofReport, when: str) -> None:
    """Mark a report whose run Ctrl-C ended: incomplete, and undecided unless a counterexample was confirmed."""
    report.interrupted = True
    if report.verdict != Verdict.REFUTED:
        report.verdict = Verdict.UNDECIDED
        report.reason = f"interrupted (Ctrl-C) {when}"


def _search(model: AdderModel, report: ProofReport, ctx: Ctx, mw: ModelWeights, searches: list, sampled, t0: float,
            timeout: float, deadline: float, progress: Callable[[int, str], None] | None) -> None:
    """The quick counterexample pass (deep models), the split search of every answer step, then `_settle`;
    `searches` and `report` are filled as it goes."""
    margins = sampled[0]  # sampled: (smallest margin per step, the official (a, b) with it), or (None, None)
    fmt, vocab = model.spec.format, len(model.spec.vocab)
    with torch.no_grad():
        if n_attention(model) > 1:  # deep models: cheap worst-case inputs of every step first
            for k in range(fmt.out_digits):
                if time.perf_counter() > t0 + QUICK_SHARE * timeout:
                    break
                if progress:
                    progress(0, f"quick counterexample pass, step {k} of {fmt.out_digits}")
                found = quick_refute(model, StepLayout(fmt, vocab, k), ctx)
                if found:
                    a, b, printed = found
                    report.steps = [StepVerdict(step=j, verdict=Verdict.UNDECIDED) for j in range(k)]
                    report.steps.append(StepVerdict(step=k, verdict=Verdict.REFUTED, reason=f"{a} + {b} prints {printed}",
                                                    sampled_margin=float(margins[k]) if margins is not None else None))
                    report.verdict = Verdict.REFUTED
                    report.counterexample = {"a": a, "b": b, "printed": printed, "expected": a + b, "step": k}
                    return
        n = fmt.out_digits
        for k in range(n):
            res = search_step(model, StepLayout(fmt, vocab, k), ctx, _step_deadline(deadline, n - k), progress)
            searches.append(res)
            if res.counterexample:
                break
        _second_pass(model, ctx, searches, deadline, progress)
        for k, res in enumerate(searches):
            sv = StepVerdict(step=k, verdict=Verdict.CLOSED if res.proven else Verdict.UNDECIDED, leaves=res.leaves,
                             certified_margin=res.certified_margin if np.isfinite(res.certified_margin) else None,
                             sampled_margin=float(margins[k]) if margins is not None else None,
                             open_inputs=res.open_inputs, seconds=res.seconds)
            report.steps.append(sv)
            report.weak_inputs += [list(pair) for pair in res.weak_inputs]
            if res.counterexample:
                a, b, printed = res.counterexample
                sv.verdict, sv.reason = Verdict.REFUTED, f"{a} + {b} prints {printed}"
                report.verdict = Verdict.REFUTED
                report.counterexample = {"a": a, "b": b, "printed": printed, "expected": a + b, "step": k}
                del searches[k + 1:]
                break
            if res.unsupported:
                sv.reason = res.unsupported
            report.open_regions += res.open_regions[: max(0, 20 - len(report.open_regions))]
            report.open_inputs += res.open_inputs
        if report.verdict != Verdict.REFUTED:
            _settle(report, searches, model, mw, t0 + timeout, timeout, progress, sampled)


def _step_deadline(deadline: float, steps_left: int) -> float:
    """When the next step must stop: at most `STEP_SHARES` fair shares of the time left."""
    now = time.perf_counter()
    return min(deadline, now + STEP_SHARES * max(0.0, deadline - now) / steps_left)


def _second_pass(model: AdderModel, ctx: Ctx, searches: list, deadline: float,
                 progress: Callable[[int, str], None] | None) -> None:
    """Float search time the first pass left (steps that closed early) goes to the steps their
    share cut short, shared among them: each is searched again from its roots and the new
    search kept where it proved, refuted or left fewer inputs open."""
    if any(s.counterexample for s in searches):
        return
    fmt, vocab = model.spec.format, len(model.spec.vocab)
    cut = [k for k, s in enumerate(searches) if s.budget_ran_out]
    for j, k in enumerate(cut):
        now = time.perf_counter()
        if now >= deadline:
            return
        again = search_step(model, StepLayout(fmt, vocab, k), ctx, now + (deadline - now) / (len(cut) - j), progress,
                            " (second pass)")
        if again.proven or again.counterexample or again.open_inputs < searches[k].open_inputs:
            searches[k] = again
        if again.counterexample:
            return


def _check(report: ProofReport, cert: dict, model: AdderModel, dtype: str, check_libm: bool,
           progress: Callable[[int, str], None] | None, deadline: float) -> None:
    """The verdict of a search that bounded every step: the certificate's independent check, then the
    library-function assumptions. `proven` needs both; an assumption checked on a sample only, or not
    at all, makes the verdict `conditional` (named in `report.unchecked`), never `proven`.
    Raises TimeoutError (naming the phase) past `deadline`."""
    checked = cert_mod.check(cert, model, progress=progress, deadline=deadline)
    report.check = checked.reason
    if not checked.passed:
        report.verdict, report.reason = Verdict.UNDECIDED, f"the certificate check failed: {checked.reason}"
        return
    if not checked.independent:
        report.assumptions.append("the search's bound rules are sound: this certificate was re-checked with them, "
                                  "not by the independent checker (adder.verify.checker has no rule yet for an "
                                  "operation of this model; the certificate check line names it)")
    if not check_libm:
        report.verdict = Verdict.CONDITIONAL
        report.unchecked.append(f"torch's library functions ({', '.join(sorted(checked.ranges))}) meet the assumed "
                                "ulp bounds on the ranges met: not checked (--no-libm-check)")
        return
    report.verdict = Verdict.PROVEN
    for fn, (lo, hi, grid) in sorted(checked.ranges.items()):
        if progress:
            progress(0, f"library check, {fn} on [{lo:.4g}, {hi:.4g}]")
        if time.perf_counter() > deadline:
            raise TimeoutError("the library-function checks")
        lib = check_range(fn, lo, hi, dtype, grid=grid, points=checked.points.get(fn))
        report.libm.append(lib.to_json())
        if not lib.holds:
            report.assumptions.append("violated: " + lib.describe())
            report.verdict = Verdict.UNDECIDED
            report.reason = f"library assumption violated: {lib.describe()}"
        elif lib.exhaustive:
            report.assumptions.append("checked: " + lib.describe())
        else:
            report.assumptions.append("sampled, not exhaustively checked: " + lib.describe())
            report.unchecked.append(f"{lib.fn} is within the assumed ulp bound on all of [{lib.lo:.6g}, {lib.hi:.6g}] "
                                    f"(checked on a random sample of {lib.inputs:,} {dtype} inputs only)")
    if report.verdict == Verdict.PROVEN and report.unchecked:
        report.verdict = Verdict.CONDITIONAL


def _settle(report: ProofReport, searches, model: AdderModel, mw: ModelWeights, deadline: float,
            timeout: float, progress: Callable[[int, str], None] | None = None, sampled=(None, None)) -> None:
    """Verdicts of the steps the float search did not prove: real-only or undecided. A step the
    budget cut short is undecided with "the budget ran out", never "open in real arithmetic"."""
    unproven = [s for s in searches if not s.proven]
    if len(searches) == model.spec.format.out_digits and not unproven:
        report.verdict = Verdict.CANDIDATE  # proven by the search: the check decides
        return
    missing = model.spec.format.out_digits - len(searches)
    real_ctx = Ctx(mw, REAL)
    real_ok = missing == 0
    reasons, cut = [], []  # cut: steps the budget left undecided
    real_cut = []  # steps the float search ran out of time on and real arithmetic proves
    for i, s in enumerate(unproven):
        sv = report.steps[s.step]
        step_deadline = _step_deadline(deadline, len(unproven) - i)
        if s.unsupported:
            real_ok = False
            reasons.append(f"step {s.step}: {s.unsupported}")
            continue
        layout = StepLayout(model.spec.format, len(model.spec.vocab), s.step)
        if s.table_note:  # an exact finding, whatever the split search's budget did
            reasons.append(s.table_note)
        if s.budget_ran_out:
            real_ok = False
            cut.append(s.step)
            sv.reason = f"the budget ran out with {s.open_inputs:.3g} inputs not yet bounded"
            if time.perf_counter() < step_deadline:  # still say what real arithmetic does, if time allows
                real = search_step(model, layout, real_ctx, step_deadline, progress, " in real arithmetic")
                if real.proven:
                    sv.reason += (f" in {mw.dtype}; real arithmetic proves it (margin >= {real.certified_margin:.3g})"
                                  + _too_thin(model, mw, s.step, *sampled))
                    real_cut.append(s.step)
            continue
        real = search_step(model, layout, real_ctx, step_deadline, progress, " in real arithmetic")
        if real.proven:
            sv.verdict = Verdict.REAL_ONLY
            sv.reason = (f"real arithmetic proves it (margin >= {real.certified_margin:.3g}); the {mw.dtype} bound "
                         f"leaves {s.open_inputs:.3g} inputs open" + _too_thin(model, mw, s.step, *sampled))
        elif real.budget_ran_out:
            real_ok = False
            cut.append(s.step)
            sv.reason = sv.reason or (f"open in {mw.dtype} at the deepest split ({s.open_inputs:.3g} inputs); the "
                                      "budget ran out before real arithmetic decided it")
        else:
            real_ok = False
            sv.reason = sv.reason or (f"open in real arithmetic too ({real.open_inputs:.3g} inputs)"
                                      + _missing_rule(model))
        if s.step not in cut:
            reasons.append(f"step {s.step}: {sv.reason}")
    report.verdict = Verdict.REAL_ONLY if real_ok else Verdict.UNDECIDED
    report.reason = "; ".join(reasons[:3]) + (f" (and {len(reasons) - 3} more steps)" if len(reasons) > 3 else "")
    if real_cut:
        reasons.insert(0, f"real arithmetic proves step{'s' if len(real_cut) > 1 else ''} {_ranges(real_cut)}, where "
                          f"the {mw.dtype} search ran out of time")
        report.reason = "; ".join(reasons[:3]) + (f" (and {len(reasons) - 3} more steps)" if len(reasons) > 3 else "")
    if cut or missing:
        report.budget_ran_out = True
        which = f"step{'s' if len(cut) > 1 else ''} {_ranges(cut)} not decided" if cut else ""
        if missing:
            which += (", " if which else "") + f"{missing} steps not reached"
        report.reason = (f"the budget ran out ({timeout:g} s) with {which}; a larger --timeout may decide "
                         + ("them" if len(cut) + missing > 1 else "it") + (f"; {report.reason}" if report.reason else "")
                         + ("" if report.reason else _missing_rule(model)))


def _too_thin(model: AdderModel, mw: ModelWeights, step: int, margins, worst) -> str:
    """Where real arithmetic proves a step and the float bound does not: the float bound at the
    single official case with the step's smallest margin (`search.point_bound`). Below zero,
    the rounding the error model allows at that one input (any summation order) exceeds the
    model's margin there, and no case split can close the step: say so, with both numbers."""
    if worst is None:
        return ""
    a, b = worst[step]
    bound = point_bound(model, Ctx(mw, mw.arithmetic), step, a, b)
    if bound > 0:
        return ""
    return (f"; at the single input {a} + {b} the module's margin is {float(margins[step]):.3g} and the {mw.dtype} "
            f"bound {bound:.3g}: the rounding allowed in any summation order already exceeds the margin at one "
            "input, so no finer case split can close the step with these rules")


def _missing_rule(model: AdderModel) -> str:
    """What the prover is known to lack for this model's last attention, named in an open step's reason:
    several heads in a one-layer model are bounded jointly only where one key carries each
    head's weight (`joint.py`; in a deeper model the inner layers' enumeration fixes what each
    head reads, and two-head two-layer models are proven that way: no hint there)."""
    attention = [b.layer for b in model.spec.blocks if isinstance(b.layer, Attention)]
    if len(attention) == 1 and attention[-1].n_heads > 1:
        return (f"; the last attention has {attention[-1].n_heads} query heads: the joint rule bounds their sum "
                f"where one key carries each head's weight (rho < {DOMINANT:g}), and bounds any other head "
                "on its own")
    return ""


def _ranges(steps: list[int]) -> str:
    """[2, 3, 4, 7] -> '2-4, 7'."""
    out, start = [], None
    for i, k in enumerate(steps):
        if start is None:
            start = k
        if i + 1 == len(steps) or steps[i + 1] != k + 1:
            out.append(f"{start}" if start == k else f"{start}-{k}")
            start = None
    return ", ".join(out)
