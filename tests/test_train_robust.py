"""Margins under worst-case float perturbations (train/robust.py): what `--robust` mines and
trains on. They equal the clean margins at zero ulps, fall as the perturbation grows, and the
perturbation leaves masked scores masked and reaches each answer step's own row."""

from dataclasses import replace
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from adder.cli import app
from adder.cli.finetune import parse_robust
from adder.compiler import checkpoint
from adder.compiler.errors import AdderError
from adder.train.finetune import FinetuneOptions, finetune_loss, robust_margins
from adder.train.loop import smallest_margin, teacher_forced_batch
from adder.train.robust import margins, perturbed_logits, row_ulp, sites

REF = Path(__file__).resolve().parents[1] / "train" / "reference" / "micro57.pt"


def _pairs(n=512, seed=3):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 10**10, (n,), generator=g), torch.randint(0, 10**10, (n,), generator=g)


def test_zero_ulps_is_the_clean_pass_and_more_ulps_cost_more_margin():
    model = checkpoint.load(REF, dtype="float32")
    a, b = _pairs()
    tokens, targets = teacher_forced_batch(model.spec.format, a, b)
    with torch.no_grad():
        clean = margins(model(tokens, keep_last=targets.shape[1]), targets)
    assert torch.equal(smallest_margin(clean), robust_margins(model, a, b, (0.0, 0.0)))
    small, large = robust_margins(model, a, b, (1e3, 1e4)), robust_margins(model, a, b, (1e4, 1e5))
    base = smallest_margin(clean)
    # one signed-gradient step against each margin: on average it lowers it, and more so when larger
    assert float((base - small).mean()) > 0 and float((small - large).mean()) > 0
    assert float((small <= base + 1e-4).float().mean()) > 0.95


def test_the_perturbation_is_ulps_of_each_row_and_keeps_masked_scores_masked():
    t = torch.tensor([[3.0, -5.0, float("-inf")], [0.25, 0.1, 0.0]])
    assert torch.equal(row_ulp(t), torch.tensor([[4 * 2.0**-23], [2.0**-25]]))
    model = checkpoint.load(REF, dtype="float32")
    a, b = _pairs(8)
    tokens, targets = teacher_forced_batch(model.spec.format, a, b)
    want = sites(model, 50.0, 0.0)
    assert list(want) == ["blocks.0.attn.scores"]
    logits = perturbed_logits(model, tokens, targets, 50.0)
    cache = {}
    with torch.no_grad():
        model(tokens, keep_last=targets.shape[1], cache=cache)
    # masked scores meet a zero gradient: their push is 0, not inf * 0 = NaN, so every logit stays finite
    assert torch.isinf(cache["blocks.0.attn.scores"]).any() and torch.isfinite(logits).all()


def test_the_robust_loss_trains_on_the_perturbed_margins():
    model = checkpoint.load(REF, dtype="float32")
    a, b = _pairs(64)
    options = replace(FinetuneOptions(), loss="hinge", margin=50.0)
    with torch.no_grad():
        plain = float(finetune_loss(model, a, b, options))
    robust = finetune_loss(model, a, b, replace(options, robust=1e4, robust_out=1e5))
    assert float(robust.detach()) > plain  # lower margins, a larger hinge
    robust.backward()  # and the loss reaches the weights
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


@pytest.mark.parametrize("text, want", [("130", (130.0, 0.0)), ("130,600", (130.0, 600.0))])
def test_robust_option_parses(text, want):
    assert parse_robust(text) == want


@pytest.mark.parametrize("text", ["", "a,b", "1,2,3"])
def test_a_malformed_robust_option_is_one_line(text):
    with pytest.raises(AdderError, match="SCORES"):
        parse_robust(text)
    with pytest.raises(AdderError, match="robust"):
        replace(FinetuneOptions(), robust=-1.0).check()


def test_robust_is_refused_without_a_finetune():
    r = CliRunner().invoke(app, ["train", "micro57", "--robust", "130"])
    assert isinstance(r.exception, AdderError) and "--robust" in str(r.exception)


def test_mine_from_reads_a_proof_reports_findings_and_refuses_what_is_not_one(tmp_path):
    """`--finetune --mine-from REPORT.json`: the weak inputs and counterexample of a proof report,
    so an --until-proven attempt can be re-run from its run folder's attemptN.proof.json."""
    import json

    from adder.train.until_proven import findings_file

    report = tmp_path / "r.json"
    report.write_text(json.dumps({"weak_inputs": [[9, 81], [9, 81], [123, 456]],
                                  "counterexample": {"a": 5, "b": 7, "printed": 13}}))
    a, b = findings_file(report)
    assert a.tolist() == [5, 9, 123] and b.tolist() == [7, 81, 456]  # the counterexample first, each pair once
    for text, says in (("{not json", "not a proof report"), (json.dumps({"weak_inputs": [[10**10, 1]]}), "outside")):
        report.write_text(text)
        with pytest.raises(AdderError, match=says):
            findings_file(report)
    with pytest.raises(AdderError, match="does not exist"):
        findings_file(tmp_path / "none.json")
    r = CliRunner().invoke(app, ["train", "micro57", "--mine-from", str(report)])
    assert isinstance(r.exception, AdderError) and "--mine-from" in str(r.exception)
