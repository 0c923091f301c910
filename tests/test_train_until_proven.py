"""`adder train --until-proven`: the prover's findings reach the fine-tune, a model that is not
proven is never reported proven (no certificate beside it), and a proven one ends the loop with its
certificate beside the checkpoint, which `adder prove --check` re-verifies."""

import pytest
import json
from dataclasses import replace
from pathlib import Path

import torch
from typer.testing import CliRunner

from adder.cli import app
from adder.compiler import checkpoint
from adder.compiler.errors import AdderError
from adder.train.finetune import FinetuneOptions, candidates, finetune_seed, mine
from adder.train.guard import Forbidden
from adder.train.recipes import get_recipe
from adder.train.until_proven import prover_findings
from adder.verify.prove import prove

REFERENCE = Path(__file__).resolve().parents[1] / "train" / "reference"
REF = REFERENCE / "micro57.pt"
#: The reference micro57's counterexample, which the prover finds at answer step 1.
A, B = 9_900_009_900, 9_900_009_900


@pytest.mark.integration
def test_the_provers_findings_are_mined_by_the_fine_tune():
    torch.set_num_threads(1)
    ref = checkpoint.load(REF, dtype="float32")
    report = prove(ref, str(REF), timeout=120, check_libm=False)  # refuted in ~8 s; the rest is slack
    assert report.verdict == "refuted"
    extra = prover_findings(report)
    assert (int(extra[0][0]), int(extra[1][0])) == (report.counterexample["a"], report.counterexample["b"])
    assert len(extra[0]) > 1  # the weak inputs too
    h = replace(get_recipe("micro57").hyper, eval_pairs=1000)
    nothing_else = FinetuneOptions(fresh=0, suite_k=0)  # mine the prover's pairs alone
    mined = mine(ref, candidates(5, 0, nothing_else, h, torch.Generator().manual_seed(finetune_seed(5)), extra),
                 Forbidden.for_run(h.eval_pairs), margin=1.0)
    assert mined.seen == len(extra[0]) and mined.wrong >= 1
    assert (report.counterexample["a"], report.counterexample["b"]) in set(zip(mined.a.tolist(), mined.b.tolist()))


@pytest.mark.integration
def test_a_model_that_stays_refuted_is_not_proven_and_gets_no_certificate(tmp_path):
    out = tmp_path / "up"
    args = ["train", "micro57", "--warm-start", str(REF), "--until-proven", "--attempts", "1", "--prove-timeout", "120",
            "--steps", "20", "--rounds", "1", "--out", str(out)]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 3, res.output
    assert "not proven after 1 fine-tune attempt" in res.output and "proven:" not in res.output
    first = json.loads((out / "attempt0.proof.json").read_text())
    assert first["verdict"] == "refuted" and first["counterexample"]["a"] == A
    meta = checkpoint.read(out / "attempt1" / "best.pt")["meta"]["finetune"]
    assert meta["extra_pairs"] > 1 and meta["source"]["target"] == str(REF)
    assert not (out / "best.cert.json.xz").exists() and not (out / "best.pt").exists()
    again = CliRunner().invoke(app, args)  # the folder holds a run: refused before any proof
    assert isinstance(again.exception, AdderError) and "--force" in str(again.exception)


def test_until_proven_needs_a_start_and_sane_budgets(tmp_path):
    for args, words in ((["--until-proven"], "--warm-start"),
                        (["--until-proven", "--warm-start", str(REF), "--attempts", "-1"], "--attempts"),
                        (["--until-proven", "--warm-start", str(REF), "--prove-timeout", "0"], "--prove-timeout"),
                        (["--until-proven", "--warm-start", str(REF), "--population", "2"], "--population"),
                        # a fine-tune would train micro57's model, which param40 is not: refused before its proof
                        (["--until-proven", "--warm-start", "param40"], "pass --attempts 0")):
        res = CliRunner().invoke(app, ["train", "micro57", "--out", str(tmp_path / "x"), *args])
        assert isinstance(res.exception, AdderError) and words in str(res.exception), (args, res.exception)
    assert not (tmp_path / "x").exists()  # refused before any work


