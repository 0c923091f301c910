"""The verifier end to end: verdicts, failure outputs, arithmetic classes, reports, submissions."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from adder.compiler import add, checkpoint, compile_spec
from adder.constructions import build_spec
from adder.verify.api import verify_model, verify_submission
from adder.verify.exact import ExactModel
from adder.verify.precision import check_precision
from adder.verify.runner import run_suite


pytestmark = pytest.mark.usefixtures("one_thread")


def test_failures_are_real_and_show_the_models_output():
    m = compile_spec(build_spec("tinyadder36"))
    r = run_suite(m, "chains", seed=0)
    assert 0 < r.failed < r.cases and len(r.failures) == min(r.failed, 1000)
    a, b = zip(*r.failures[:20])
    got = add(m, list(a), list(b))
    assert all(g != x + y for g, x, y in zip(got, a, b))  # greedy decoding confirms each failure
    assert all(r.outputs[f"{x}+{y}"] == g for g, x, y in zip(got, a, b))


def test_a_correct_model_passes_and_the_margins_are_positive():
    r = run_suite(compile_spec(build_spec("qwen87")), "chains", seed=1)
    assert r.failed == 0 and r.cases == r.passed
    assert len(r.worst_margin) == 11 and min(r.worst_margin) > 0


@pytest.mark.parametrize("name", ["param40", "qwen87", "tinyadder36"])
def test_exact_arithmetic_agrees_with_float64(name):
    m = compile_spec(build_spec(name), dtype="float64")
    ex = ExactModel(m)
    fmt = m.spec.format
    a, b = torch.tensor([1234567890, 9999999999]), torch.tensor([987654321, 1])
    tokens = torch.cat([fmt.encode(a, b), fmt.answer(a, b)[:, :-1]], 1)
    with torch.no_grad():
        lf = m(tokens)
    for row in range(2):
        le = np.array(ex.logits(tokens[row].tolist()), dtype=float)
        assert np.array_equal(le.argmax(-1), lf[row].numpy().argmax(-1))
        if name != "tinyadder36":  # tinyadder36 cancels 1e17-sized terms; only its decisions compare
            assert np.allclose(le, lf[row].numpy(), rtol=1e-9, atol=1e-9)


def test_failures_are_classed_by_cause():
    # tinyadder36's own flaw: wrong in exact arithmetic too -> construction
    m = compile_spec(build_spec("tinyadder36"))
    bad = [(0, 4_999_999_999)]
    res = check_precision(m, bad + [(12, 34)], ["float64", "exact"], set(bad))
    assert res.classes == [(0, 4_999_999_999, "construction")]
    # the same construction forced into float32 breaks on ordinary sums that exact arithmetic gets right
    m32 = compile_spec(build_spec("tinyadder36"), dtype="float32")
    r = run_suite(m32, "adderboard")
    assert r.failed > 0
    some = r.failures[:3]
    res = check_precision(m32, some, ["float32", "exact"], set(some))
    assert {c for _, _, c in res.classes} == {"precision"}


def test_report_names_the_artifact_and_never_says_proven(tmp_path):
    m = compile_spec(build_spec("param40"))
    rep = verify_model(m, "param40", suites=["adderboard", "chains"], seed=7, search_examples=50)
    data = rep.to_json()
    assert data["ok"] and data["artifact"]["weights_sha256"] == checkpoint.weights_hash(m)
    assert data["seed"] == 7 and [s["suite"] for s in data["suites"]] == ["adderboard", "chains"]
    assert data["verdict"].startswith("no counterexample in") and "proven" not in json.dumps(data).lower()
    assert data["qualification"].endswith("QUALIFIED (threshold 99%)") and "10,010/10,010" in data["qualification"]


def run_cli(monkeypatch, capsys, *args) -> tuple[int, str, str]:
    """`adder ARGS` in this process (no interpreter start-up): exit code, stdout, stderr."""
    from adder import cli

    monkeypatch.setattr(sys, "argv", ["adder", *args])
    with pytest.raises(SystemExit) as e:
        cli.main()
    out = capsys.readouterr()
    return e.value.code, out.out, out.err


def test_cli_verify_exit_codes_and_json(tmp_path, monkeypatch, capsys):
    out = tmp_path / "r.json"
    code, stdout, _ = run_cli(monkeypatch, capsys, "verify", "tinyadder36", "--suite", "chains", "--json", str(out))
    assert code == 1 and "FAILED" in stdout and "construction error" in stdout
    data = json.loads(out.read_text())
    assert data["ok"] is False and data["suites"][0]["failed"] > 0 and data["artifact"]["weights_sha256"]
    code, _, err = run_cli(monkeypatch, capsys, "verify", "param40", "--json", str(out))
    assert code == 2 and "--force" in err
    code, _, err = run_cli(monkeypatch, capsys, "verify", "param40", "--suite", "nope")
    assert code == 2 and "unknown suite" in err and "Traceback" not in err


@pytest.mark.slow
def test_cli_verify_passes_a_correct_model_in_a_real_process(tmp_path):
    out = tmp_path / "r.json"
    ok = subprocess.run([sys.executable, "-m", "adder.cli", "verify", "param40", "--suite", "chains", "--json", str(out)],
                        capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(out.read_text())["ok"] is True


SUBMISSION = '''
import time

class M: pass
def build_model():
    return M(), {"name": "toy", "params": 0}
def add(model, a, b):
    if a == 13:
        raise RuntimeError("unlucky")
    if a == 17:
        time.sleep(30)
    return a + b + (1 if a == 11 else 0)
'''


def test_blackbox_submission_reports_wrong_crashing_and_hanging_calls(tmp_path, monkeypatch):
    sub = tmp_path / "toy.py"
    sub.write_text(SUBMISSION)
    from adder.verify import cases

    monkeypatch.setitem(cases.SUITES, "tiny", cases.Suite(
        "tiny", "test", lambda o: 6,
        lambda seed, o: iter([(torch.tensor([1, 11, 13, 17, 5, 6]), torch.tensor([2, 2, 2, 2, 2, 2]))])))
    rep = verify_submission(sub, suites=["tiny"], timeout=1.0)
    s = rep.suites[0]
    assert (s.cases, s.passed) == (6, 3)
    assert s.outputs["11+2"] == 14 and s.outputs["13+2"].startswith("error") and s.outputs["17+2"] == "timeout"


def test_submission_without_build_model_is_one_line_error(tmp_path):
    sub = tmp_path / "nobuild.py"
    sub.write_text("def add(model, a, b):\n    return a + b\n")
    r = subprocess.run([sys.executable, "-m", "adder.cli", "verify", str(sub)], capture_output=True, text=True)
    assert r.returncode == 2 and "defines no build_model()" in r.stderr and "Traceback" not in r.stderr
