"""`verify_model` / `verify_submission`: run suites, search and precision checks into a Report."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Callable, Iterator

import torch

from .submissions.blackbox import (CRASH, DEFAULT_TIMEOUT, ERROR, NOT_INT, NOT_RUN, OK, TIMEOUT, WORKERS, BlackBox,
                                Outcome)
from ..compiler.checkpoint import weights_hash
from ..compiler.ledger import ledger
from ..compiler.module import AdderModel
from ..compiler.spec import Attention
from .cases import ADVERSARIAL, SuiteOptions, get_suite, official_pairs
from .precision import check_precision
from .report import Report
from .runner import DEFAULT_CHUNK, MAX_DECODED_FAILURES, MAX_KEPT_FAILURES, SuiteResult, run_suite
from .steered import search
from .verdicts import Verdict  # noqa: F401  (re-exported: train/ reads proof verdicts through this door)

#: Failing cases re-evaluated in other arithmetics to class them.
MAX_CLASSIFIED = 40
#: Official cases added to the precision sample when --precision is asked for.
PRECISION_SAMPLE = 200
#: A submission's calls by outcome, in the order the report lists them.
CALL_OUTCOMES = ("right", "wrong", ERROR, NOT_INT, TIMEOUT, CRASH, NOT_RUN)


def suite_count(names: list[str], options: SuiteOptions) -> int:
    """Cases the suites `names` hold under `options`."""
    return sum(get_suite(n).count(options) for n in names)


def official_cases() -> list[tuple[int, int]]:
    """AdderBoard's 10,010 qualification cases as pairs: what training must never see (its leakage guard)."""
    return official_pairs()


def adversarial_cases(seed: int, options: SuiteOptions,
                      size: int = DEFAULT_CHUNK) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The adversarial suites' cases (carry, chains, window; never the official suite) in chunks
    of `size`: where fine-tuning mines its hard pairs (a fresh `seed` gives fresh instances)."""
    for name in ADVERSARIAL:
        yield from get_suite(name).chunks(seed, size, options)


def official_suite(model: AdderModel) -> SuiteResult:
    """AdderBoard's 10,010 qualification cases on `model` (training's final test; never used to select)."""
    return run_suite(model, "adderboard")


def audit(model: AdderModel) -> dict:
    """The AdderBoard rules that can be read off a compiled model."""
    spec = model.spec
    led = ledger(model)
    claimed = spec.meta.get("claimed_params")
    n_att = sum(isinstance(b.layer, Attention) for b in spec.blocks)
    return {
        "self-attention layers": f"{n_att} ({'ok' if n_att >= 1 else 'FAIL: none'})",
        "forward": "AdderModel: tokens [B, T] -> logits [B, T, V], no addition-specific code",
        "decoding": "generic greedy loop (adder.compiler.decode.generate)",
        "params": f"{led.adderboard} counted" + (f" vs {claimed} claimed ({'ok' if claimed == led.adderboard else 'MISMATCH'})"
                                                 if claimed is not None else "") + f", strict {led.strict}",
    }


def verify_model(model: AdderModel, target: str, *, suites: list[str], seed: int = 0,
                 options: SuiteOptions = SuiteOptions(), search_examples: int | None = None,
                 precision: list[str] | None = None, chunk: int = DEFAULT_CHUNK,
                 progress: Callable[[int], None] | None = None) -> Report:
    """Run `suites` (then the Hypothesis search and precision checks, if asked for) on `model`."""
    t0 = time.perf_counter()
    report = Report(target=target, kind="compiled", name=model.spec.name, weights_sha256=weights_hash(model),
                    device=str(model.device), dtype=str(model.dtype).replace("torch.", ""), seed=seed,
                    audit=audit(model), settings={"chunk": chunk, "threads": torch.get_num_threads()})
    for name in suites:
        report.suites.append(run_suite(model, name, seed=seed, options=options, chunk=chunk, progress=progress))
    if search_examples:
        report.search = search(model, seed=seed, max_examples=search_examples)
        if progress:
            progress(0)
    failing = [f for s in report.suites for f in s.failures[:MAX_CLASSIFIED // max(1, len(suites))]]
    if report.search and report.search.counterexample:
        failing.insert(0, tuple(report.search.counterexample))
    failing = list(dict.fromkeys(failing))[:MAX_CLASSIFIED]
    if precision:
        worst = [tuple(c) for s in report.suites for c in s.worst_case if c]
        pairs = list(dict.fromkeys(failing + worst + official_pairs()[:PRECISION_SAMPLE]))
        report.precision = check_precision(model, pairs, precision, set(failing))
    elif failing:
        report.precision = check_precision(model, failing, ["exact"], set(failing))
    report.seconds = time.perf_counter() - t0
    return report


def suite_pairs(name: str, seed: int, options: SuiteOptions) -> list[tuple[int, int]]:
    """A suite's cases as Python ints: the same cases, in the same order, that `run_suite` checks."""
    return [(int(x), int(y)) for a, b in get_suite(name).blocks(seed, options) for x, y in zip(a.tolist(), b.tolist())]


