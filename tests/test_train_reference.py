"""The shipped micro57 checkpoint: trained here from scratch, read like any other checkpoint."""

from pathlib import Path

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
