"""What a verification run found, as data (`Report.to_json`) and as rich renderables.

Wording rule: a run without failures says "no counterexample in N cases (suites ...)";
nothing here ever says "proven" — sampling and enumeration of chosen families of cases
are evidence, not a proof. A proof (`--prove`) is attached as its own section, worded by
`adder.verify.prove.report`.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass, field

import torch
from rich.console import Group
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from .cases import QUALIFY_AT
from .precision import PrecisionResult
from .runner import SuiteResult
from .steered import SearchResult


@dataclass
class Report:
    target: str
    kind: str  # "compiled" | "submission"
    name: str
    weights_sha256: str | None
    device: str
    dtype: str | None
    seed: int
    suites: list[SuiteResult] = field(default_factory=list)
    search: SearchResult | None = None
    precision: PrecisionResult | None = None
    audit: dict = field(default_factory=dict)
    seconds: float = 0.0
    proof: dict | None = None  # `adder verify --prove`: the ProofReport as JSON
    settings: dict = field(default_factory=dict)  # how it ran: chunk and threads, or timeout, sandbox and workers
    black_box: dict | None = None  # submissions: calls by outcome, bytes printed, sandbox limits, why cases were not run

    @property
    def cases(self) -> int:
        return sum(s.cases for s in self.suites) + (self.search.examples if self.search else 0)

    @property
    def failed(self) -> int:
        return sum(s.failed for s in self.suites) + (1 if self.search and self.search.counterexample else 0)

    @property
    def refuted_by_proof(self) -> bool:
        """The attached proof (`--prove`) found an input the model adds wrongly."""
        return bool(self.proof and self.proof.get("verdict") == "refuted")

    @property
    def ok(self) -> bool:
        return self.failed == 0 and not self.refuted_by_proof

    def verdict(self) -> str:
        names = [s.suite for s in self.suites] + (["hypothesis"] if self.search else [])
        where = f"(suites {', '.join(names)}; {self.dtype or 'submission'} on {self.device})"
        if self.refuted_by_proof:
            c = self.proof["counterexample"]
            sampled = (f"no counterexample in {self.cases:,} sampled cases" if not self.failed
                       else f"{self.failed:,} wrong of {self.cases:,} cases")
            return f"FAILED: {c['a']} + {c['b']} prints {c['printed']} (found by the prover); {sampled} {where}"
        if self.ok:
            return f"no counterexample in {self.cases:,} cases {where}"
        return f"FAILED: {self.failed:,} wrong of {self.cases:,} cases {where}"

    def qualification(self) -> str | None:
        ab = next((s for s in self.suites if s.suite == "adderboard"), None)
        if ab is None:
            return None
        acc = ab.passed / ab.cases
        return (f"AdderBoard: {ab.passed:,}/{ab.cases:,} = {100 * acc:.2f}% -> "
                f"{'QUALIFIED' if acc >= QUALIFY_AT else 'NOT QUALIFIED'} (threshold {100 * QUALIFY_AT:.0f}%)")

    def to_json(self) -> dict:
        return {
            "verdict": self.verdict(), "ok": self.ok, "qualification": self.qualification(),
            "artifact": {"target": self.target, "kind": self.kind, "name": self.name,
                         "weights_sha256": self.weights_sha256},
            "arithmetic": self.dtype, "device": self.device, "seed": self.seed, "settings": self.settings,
            "cases": self.cases, "failed": self.failed,
            "suites": [s.to_json() for s in self.suites],
            "search": self.search.to_json() if self.search else None,
            "precision": self.precision.to_json() if self.precision else None,
            "audit": self.audit, "black_box": self.black_box, "seconds": round(self.seconds, 3), "proof": self.proof,
            "versions": {"torch": str(torch.__version__), "python": platform.python_version()},
        }


def black_box_summary(box: dict) -> str:
    """One paragraph: the submission's calls by outcome, what it printed, its sandbox."""
    calls = ", ".join(f"{n:,} {what}" for what, n in box["calls"].items())
    text = f"calls: {calls}; the submission printed {box['printed_bytes']:,} bytes (captured, not shown)"
    if box.get("gave_up"):
        text += f"; {box['gave_up']}"
    sandbox = box.get("sandbox")
    text += ("; sandbox: " + "; ".join(f"{k}: {v}" for k, v in sandbox.items()) if sandbox
             else "; no sandbox: the file's code ran with your user's rights")
    return text