def judge_outcomes(name: str, seed: int, options: SuiteOptions, pairs: list[tuple[int, int]],
                   outcomes: list[Outcome], started: float) -> SuiteResult:
    """A suite's result from the black box's outcomes (`started`: perf_counter at the suite's start)."""
    res = SuiteResult(suite=name, seed=seed, options=options, cases=len(pairs))
    for (a, b), outcome in zip(pairs, outcomes):
        if outcome.correct(a, b):
            res.passed += 1
            continue
        after = outcome.at - started
        if res.first_failure_after is None or after < res.first_failure_after:
            res.first_failure_after = after
        if len(res.failures) < MAX_KEPT_FAILURES:
            res.failures.append((a, b))
            if len(res.outputs) < MAX_DECODED_FAILURES:
                res.outputs[f"{a}+{b}"] = outcome.shown()
    res.seconds = time.perf_counter() - started
    return res


def tally(pairs: list[tuple[int, int]], outcomes: list[Outcome]) -> Counter:
    """How many calls came to each of CALL_OUTCOMES ('wrong': an int, not the sum)."""
    return Counter("right" if o.correct(a, b) else "wrong" if o.status == OK else o.status
                   for (a, b), o in zip(pairs, outcomes))


def verify_submission(path: Path, *, suites: list[str], seed: int = 0, options: SuiteOptions = SuiteOptions(),
                      timeout: float = DEFAULT_TIMEOUT, sandbox: bool = False,
                      progress: Callable[[int], None] | None = None) -> Report:
    """Black-box: only the answers of `add()` are judged; margins are not available. The
    file's code runs with the caller's rights (confined by resource limits with `sandbox`)."""
    t0 = time.perf_counter()
    report = Report(target=str(path), kind="submission", name=path.stem, weights_sha256=None, device="cpu",
                    dtype=None, seed=seed, settings={"timeout": timeout, "sandbox": sandbox, "workers": WORKERS})
    calls: Counter = Counter()
    with BlackBox(path, timeout=timeout, sandbox=sandbox, workers=WORKERS) as box:
        for name in suites:
            started = time.perf_counter()
            pairs = suite_pairs(name, seed, options)
            outcomes = box.run(pairs, progress=progress)
            report.suites.append(judge_outcomes(name, seed, options, pairs, outcomes, started))
            calls.update(tally(pairs, outcomes))
    meta = box.metadata or {}
    report.audit = {"metadata params": meta.get("params", "?"), "name": meta.get("name", "?"),
                    "note": "black-box: parameters and architecture are the submission's own claims"}
    report.black_box = {"calls": {k: calls[k] for k in CALL_OUTCOMES if calls[k]}, "printed_bytes": box.printed_bytes,
                        "sandbox": box.limits, "gave_up": box.gave_up}
    report.seconds = time.perf_counter() - t0
    return report
