"""`prove(model)`: the search, the independent check, the library checks, one verdict.

The order is the argument's: (1) search each answer step for a case split whose bounds
prove it, stopping early on a confirmed counterexample; (2) for unproven steps, search again
in exact real arithmetic to tell `real-only` from `undecided`; (3) write the certificate and
re-verify it with `certificate.check` (arb-ball exp, outward rounding, no search code);
(4) check the library-function assumptions exhaustively over the input ranges the check
met. Only when all four went through is the verdict `proven`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ...compiler.checkpoint import weights_hash
from ...compiler.module import AdderModel
from ...compiler.spec import Attention
from . import certificate as cert_mod
from .floatmodel import GELU_X_ULPS, LIBRARY_ULPS, REAL
from .layers import Ctx
from .layout import StepLayout
from .libm import check_range
from .report import ProofReport, StepVerdict
from .search import n_attention, quick_refute, search_step
from .weights import ModelWeights

#: Share of the time budget for the float search (the rest decides real-only vs undecided).
FLOAT_SHARE = 0.75
#: Share of the time budget for the quick counterexample pass of deep models.
QUICK_SHARE = 0.3
#: Default time budget of the search (seconds); what is left open is reported undecided.
DEFAULT_TIMEOUT = 600.0


def sampled_margins(model: AdderModel) -> np.ndarray:
    """Smallest margin per answer step over the official 10,010 cases (the sampled view)."""
    from ...compiler.decode import teacher_forced
    from ..cases import official_pairs

    pairs = official_pairs()
    a = torch.tensor([p[0] for p in pairs], dtype=torch.long)
    b = torch.tensor([p[1] for p in pairs], dtype=torch.long)
    out = []
    for s in range(0, len(pairs), 4096):
        out.append(teacher_forced(model, a[s:s + 4096], b[s:s + 4096]).margin.double())
    return torch.cat(out).min(0).values.numpy()


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


def prove(model: AdderModel, target: str, *, timeout: float = DEFAULT_TIMEOUT, certificate: Path | None = None,
          check_libm: bool = True, sampled: bool = True,
          progress: Callable[[int], None] | None = None) -> ProofReport:
    t0 = time.perf_counter()
    model = model.cpu()
    dtype = str(model.dtype).replace("torch.", "")
    report = ProofReport(target=target, name=model.spec.name, weights_sha256=weights_hash(model), dtype=dtype,
                         assumptions=assumptions(dtype))
    if not any(isinstance(b.layer, Attention) for b in model.spec.blocks):
        report.reason = "the model has no attention layer"
        return report
    mw = ModelWeights(model)
    fmt = model.spec.format
    deadline = t0 + FLOAT_SHARE * timeout  # the rest of the budget is for the real-arithmetic pass
    ctx = Ctx(mw, mw.arithmetic)
    searches = []
    try:  # Ctrl-C ends the search: what was bounded so far is reported (and certified), undecided
        margins = sampled_margins(model) if sampled else None
        _search(model, report, ctx, mw, searches, margins, t0, timeout, deadline, progress)
    except KeyboardInterrupt:
        _interrupted(report, f"after {time.perf_counter() - t0:.0f} s, {len(searches)} of {fmt.out_digits} steps "
                             "searched")
    if report.verdict == "refuted" and not searches:  # refuted by the quick pass: no search to certify
        report.seconds = time.perf_counter() - t0
        return report
    steps = [{"step": s.step, "inner": s.inner, "roots": s.roots} for s in searches]
    arith = ctx.ar.name
    cert = cert_mod.build(model, arith, report.assumptions, steps)
    if certificate is not None:
        cert_mod.write(cert, certificate)
        report.certificate = str(certificate)
    if report.verdict == "candidate":
        try:
            _check(report, cert, model, dtype, check_libm, progress)
        except KeyboardInterrupt:
            _interrupted(report, "during the certificate and library checks")
    if report.verdict == "proven":
        for sv in report.steps:
            sv.verdict = "proven"
    report.seconds = time.perf_counter() - t0
    return report


def _interrupted(report: ProofReport, when: str) -> None:
    """Mark a report whose run Ctrl-C ended: incomplete, and undecided unless a counterexample was confirmed."""
    report.interrupted = True
    if report.verdict != "refuted":
        report.verdict = "undecided"
        report.reason = f"interrupted (Ctrl-C) {when}"


def _search(model: AdderModel, report: ProofReport, ctx: Ctx, mw: ModelWeights, searches: list, margins, t0: float,
            timeout: float, deadline: float, progress: Callable[[int], None] | None) -> None:
    """The quick counterexample pass (deep models), the split search of every answer step, then `_settle`;
    `searches` and `report` are filled as it goes."""
    fmt, vocab = model.spec.format, len(model.spec.vocab)
    with torch.no_grad():
        if n_attention(model) > 1:  # deep models: cheap worst-case inputs of every step first
            for k in range(fmt.out_digits):
                if time.perf_counter() > t0 + QUICK_SHARE * timeout:
                    break
                found = quick_refute(model, StepLayout(fmt, vocab, k), ctx)
                if progress:
                    progress(0)
                if found:
                    a, b, printed = found
                    report.steps = [StepVerdict(step=j, verdict="undecided") for j in range(k)]
                    report.steps.append(StepVerdict(step=k, verdict="refuted", reason=f"{a} + {b} prints {printed}",
                                                    sampled_margin=float(margins[k]) if margins is not None else None))
                    report.verdict = "refuted"
                    report.counterexample = {"a": a, "b": b, "printed": printed, "expected": a + b, "step": k}
                    return
        for k in range(fmt.out_digits):
            layout = StepLayout(fmt, vocab, k)
            res = search_step(model, layout, ctx, deadline, progress)
            searches.append(res)
            sv = StepVerdict(step=k, verdict="closed" if res.proven else "undecided", leaves=res.leaves,
                             certified_margin=res.certified_margin if np.isfinite(res.certified_margin) else None,
                             sampled_margin=float(margins[k]) if margins is not None else None,
                             open_inputs=res.open_inputs, seconds=res.seconds)
            report.steps.append(sv)
            report.weak_inputs += [list(pair) for pair in res.weak_inputs]
            if res.counterexample:
                a, b, printed = res.counterexample
                sv.verdict, sv.reason = "refuted", f"{a} + {b} prints {printed}"
                report.verdict = "refuted"
                report.counterexample = {"a": a, "b": b, "printed": printed, "expected": a + b, "step": k}
                break
            if res.unsupported:
                sv.reason = res.unsupported
            report.open_regions += res.open_regions[: max(0, 20 - len(report.open_regions))]
            report.open_inputs += res.open_inputs
        if report.verdict != "refuted":
            _settle(report, searches, model, mw, t0 + timeout)


def _check(report: ProofReport, cert: dict, model: AdderModel, dtype: str, check_libm: bool,
           progress: Callable[[int], None] | None) -> None:
    """The verdict of a search that bounded every step: the certificate's independent check, then the
    library-function assumptions."""
    checked = cert_mod.check(cert, model)
    report.check = checked.reason
    if not checked.passed:
        report.verdict, report.reason = "undecided", f"the certificate check failed: {checked.reason}"
    elif check_libm:
        report.verdict = "proven"
        for fn, (lo, hi, grid) in sorted(checked.ranges.items()):
            if progress:
                progress(0)
            lib = check_range(fn, lo, hi, dtype, grid=grid)
            report.libm.append(lib.to_json())
            report.assumptions.append("checked: " + lib.describe())
            if not lib.holds:
                report.verdict = "undecided"
                report.reason = f"library assumption violated: {lib.describe()}"
    else:
        report.verdict = "undecided"
        report.reason = "the library-function assumptions were not checked (--no-libm-check)"


def _settle(report: ProofReport, searches, model: AdderModel, mw: ModelWeights, deadline: float) -> None:
    """Verdicts of the steps the float search did not prove: real-only or undecided."""
    unproven = [s for s in searches if not s.proven]
    if len(searches) == model.spec.format.out_digits and not unproven:
        report.verdict = "candidate"  # proven by the search: the check decides
        return
    missing = model.spec.format.out_digits - len(searches)
    real_ctx = Ctx(mw, REAL)
    real_ok = missing == 0
    reasons = []
    for s in unproven:
        sv = report.steps[s.step]
        if s.unsupported:
            real_ok = False
            reasons.append(f"step {s.step}: {s.unsupported}")
            continue
        layout = StepLayout(model.spec.format, len(model.spec.vocab), s.step)
        real = search_step(model, layout, real_ctx, deadline)
        if real.proven:
            sv.verdict = "real-only"
            sv.reason = (f"real arithmetic proves it (margin >= {real.certified_margin:.3g}); the {mw.dtype} bound "
                         f"leaves {s.open_inputs:.3g} inputs open")
        else:
            real_ok = False
            sv.reason = sv.reason or f"open in real arithmetic too ({real.open_inputs:.3g} inputs)"
        reasons.append(f"step {s.step}: {sv.reason}")
    report.verdict = "real-only" if real_ok else "undecided"
    report.reason = "; ".join(reasons[:3]) + (f" (and {len(reasons) - 3} more steps)" if len(reasons) > 3 else "")
    if missing:
        report.reason = (report.reason + "; " if report.reason else "") + f"{missing} steps not reached before the timeout"
