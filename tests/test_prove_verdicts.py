"""Verdicts never read stronger than what was checked.

* a proof resting on a sampled or unchecked library assumption is `conditional`, never `proven`,
  and names the assumption;
* a budget that runs out says so ("the budget ran out"), never "open in real arithmetic";
* `--timeout` is a finite, positive wall-clock budget;
* `adder verify --prove` is not ok when the proof refutes the model.
"""

import math
import re
import time

import pytest
from typer.testing import CliRunner

from adder.cli import app
from adder.compiler.errors import AdderError
from adder.verify.prove import prove
from adder.verify.prove.api import check_timeout
from adder.verify.prove.report import ProofReport, Verdict
from adder.verify.report import Report

from test_cli import adder_here, one_line_error
from test_prove import _words


def _only_not_proven(text: str) -> None:
    for m in re.finditer("proven", text):
        assert text[max(0, m.start() - 4):m.start()] == "not ", text[max(0, m.start() - 60):m.end() + 20]


def test_an_unchecked_library_assumption_makes_the_proof_conditional(compiled):
    report = prove(compiled("param40"), "param40", check_libm=False, sampled=False)
    assert report.verdict == Verdict.CONDITIONAL, report.summary()
    assert report.unchecked and "not checked (--no-libm-check)" in report.unchecked[0]
    assert {s.verdict for s in report.steps} == {Verdict.CONDITIONAL}
    text = _words(report)
    _only_not_proven(text)
    assert "provided that" in report.summary()
    assert report.to_json()["verdict"] == "conditional"


@pytest.mark.integration
def test_a_float64_proof_with_sampled_library_checks_is_conditional(compiled):
    """zcbtrak6 runs in float64, whose 2^64 library inputs can only be sampled."""
    report = prove(compiled("zcbtrak6"), "zcbtrak6", sampled=False)
    assert report.verdict == Verdict.CONDITIONAL, report.summary()
    assert report.libm and not any(x["exhaustive"] for x in report.libm)
    assert all("random sample" in u for u in report.unchecked) and len(report.unchecked) == len(report.libm)
    _only_not_proven(_words(report))


def test_a_budget_that_runs_out_says_so(compiled):
    report = prove(compiled("param40"), "param40", timeout=0.5, sampled=False)
    assert report.verdict == Verdict.UNDECIDED and report.budget_ran_out
    assert "the budget ran out" in report.summary()
    assert "open in real arithmetic" not in report.summary()
    assert any("budget ran out" in s.reason for s in report.steps if s.verdict == Verdict.UNDECIDED)


@pytest.mark.integration
def test_the_timeout_is_a_wall_clock_limit(compiled):
    """A two-layer model whose search takes minutes stops near its budget (generous slack: the
    sampled margins and the last batch of cases run past it)."""
    t0 = time.perf_counter()
    report = prove(compiled("qwen87"), "qwen87", timeout=5)
    assert time.perf_counter() - t0 < 40
    assert report.verdict == Verdict.UNDECIDED and report.budget_ran_out


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, 0.0, -1.0])
def test_a_timeout_must_be_finite_and_positive(bad):
    with pytest.raises(AdderError, match="--timeout must be a positive finite"):
        check_timeout(bad)
    one_line_error(adder_here("prove", "param40", "--timeout", str(bad)), "--timeout must be a positive finite")


def _report(proof: dict | None) -> Report:
    return Report(target="t", kind="compiled", name="t", weights_sha256="0" * 64, device="cpu", dtype="float32", seed=0,
                  proof=proof)


def test_a_refuting_proof_makes_a_verification_fail():
    refuted = ProofReport("t", "t", "0" * 64, "float64", verdict=Verdict.REFUTED,
                          counterexample={"a": 1999999999, "b": 2999999999, "printed": 5000000000,
                                          "expected": 4999999998, "step": 1}).to_json()
    report = _report(refuted)
    assert not report.ok and report.to_json()["ok"] is False
    assert report.verdict().startswith("FAILED: 1999999999 + 2999999999 prints 5000000000")
    undecided = ProofReport("t", "t", "0" * 64, "float32", reason="budget").to_json()
    assert _report(undecided).ok and _report(None).ok


@pytest.mark.integration
def test_verify_prove_exits_1_on_a_refuted_model(tmp_path):
    r = CliRunner().invoke(app, ["verify", "tinyadder36", "--suite", "adderboard", "--prove", "--prove-timeout", "120",
                                 "--json", str(tmp_path / "v.json")])
    assert r.exit_code == 1, r.output
    import json

    data = json.loads((tmp_path / "v.json").read_text())
    assert data["ok"] is False and data["verdict"].startswith("FAILED") and data["proof"]["verdict"] == "refuted"


@pytest.mark.integration
def test_an_open_multi_head_model_names_the_rule_it_needs(compiled):
    """An undecided one-layer model with several heads says how its heads are bounded (jointly where one
    key carries each head's weight), whatever cut it short."""
    report = prove(compiled("fblissjr33"), "fblissjr33", timeout=3, sampled=False)
    assert report.verdict == Verdict.UNDECIDED
    assert "3 query heads" in report.reason and "joint rule bounds their sum" in report.reason
    single = prove(compiled("param40"), "param40", timeout=0.5, sampled=False)
    assert "query heads" not in single.reason
    deep = prove(compiled("qwen87"), "qwen87", timeout=2, sampled=False)  # two heads, two layers: provable
    assert deep.budget_ran_out and "query heads" not in deep.reason


def test_a_model_without_bound_rules_is_said_so_before_any_search(tmp_path):
    """LayerNorm compiles but has no bound rule: `adder info` says so, and `prove` returns at once
    naming each operation (it used to search first), after only the bound-free probe, which refutes
    this untrained model with a sum greedy decoding confirms; on a correct model the probe finds
    nothing."""
    from adder.compiler.decode import add
    from adder.verify.prove.search import probe_refute
    from adder.compiler import checkpoint, compile_spec
    from adder.train.recipes import get_recipe
    from adder.verify.prove.support import unsupported

    model = compile_spec(get_recipe("split-d6-260").build(), seed=1)
    missing = unsupported(model.spec)
    assert missing and all("layer norm, which has no bound rule yet" in m for m in missing)
    t0 = time.perf_counter()
    report = prove(model, "split-d6-260", timeout=600)
    assert time.perf_counter() - t0 < 5 and report.verdict == Verdict.REFUTED
    assert report.reason.startswith("not provable yet: ") and "final norm is a layer norm" in report.reason
    c = report.counterexample
    assert c["printed"] == add(model, c["a"], c["b"])[0] != c["a"] + c["b"] and "bound-free probe" in c["found_by"]
    assert "found by the bound-free probe" in report.summary()
    from adder.constructions import build_spec
    assert probe_refute(compile_spec(build_spec("param40"))) is None  # proven correct: the probe must not refute it
    path = checkpoint.save(model, tmp_path / "s.pt")
    r = adder_here("info", path)
    assert r.returncode == 0 and "prover: cannot bound it yet: " in r.stdout and "layer norm" in r.stdout
    assert "prover: every operation has a bound rule" in adder_here("info", "param40").stdout
    assert unsupported(compile_spec(get_recipe("micro57").build()).spec) == []
