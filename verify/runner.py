"""Run suites against a compiled model: batched teacher-forced exactness, streamed in chunks.

One forward pass checks one addition (see `adder.compiler.decode`); the chunk size bounds
memory whatever the suite size. Failures keep the cases (up to `MAX_KEPT_FAILURES`); the
real greedy decode runs only on those, to show what the model actually outputs.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Callable

import torch

from ..compiler.decode import add, teacher_forced
from ..compiler.module import AdderModel
from .cases import DRAW_BLOCK, SuiteOptions, get_suite

log = logging.getLogger(__name__)

#: Failing cases kept per suite (the count is always exact).
MAX_KEPT_FAILURES = 1000
#: Failing cases decoded greedily to show the model's actual output.
MAX_DECODED_FAILURES = 20
#: Default additions per forward pass (bounded memory: ~chunk x 41 x 41 attention scores);
#: the suites' draw block, so that chunks fall where the cases were drawn.
DEFAULT_CHUNK = DRAW_BLOCK
#: Failing cases a suite's JSON lists (the count is always exact).
FAILURES_IN_JSON = 100

Progress = Callable[[int], None]


@dataclass
class SuiteResult:
    suite: str
    seed: int
    options: SuiteOptions
    cases: int = 0
    passed: int = 0
    failures: list = field(default_factory=list)  # [(a, b)] kept failing cases
    outputs: dict = field(default_factory=dict)  # "a+b" -> what greedy decoding printed
    worst_margin: list = field(default_factory=list)  # per answer digit (least significant first)
    worst_case: list = field(default_factory=list)  # per answer digit: the (a, b) with that margin
    seconds: float = 0.0
    first_failure_after: float | None = None  # seconds from the suite's start to its first failing chunk

    @property
    def failed(self) -> int:
        return self.cases - self.passed

    @property
    def throughput(self) -> float:
        return self.cases / self.seconds if self.seconds > 0 else 0.0

    def to_json(self) -> dict:
        return {"suite": self.suite, "seed": self.seed, "options": self.options.to_json(), "cases": self.cases,
                "passed": self.passed, "failed": self.failed,
                "failures": [list(f) for f in self.failures[:FAILURES_IN_JSON]],
                "actual_outputs": self.outputs, "worst_margin_per_digit": self.worst_margin,
                "worst_case_per_digit": self.worst_case, "seconds": round(self.seconds, 3),
                "seconds_to_first_failure": self.first_failure_after, "additions_per_second": round(self.throughput)}


@torch.no_grad()
def check_pairs(model: AdderModel, a: torch.Tensor, b: torch.Tensor, result: SuiteResult, order: list[int]) -> None:
    """Check one chunk and fold it into `result`."""
    dev = model.device
    r = teacher_forced(model, a.to(dev), b.to(dev))
    ok = r.correct.cpu()
    result.cases += len(a)
    result.passed += int(ok.sum())
    if not bool(ok.all()) and len(result.failures) < MAX_KEPT_FAILURES:
        bad = torch.nonzero(~ok).flatten()[: MAX_KEPT_FAILURES - len(result.failures)]
        result.failures += list(zip(a[bad].tolist(), b[bad].tolist()))
    m = r.margin.cpu()[:, order].double()
    m = torch.where(m.isnan(), torch.full_like(m, float("-inf")), m)
    mins, idx = m.min(dim=0)
    if not result.worst_margin:
        result.worst_margin = [float("inf")] * len(order)
        result.worst_case = [None] * len(order)
    for j, (v, i) in enumerate(zip(mins.tolist(), idx.tolist())):
        if v < result.worst_margin[j]:
            result.worst_margin[j] = v
            result.worst_case[j] = [int(a[i]), int(b[i])]


def run_suite(model: AdderModel, name: str, *, seed: int = 0, options: SuiteOptions = SuiteOptions(),
              chunk: int = DEFAULT_CHUNK, progress: Progress | None = None) -> SuiteResult:
    """Run one named suite; `progress(n)` is called with the number of cases just checked."""
    suite = get_suite(name)
    result = SuiteResult(suite=name, seed=seed, options=options)
    order = model.spec.format.digit_order()
    t0 = time.perf_counter()
    for a, b in suite.chunks(seed, chunk, options):
        check_pairs(model, a, b, result, order)
        if result.first_failure_after is None and result.failed:
            result.first_failure_after = time.perf_counter() - t0
        if progress:
            progress(len(a))
    decode_failures(model, result)
    result.seconds = time.perf_counter() - t0
    log.info("%s: %d/%d passed in %.2fs", name, result.passed, result.cases, result.seconds)
    return result


def decode_failures(model: AdderModel, result: SuiteResult) -> None:
    """Greedy-decode a few failing cases: what the model really prints."""
    shown = result.failures[:MAX_DECODED_FAILURES]
    if shown:
        got = add(model, [x for x, _ in shown], [y for _, y in shown])
        result.outputs = {f"{x}+{y}": g for (x, y), g in zip(shown, got)}