@pytest.mark.integration
def test_a_proven_model_ends_the_loop_with_its_certificate_beside_it(tmp_path):
    """A start the prover proves (the param40 construction, ~10 s; not a micro57, so only proven,
    `--attempts 0`): attempt 0 ends the loop, no fine-tune runs, and the certificate beside the
    checkpoint re-checks."""
    out = tmp_path / "up"
    res = CliRunner().invoke(app, ["train", "micro57", "--warm-start", "param40", "--until-proven", "--attempts", "0",
                                   "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "proven after 0 fine-tune attempt(s)" in res.output and not (out / "attempt1").exists()
    report = json.loads((out / "attempt0.proof.json").read_text())
    assert report["verdict"] == "proven" and report["certificate"] == str(out / "best.cert.json.xz")
    check = CliRunner().invoke(app, ["prove", str(out / "best.pt"), "--check", str(out / "best.cert.json.xz")])
    assert check.exit_code == 0 and "check passed" in check.output, check.output


def test_the_loop_as_a_library_call_with_a_stand_in_prover(tmp_path):
    """`train.until_proven` without the command line: a stand-in prover refutes the warm start (at the
    reference's known counterexample), the loop fine-tunes on it, and the stand-in proves what the
    fine-tune left: best.pt and its certificate sit side by side, the history lists both attempts."""
    from adder.train.until_proven import CERTIFICATE, prepare_run, until_proven
    from adder.verify.prove.report import ProofReport, Verdict

    calls = []

    def stand_in(model, target, *, timeout, certificate):
        calls.append(target)
        report = ProofReport(target, model.spec.name, "0" * 64, "float32")
        if len(calls) == 1:
            report.verdict = Verdict.REFUTED
            report.counterexample = {"a": A, "b": B, "printed": 0, "expected": A + B, "step": 1}
        else:
            report.verdict = Verdict.PROVEN
            Path(certificate).write_text("{}")
        return report

    out, lines = tmp_path / "up", []
    rec = get_recipe("micro57")
    prepare_run(rec, out, str(REF), attempts=1, force=False)
    res = until_proven(rec, replace(rec.hyper, eval_pairs=200), prove=stand_in, seed=1, run_dir=out,
                       warm_start=str(REF), options=FinetuneOptions(steps=10, rounds=1, fresh=64, suite_k=0),
                       attempts=1, prove_timeout=1.0, say=lines.append)
    assert res.proven and [h["verdict"] for h in res.history] == ["refuted", "proven"]
    assert calls == [str(REF), str(out / "attempt1" / "best.pt")]
    assert (out / "best.pt").is_file() and (out / CERTIFICATE).is_file() and res.certificate == str(out / CERTIFICATE)
    assert checkpoint.read(out / "attempt1" / "best.pt")["meta"]["finetune"]["extra_pairs"] >= 1
    assert any("fine-tuning with margin" in line for line in lines)
    with pytest.raises(AdderError, match="--force"):  # the folder now holds a run
        prepare_run(rec, out, str(REF), attempts=1, force=False)


def test_a_real_only_verdict_points_at_robust_margins(tmp_path):
    """Where real arithmetic proves the model and float32 does not, clean margins may not move the
    float bound (the 44p, docs/train.md): the loop says so and names --robust; with it, it does not."""
    from adder.train.until_proven import prepare_run, until_proven
    from adder.verify.prove.report import ProofReport, Verdict

    def stand_in(model, target, *, timeout, certificate):
        report = ProofReport(target, model.spec.name, "0" * 64, "float32")
        report.verdict, report.weak_inputs = Verdict.REAL_ONLY, [[A, B]]
        return report

    rec = get_recipe("micro57")
    for robust, hinted in ((0.0, True), (50.0, False)):
        out, lines = tmp_path / f"up{robust:g}", []
        prepare_run(rec, out, str(REF), attempts=1, force=False)
        until_proven(rec, replace(rec.hyper, eval_pairs=200), prove=stand_in, seed=1, run_dir=out,
                     warm_start=str(REF), options=FinetuneOptions(steps=4, rounds=1, fresh=64, suite_k=0, robust=robust),
                     attempts=1, prove_timeout=1.0, say=lines.append)
        assert any("--robust" in line for line in lines) is hinted, lines
