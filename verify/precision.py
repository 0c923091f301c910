"""The same cases in several arithmetics, and each failure classed by cause.

`float32` / `float64` recompile the spec in that dtype (hand-set parameters from their
exact values, so float64 is not a widened float32); `exact` is `ExactModel` (50 digits).
A case wrong in exact arithmetic is a **construction** error; one that is right in exact
arithmetic but wrong in the model's own dtype is a **precision** error.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..compiler.decode import teacher_forced
from ..compiler.module import AdderModel, compile_spec
from ..compiler.errors import AdderError
from .exact import ExactModel, exact_check

ARITHMETICS = ("float32", "float64", "exact")
#: Most cases the exact arithmetic evaluates per run (it is slow).
MAX_EXACT_CASES = 60


@dataclass
class PrecisionResult:
    arithmetics: list[str]
    cases: int
    failures: dict = field(default_factory=dict)  # arithmetic -> number of failing cases
    min_margin: dict = field(default_factory=dict)  # arithmetic -> smallest margin seen
    classes: list = field(default_factory=list)  # [(a, b, "construction" | "precision" | "unclassified")]

    def to_json(self) -> dict:
        return {"arithmetics": self.arithmetics, "cases": self.cases, "failures": self.failures,
                "min_margin": self.min_margin,
                "classified_failures": [{"a": a, "b": b, "class": c} for a, b, c in self.classes]}


def parse_arithmetics(text: str) -> list[str]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    bad = [t for t in items if t not in ARITHMETICS]
    if bad or not items:
        raise AdderError(f"--precision takes a comma list of {', '.join(ARITHMETICS)}; got {text!r}")
    return items


def in_dtype(model: AdderModel, dtype: str) -> AdderModel:
    """The model recompiled in `dtype`: hand-set parameters from their exact values, any
    parameter that differs from its declared value (trained, edited) as stored."""
    if str(model.dtype).endswith(dtype):
        return model
    as_declared = compile_spec(model.spec, dtype=str(model.dtype).replace("torch.", ""))
    other = compile_spec(model.spec, dtype=dtype, device=str(model.device))
    with torch.no_grad():
        for name, p in model.named_spec_params():
            if not torch.equal(as_declared.param(name), p.detach().cpu()):
                other.param(name).copy_(p.detach().to(other.dtype))
    return other


def check_precision(model: AdderModel, pairs: list[tuple[int, int]], arithmetics: list[str],
                    failing: set[tuple[int, int]]) -> PrecisionResult:
    """Evaluate `pairs` in each arithmetic; class the model's own failures among them."""
    res = PrecisionResult(arithmetics=arithmetics, cases=len(pairs))
    verdict: dict[str, dict] = {}
    for ar in arithmetics:
        if ar == "exact":
            ex = ExactModel(model)
            subset = ([p for p in pairs if p in failing] + [p for p in pairs if p not in failing])[:MAX_EXACT_CASES]
            out = {p: exact_check(ex, *p) for p in subset}
            verdict[ar] = {p: ok for p, (ok, _) in out.items()}
            res.failures[ar] = sum(not ok for ok, _ in out.values())
            res.min_margin[ar] = min((m for _, m in out.values()), default=float("nan"))
            res.cases = len(pairs)
            continue
        m = in_dtype(model, ar)
        a = torch.tensor([x for x, _ in pairs], dtype=torch.long, device=m.device)
        b = torch.tensor([y for _, y in pairs], dtype=torch.long, device=m.device)
        r = teacher_forced(m, a, b)
        verdict[ar] = dict(zip(pairs, r.correct.cpu().tolist()))
        res.failures[ar] = int((~r.correct).sum())
        res.min_margin[ar] = float(r.margin.min())
    for p in pairs:
        if p not in failing:
            continue
        if "exact" in verdict and p in verdict["exact"]:
            res.classes.append((p[0], p[1], "construction" if not verdict["exact"][p] else "precision"))
        else:
            res.classes.append((p[0], p[1], "unclassified"))
    return res
