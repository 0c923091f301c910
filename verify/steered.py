"""Hypothesis search for counterexamples, steered by the model's margin.

Each example is one teacher-forced forward pass; `hypothesis.target` pushes towards the
smallest margin (right logit minus best other), so the search walks towards near-failures
instead of sampling blindly, and a failure is shrunk to a minimal one (fewest carries,
smallest digits). Deterministic for a given seed: no example database, fixed seed.

It writes nothing where adder runs: Hypothesis keeps caches (constants it reads from the
source of local modules) under its home folder, `.hypothesis` in the working directory by
default, so a search points that home at a temporary folder, removed afterwards.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from hypothesis import HealthCheck, Phase, given, seed as hseed, settings, target

from ..compiler.decode import add, teacher_forced
from ..compiler.module import AdderModel
from .strategies import addend_pairs, carry_chains

DEFAULT_EXAMPLES = 2000
#: The steering score of a NaN margin (the largest any input gets): the search goes where the model breaks.
BROKEN_SCORE = 1e300


@dataclass
class SearchResult:
    seed: int
    examples: int
    counterexample: tuple[int, int] | None
    output: int | None
    first_failure_after: float | None  # seconds until the first failing example
    min_margin: float
    seconds: float

    def to_json(self) -> dict:
        return {"seed": self.seed, "examples": self.examples,
                "counterexample": list(self.counterexample) if self.counterexample else None,
                "model_output": self.output, "seconds_to_first_failure": self.first_failure_after,
                "min_margin": self.min_margin, "seconds": round(self.seconds, 3)}


def steering_score(margin: float) -> float:
    """What the search maximises: the negative worst margin, kept finite (Hypothesis refuses
    NaN and infinities): a NaN margin, a model broken on this input, scores highest."""
    if margin != margin:
        return BROKEN_SCORE
    return max(-BROKEN_SCORE, min(BROKEN_SCORE, -margin))


def search(model: AdderModel, *, seed: int = 0, max_examples: int = DEFAULT_EXAMPLES) -> SearchResult:
    """Look for a pair the model adds wrongly; return the shrunk counterexample, if any."""
    from hypothesis import strategies as st

    state = {"n": 0, "fail": None, "first": None, "min": float("inf")}
    t0 = time.perf_counter()
    dev = model.device

    @settings(max_examples=max_examples, database=None, deadline=None, print_blob=False,
              phases=[Phase.generate, Phase.target, Phase.shrink], suppress_health_check=list(HealthCheck))
    @hseed(seed)
    @given(pair=st.one_of(addend_pairs(), carry_chains(carry_in=None)))
    def holds(pair):
        a, b = pair
        r = teacher_forced(model, torch.tensor([a], device=dev), torch.tensor([b], device=dev))
        m = float(r.margin.min())
        state["n"] += 1
        state["min"] = min(state["min"], m)
        target(steering_score(m), label="negative worst margin")
        if not bool(r.correct[0]):
            if state["first"] is None:
                state["first"] = time.perf_counter() - t0
            state["fail"] = (a, b)  # the last failure seen is the shrunk one
            raise AssertionError(f"{a} + {b}")

    try:
        with _scratch_hypothesis_home():
            holds()
    except AssertionError:
        pass
    out = add(model, *state["fail"])[0] if state["fail"] else None
    return SearchResult(seed=seed, examples=state["n"], counterexample=state["fail"], output=out,
                        first_failure_after=state["first"], min_margin=state["min"],
                        seconds=time.perf_counter() - t0)


@contextmanager
def _scratch_hypothesis_home() -> Iterator[None]:
    """Hypothesis's home folder in a temporary folder for the duration, then the one it had."""
    from hypothesis import configuration

    home = configuration.storage_directory()
    home = getattr(home, "home_directory", home)  # a StorageDirectory in recent Hypothesis, a Path before
    with tempfile.TemporaryDirectory(prefix="adder-hypothesis-") as scratch:
        configuration.set_hypothesis_home_dir(scratch)
        try:
            yield
        finally:
            configuration.set_hypothesis_home_dir(home)
