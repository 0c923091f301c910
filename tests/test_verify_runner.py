"""The verifier end to end: verdicts, failure outputs, arithmetic classes, reports, submissions."""

import json
import re
import subprocess
import sys
from pathlib import Path

import hypothesis
import numpy as np
import pytest
import torch

from adder.compiler import add, checkpoint, compile_spec
from adder.constructions import build_spec
from adder.verify.api import suite_pairs, verify_model, verify_submission
from adder.verify.cases import SUITES, SuiteOptions, get_suite
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


@pytest.mark.integration
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
    assert s.outputs == {"11+2": 14, "13+2": "error (RuntimeError: unlucky)", "17+2": "timeout (no answer within 1 s)"}
    assert s.first_failure_after is not None and 0 <= s.first_failure_after <= s.seconds
    assert rep.black_box["calls"] == {"right": 3, "wrong": 1, "error": 1, "timeout": 1}
    assert rep.to_json()["settings"] == {"timeout": 1.0, "sandbox": False, "workers": 2}


def test_submission_without_build_model_is_one_line_error(tmp_path):
    sub = tmp_path / "nobuild.py"
    sub.write_text("def add(model, a, b):\n    return a + b\n")
    r = subprocess.run([sys.executable, "-m", "adder.cli", "verify", str(sub)], capture_output=True, text=True)
    assert r.returncode == 2 and "defines no build_model()" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("option", [["--search"], ["--adversarial"], ["--examples", "10"], ["--precision", "float32"],
                                    ["--dtype", "float64"], ["--device", "cpu"], ["--chunk", "10"], ["--threads", "2"],
                                    ["--prove"], ["--prove-timeout", "5"]])
def test_options_that_need_a_compiled_model_are_refused_for_a_submission(tmp_path, monkeypatch, capsys, option):
    sub = tmp_path / "toy.py"
    sub.write_text(SUBMISSION)
    code, out, err = run_cli(monkeypatch, capsys, "verify", str(sub), *option)
    assert code == 2 and err.startswith(f"error: {option[0]} does not apply to a submission file: ")
    assert len(err.strip().splitlines()) == 1 and out == ""  # refused before the file runs


@pytest.mark.parametrize("option", [["--timeout", "5"], ["--sandbox"]])
def test_submission_options_are_refused_for_a_compiled_model(monkeypatch, capsys, option):
    code, _, err = run_cli(monkeypatch, capsys, "verify", "param40", *option)
    assert code == 2 and err.startswith(f"error: {option[0]} applies to submission files only: ")


@pytest.mark.parametrize("bad", ["0", "-1", "inf", "nan"])
def test_the_timeout_must_be_positive_and_finite(tmp_path, monkeypatch, capsys, bad):
    sub = tmp_path / "toy.py"
    sub.write_text(SUBMISSION)
    code, _, err = run_cli(monkeypatch, capsys, "verify", str(sub), "--timeout", bad)
    assert code == 2 and err.startswith("error: --timeout must be a finite number of seconds > 0") and "Traceback" not in err


def test_cases_are_the_same_for_any_chunk_and_for_submission_files():
    options = SuiteOptions(n=5000)
    for name in SUITES:
        pairs = suite_pairs(name, 5, options)
        assert len(pairs) == get_suite(name).count(options)
        for size in (1000, 4096, 100_000):
            chunked = [(x, y) for a, b in get_suite(name).chunks(5, size, options) for x, y in zip(a.tolist(), b.tolist())]
            assert chunked == pairs, (name, size)


@pytest.fixture(scope="module")
def tinyadder36_chains_failures():
    """tinyadder36's failing chains cases (seed 3) at three chunk sizes."""
    m = compile_spec(build_spec("tinyadder36"))
    return {size: set(run_suite(m, "chains", seed=3, chunk=size).failures) for size in (1000, 4096, 100_000)}


def test_failures_are_the_same_for_any_chunk(tinyadder36_chains_failures):
    by_chunk = tinyadder36_chains_failures
    assert by_chunk[1000] and by_chunk[1000] == by_chunk[4096] == by_chunk[100_000]


@pytest.mark.slow
def test_the_exported_file_fails_on_the_same_cases(tmp_path, tinyadder36_chains_failures):
    ckpt, sub = tmp_path / "ta.pt", tmp_path / "ta.py"
    for args in (["build", "tinyadder36", "-o", str(ckpt)], ["export", str(ckpt), "-o", str(sub)]):
        subprocess.run([sys.executable, "-m", "adder.cli", *args], check=True, capture_output=True)
    rep = verify_submission(sub, suites=["chains"], seed=3)
    assert set(rep.suites[0].failures) == tinyadder36_chains_failures[4096]


def documented_example() -> str:
    """The code block of docs/verify.md that holds the property-based test users copy."""
    text = (Path(__file__).resolve().parents[1] / "docs" / "verify.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    [block] = [b for b in blocks if "def test_my_model_adds" in b]
    return block


@pytest.mark.parametrize("name, catches", [("tinyadder36", True), ("param40", False)])
def test_the_documented_hypothesis_example_catches_a_broken_model(tmp_path, monkeypatch, name, catches):
    """docs/verify.md's example, run as written on `my_model.pt` (seed pinned for a repeatable test)."""
    checkpoint.save(compile_spec(build_spec(name)), tmp_path / "my_model.pt")
    monkeypatch.chdir(tmp_path)  # the example loads my_model.pt; Hypothesis keeps its database here
    namespace: dict = {}
    exec(compile(documented_example(), "docs/verify.md", "exec"), namespace)
    test = hypothesis.seed(0)(namespace["test_my_model_adds"])
    if catches:
        with pytest.raises(AssertionError, match="worst margin"):
            test()
    else:
        test()
