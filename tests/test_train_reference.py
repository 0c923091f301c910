"""The shipped micro57 checkpoint: trained here from scratch, read like any other checkpoint."""

from pathlib import Path

import pytest
import torch

from adder.compiler import checkpoint, ledger
from adder.train.loop import final_test

REF = Path(__file__).resolve().parents[1] / "train" / "reference" / "micro57.pt"


def test_reference_micro57_qualifies():
    meta = torch.load(REF, weights_only=True)["meta"]
    assert meta["recipe"] == "micro57" and meta["seed"] == 777 and meta["validation_seed"] != 2025
    assert REF.stat().st_size < 100_000
    assert ledger(checkpoint.load(REF)).adderboard == 57
    assert final_test(REF)["accuracy"] >= 0.99  # the official 10,010 cases


PROVEN = REF.with_name("micro57-proven.pt")
CERTIFICATE = REF.with_name("micro57-proven.cert.json.xz")


@pytest.mark.integration
def test_the_shipped_learned_model_is_proven_and_its_certificate_rechecks():
    """train/reference/micro57-proven.pt: micro57 trained here (seed 777) and fine-tuned three
    times (docs/train.md), `proven` by `adder prove` on all 10^20 inputs. Its certificate is
    re-verified here by the independent checker, verify/checker (~50 s on a 2-core CPU): 25,211 leaves."""
    from typer.testing import CliRunner

    from adder.cli import app
    from adder.verify.prove import read

    meta = torch.load(PROVEN, weights_only=True)["meta"]
    assert meta["recipe"] == "micro57" and meta["finetune"]["source"]["recipe"] == "micro57"  # learned, not built
    assert ledger(checkpoint.load(PROVEN)).adderboard == 57
    cert = read(CERTIFICATE)
    assert cert["weights_sha256"] == checkpoint.weights_hash(checkpoint.load(PROVEN))
    res = CliRunner().invoke(app, ["prove", str(PROVEN), "--check", str(CERTIFICATE)])
    assert res.exit_code == 0 and "check passed" in res.output, res.output
    assert "25,211 leaves" in res.output and "independent checker" in res.output, res.output
