"""What `adder prove` found, as data and as rich renderables.

Wording rule (tested): the word "proven" appears only in a `proven` verdict, or as
"not proven". Every verdict names its arithmetic and its assumptions.
"""

from __future__ import annotations

import math
import platform
from dataclasses import dataclass, field

import torch
from rich.console import Group
from rich.table import Table
from rich.text import Text

from ..verdicts import Verdict



#: A step the search bounded completely while the overall verdict is not `proven` (its
#: bounds were not re-checked, or another step failed): never called proven on its own.
CLOSED = Verdict.CLOSED


@dataclass
class StepVerdict:
    step: int
    verdict: str
    leaves: int = 0
    certified_margin: float | None = None  # smallest margin lower bound over the proven leaves
    sampled_margin: float | None = None  # smallest margin the official cases showed at this step
    open_inputs: float = 0.0
    reason: str = ""
    seconds: float = 0.0

    def to_json(self) -> dict:
        return {**self.__dict__, "verdict": str(self.verdict)}


@dataclass
class ProofReport:
    target: str
    name: str
    weights_sha256: str
    dtype: str
    verdict: Verdict = Verdict.UNDECIDED
    steps: list[StepVerdict] = field(default_factory=list)
    counterexample: dict | None = None  # {"a", "b", "printed", "expected", "step"}
    open_regions: list[str] = field(default_factory=list)
    open_inputs: float = 0.0
    weak_inputs: list[list[int]] = field(default_factory=list)  # [a, b]: worst-case inputs of cases whose bound failed
    reason: str = ""
    assumptions: list[str] = field(default_factory=list)
    libm: list[dict] = field(default_factory=list)
    check: str = ""
    certificate: str | None = None
    seconds: float = 0.0
    machine: str = field(default_factory=lambda: f"{platform.machine()}, torch {torch.__version__}")
    interrupted: bool = False  # Ctrl-C ended the run: the report holds what was done (incomplete)
    budget_ran_out: bool = False  # --timeout ended the search or a check before it decided
    unchecked: list[str] = field(default_factory=list)  # assumptions only sampled or not checked (conditional)

    def summary(self) -> str:
        arith = f"{self.dtype} on CPU"
        if self.verdict == Verdict.PROVEN:
            return (f"proven: every one of the 10^20 inputs is added correctly at every answer step, "
                    f"in {arith}, under the assumptions listed")
        if self.verdict == Verdict.REFUTED:
            c = self.counterexample
            return (f"refuted: {c['a']} + {c['b']} prints {c['printed']} (expected {c['expected']}); found by "
                    f"{c.get('found_by', 'the prover')} at answer step {c['step']}, confirmed by greedy decoding")
        if self.verdict == Verdict.CONDITIONAL:
            return (f"conditional (not proven): every one of the 10^20 inputs is added correctly at every answer step, "
                    f"in {arith}, provided that " + "; ".join(self.unchecked))
        if self.verdict == Verdict.REAL_ONLY:
            return (f"real-only: correct on all inputs in real arithmetic with these weights, but the {arith} model "
                    f"is not proven: {self.reason}")
        opens = [s.open_inputs for s in self.steps if s.open_inputs]
        if any(math.isnan(o) for o in opens):
            held = "open regions of unknown size"
        elif opens:
            held = f"open regions at {len(opens)} steps, the largest holding {max(opens):.3g} of the 10^20 inputs"
        else:
            held = "no open region"
        return f"undecided (not proven): {self.reason}; {held}"

    def to_json(self) -> dict:
        d = {k: v for k, v in self.__dict__.items() if k != "steps"}
        d["verdict"] = str(self.verdict)
        d["steps"] = [s.to_json() for s in self.steps]
        d["summary"] = self.summary()
        return d


def _fmt(x: float | None) -> str:
    if x is None or (isinstance(x, float) and (math.isinf(x) or math.isnan(x))):
        return "-"
    return f"{x:.3g}"


def render(r: ProofReport):
    style = {Verdict.PROVEN: "bold green", Verdict.REFUTED: "bold red", Verdict.CONDITIONAL: "bold yellow",
             Verdict.REAL_ONLY: "bold yellow", Verdict.UNDECIDED: "bold yellow"}
    head = Text(f"{r.name}  ({r.target}, {r.dtype}, weights sha256 {r.weights_sha256[:12]}…)\n", style="bold")
    table = Table(title="per answer step", title_justify="left")
    for col in ("step", "verdict", "leaves", "certified margin >=", "smallest sampled margin", "open inputs", "seconds"):
        table.add_column(col, justify="right" if col != "verdict" else "left", overflow="fold")
    for s in r.steps:
        table.add_row(str(s.step), s.verdict, str(s.leaves), _fmt(s.certified_margin), _fmt(s.sampled_margin),
                      _fmt(s.open_inputs) if s.open_inputs else "0", f"{s.seconds:.1f}")
    parts = [head, table, Text(r.summary(), style=style.get(r.verdict, "bold"))]
    if any(s.verdict == CLOSED for s in r.steps):
        parts.append(Text("closed: the search bounded every case of the step; not re-checked on its own", style="dim"))
    if r.open_regions:
        parts.append(Text("open regions (first {}):\n  ".format(len(r.open_regions[:10])) +
                          "\n  ".join(r.open_regions[:10])))
    if r.assumptions:
        parts.append(Text("assumptions:\n  " + "\n  ".join(r.assumptions)))
    if r.check:
        parts.append(Text(f"certificate check: {r.check}"))
    if r.certificate:
        parts.append(Text(f"certificate: {r.certificate}"))
    parts.append(Text(f"{r.seconds:.1f} s on {r.machine}", style="dim"))
    return Group(*parts)
