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


#: The trained models shipped proven: (checkpoint stem, recipe, AdderBoard parameters, certificate leaves,
#: the recipe whose own training run the checkpoint's record reads back to: the 35p was bridged from the 44p).
PROVEN = [("micro57-proven", "micro57", 57, 25_211, "micro57"),
          ("qwen3-arc-44-proven", "qwen3-arc-44", 44, 99_487, "qwen3-arc-44"),
          ("qwen3-mirror-35-proven", "qwen3-mirror-35", 35, 93_277, "qwen3-arc-44")]


@pytest.mark.integration
@pytest.mark.parametrize("stem,recipe,params,leaves,origin", PROVEN, ids=[p[0] for p in PROVEN])
def test_the_shipped_learned_models_are_proven_and_their_certificates_recheck(stem, recipe, params, leaves, origin):
    """train/reference/STEM.pt: trained here and fine-tuned (docs/train.md), `proven` by `adder prove`
    on all 10^20 inputs. Its certificate is re-verified here by the independent checker,
    verify/checker (micro57: 25,211 leaves, ~50 s on a 2-core CPU; the 44p: 99,487 leaves, ~2 min;
    the 35p: 93,277 leaves, ~2 min)."""
    from typer.testing import CliRunner

    from adder.cli import app
    from adder.verify.prove import read

    path, certificate = REF.with_name(f"{stem}.pt"), REF.with_name(f"{stem}.cert.json.xz")
    assert path.stat().st_size < 100_000 and certificate.stat().st_size < 2_000_000  # the repo stays light
    meta = torch.load(path, weights_only=True)["meta"]
    assert meta["recipe"] == recipe and meta["finetune"]["source"]["recipe"] == recipe  # learned, not built
    assert ledger(checkpoint.load(path)).adderboard == params
    start = meta["finetune"]["source"]
    while "bridge" in start:  # a bridged model: its record reads back through each bridge
        start = start["bridge"]["source"]
    assert start["recipe"] == origin
    cert = read(certificate)
    assert cert["weights_sha256"] == checkpoint.weights_hash(checkpoint.load(path))
    res = CliRunner().invoke(app, ["prove", str(path), "--check", str(certificate)])
    out = " ".join(res.output.split())
    assert res.exit_code == 0 and "check passed" in out, res.output
    assert f"{leaves:,} leaves" in out and "independent checker" in out, res.output