def render(r: Report) -> Group:
    """The terminal summary."""
    parts = [Text.from_markup(f"[bold]{escape(r.name)}[/] ({r.kind}, {r.dtype or '?'}, {r.device}"
                              + (f", weights {r.weights_sha256[:12]}" if r.weights_sha256 else "") + f", seed {r.seed}"
                              + "".join(f", {k} {v}" for k, v in r.settings.items()) + ")")]
    t = Table(title="suites")
    for col in ("suite", "cases", "passed", "failed", "worst margin", "time", "additions/s"):
        t.add_column(col, justify="right" if col not in ("suite",) else "left", overflow="fold")
    for s in r.suites:
        worst = f"{min(s.worst_margin):.3g}" if s.worst_margin else "-"
        t.add_row(s.suite, f"{s.cases:,}", f"{s.passed:,}", f"[red]{s.failed:,}[/]" if s.failed else "0",
                  worst, f"{s.seconds:.2f}s", f"{s.throughput:,.0f}")
    if r.search:
        t.add_row("hypothesis", f"{r.search.examples:,}", f"{r.search.examples - (1 if r.search.counterexample else 0):,}",
                  "[red]1[/]" if r.search.counterexample else "0", f"{r.search.min_margin:.3g}",
                  f"{r.search.seconds:.2f}s", f"{r.search.examples / max(r.search.seconds, 1e-9):,.0f}")
    parts.append(t)
    margins = [s for s in r.suites if s.worst_margin]
    if margins:
        m = Table(title="worst margin per answer digit (0 = least significant)")
        m.add_column("digit", justify="right", overflow="fold")
        for s in margins:
            m.add_column(s.suite, justify="right", overflow="fold")
        for i in range(len(margins[0].worst_margin)):
            m.add_row(str(i), *[f"{s.worst_margin[i]:.3g}" for s in margins])
        parts.append(m)
    fails = [(s.suite, f) for s in r.suites for f in s.failures[:3]]
    if fails or (r.search and r.search.counterexample):
        classes = {(a, b): c for a, b, c in (r.precision.classes if r.precision else [])}
        outputs = {k: v for s in r.suites for k, v in s.outputs.items()}
        black_box = r.black_box is not None
        lines = ["[bold]counterexamples[/] " + ("(what the submission's add() returned)" if black_box else
                                                "(what greedy decoding actually outputs; cause from exact arithmetic)")]
        found = ([("hypothesis, shrunk", tuple(r.search.counterexample), r.search.output)]
                 if r.search and r.search.counterexample else [])
        found += [(suite, (a, b), outputs.get(f"{a}+{b}", "?")) for suite, (a, b) in fails]
        firsts = [f"{s.suite} {s.first_failure_after:.2f}s" for s in r.suites if s.first_failure_after is not None]
        if r.search and r.search.first_failure_after is not None:
            firsts.append(f"hypothesis {r.search.first_failure_after:.2f}s")
        if firsts:
            lines.append("  time to first failure: " + ", ".join(firsts))
        for by, (a, b), said in found:
            cause = classes.get((a, b))
            lines.append(f"  {by}: {a} + {b} = {a + b}, {'add() gave' if black_box else 'model says'} [red]{escape(str(said))}[/]"
                         + (f" ({cause} error)" if cause in ("construction", "precision") else ""))
        parts.append(Text.from_markup("\n".join(lines)))
    if r.precision:
        p = Table(title="arithmetic")
        for col in ("arithmetic", "cases", "failures", "smallest margin"):
            p.add_column(col, overflow="fold")
        for ar in r.precision.arithmetics:
            n = min(r.precision.cases, 60) if ar == "exact" else r.precision.cases
            p.add_row(ar, str(n), str(r.precision.failures.get(ar)), f"{r.precision.min_margin.get(ar, float('nan')):.4g}")
        parts.append(p)
    if r.audit:
        parts.append(Text("rules audit: " + "; ".join(f"{k}: {v}" for k, v in r.audit.items())))
    if r.black_box is not None:
        parts.append(Text(black_box_summary(r.black_box)))
    q = r.qualification()
    if q:
        parts.append(Text(q, style="bold"))
    parts.append(Text(r.verdict(), style="bold green" if r.ok else "bold red"))
    if r.proof is not None:
        parts.append(Text("proof: " + r.proof["summary"], style="bold"))
    return Group(*parts)
