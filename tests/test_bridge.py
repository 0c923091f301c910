"""Bridging (`adder train RECIPE --bridge-from CKPT`, train/bridge.py): the fit starts where the
trained model is, the annealed differences end at exactly zero, and the tied model then computes
what the bridge computed, bit for bit; what cannot be bridged is one line before any work."""

from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from adder.cli import app
from adder.compiler import checkpoint
from adder.compiler.errors import AdderError
from adder.compiler.module import compile_spec
from adder.train.bridge import (Anneal, bridge_recipe, comparable_weights, effective_weights, fit, slack_params,
                                 tied_model)
from adder.train.recipes import get_recipe

SOURCE = Path(__file__).resolve().parents[1] / "train" / "reference" / "qwen3-arc-44-proven.pt"
TOKENS = torch.randint(0, 10, (64, 30), generator=torch.Generator().manual_seed(3))
PAIRS = tuple(torch.randint(0, 10**10, (256,), generator=torch.Generator().manual_seed(s)) for s in (1, 2))


@pytest.fixture(scope="module")
def fitted():
    """qwen3-mirror-38's bridge layout fitted to the shipped trained 44p."""
    torch.set_num_threads(1)
    source = checkpoint.load(SOURCE, dtype="float32")
    bridge = compile_spec(bridge_recipe(get_recipe("qwen3-mirror-38")).build(), seed=0)
    return source, bridge, fit(bridge, source, PAIRS)


def test_the_fit_starts_the_bridge_where_the_trained_model_is(fitted):
    source, bridge, info = fitted
    assert info["gap"] < 1e-6 < 1e-3 < info["tied_gap"]  # the ties alone cannot hold it; with differences, exact
    assert all(n > 0.1 for n in info["slack_norms"].values())
    with torch.no_grad():
        gap = (bridge(TOKENS) - source(TOKENS)).abs().max()
        scale = source(TOKENS).abs().max()
    assert gap < 1e-4 * scale  # float32 rounding of a weight fit to ~1e-6 relative
    assert set(effective_weights(bridge)) == set(effective_weights(source))


def test_annealed_differences_reach_zero_and_the_tied_model_computes_the_same(fitted):
    _, bridge, _ = fitted
    b = compile_spec(bridge.spec, seed=0)
    b.load_state_dict(bridge.state_dict())
    anneal = Anneal({n: float(p.detach().norm()) for n, p in slack_params(b).items()}, steps=4)
    caps = []
    for done in range(1, 5):
        with torch.no_grad():
            for p in slack_params(b).values():
                p.mul_(3.0)  # a step that pushes the differences out: the projection pulls them back
        anneal(b, done)
        caps.append(sum(float(p.detach().norm()) for p in slack_params(b).values()))
    assert caps == sorted(caps, reverse=True) and caps[-1] == 0.0
    tied = tied_model(get_recipe("qwen3-mirror-38"), b)
    assert sum(p.numel() for p in tied.parameters()) == 38
    with torch.no_grad():
        assert torch.equal(tied(TOKENS), b(TOKENS))


def test_a_tied_model_is_refused_while_a_difference_is_open(fitted):
    _, bridge, _ = fitted
    with pytest.raises(AdderError, match="not zero yet"):
        tied_model(get_recipe("qwen3-mirror-38"), bridge)


def test_a_recipe_without_a_bridge_layout_is_one_line():
    with pytest.raises(AdderError, match="has no bridge layout"):
        bridge_recipe(get_recipe("qwen3-arc-36"))


@pytest.mark.parametrize("args,message", [
    (["qwen3-arc-36", "--bridge-from", str(SOURCE)], "has no bridge layout"),
    (["qwen3-mirror-38", "--bridge-from", str(SOURCE), "--finetune"], "does not take --finetune"),
    (["qwen3-mirror-38", "--bridge-from", "nosuchmodel"], "nosuchmodel"),
])
def test_bridge_errors_are_one_line_before_any_work(tmp_path, args, message):
    r = CliRunner().invoke(app, ["train", *args, "--out", str(tmp_path / "b")])
    assert isinstance(r.exception, AdderError) and message in str(r.exception) and "\n" not in str(r.exception)
    assert not (tmp_path / "b" / "bridge").exists()


@pytest.mark.integration
def test_a_short_bridge_run_writes_a_tied_checkpoint_that_records_its_source(tmp_path):
    out = tmp_path / "b"
    r = CliRunner().invoke(app, ["train", "qwen3-mirror-38", "--bridge-from", str(SOURCE), "--steps", "20",
                                 "--out", str(out), "--no-final-test"])
    assert r.exit_code == 0, r.output
    ck = checkpoint.read(out / "bridged.pt")
    assert ck["meta"]["recipe"] == "qwen3-mirror-38" and ck["meta"]["bridge"]["steps"] == 20
    assert ck["meta"]["bridge"]["source"]["weights_sha256"] == checkpoint.weights_hash(checkpoint.load(SOURCE))
    assert sum(p.numel() for p in checkpoint.load(out / "bridged.pt").parameters()) == 38
    again = CliRunner().invoke(app, ["train", "qwen3-mirror-38", "--bridge-from", str(SOURCE), "--steps", "20",
                                     "--out", str(out), "--no-final-test"])
    assert isinstance(again.exception, AdderError) and "--force" in str(again.exception)
    resumed = CliRunner().invoke(app, ["train", "qwen3-mirror-38", "--resume", str(out / "bridged.pt")])
    assert isinstance(resumed.exception, AdderError) and "bridged checkpoint" in str(resumed.exception)


def a_38p_model(fitted) -> "AdderModel":
    """A qwen3-mirror-38 model: the fitted bridge with its differences set to zero (another function
    than the 44p's, but one of the tied layout)."""
    _, bridge, _ = fitted
    b = compile_spec(bridge.spec, seed=0)
    b.load_state_dict(bridge.state_dict())
    with torch.no_grad():
        for p in slack_params(b).values():
            p.zero_()
    return tied_model(get_recipe("qwen3-mirror-38"), b)


def test_comparable_weights_divide_out_a_hidden_units_scale_and_a_norms(fitted):
    m = a_38p_model(fitted)
    moved = compile_spec(m.spec, seed=0)
    moved.load_state_dict(m.state_dict())
    with torch.no_grad():
        moved.param("mlp.up")[0] *= 3.0  # the first hidden unit's scale from down to up
        moved.param("mlp.down_arc")[:, 0] /= 3.0
        moved.param("norm")[2] *= 2.0  # the dimension only the MLP reads: its scale into gate and up
        moved.param("mlp.gate")[:, 2] /= 2.0
        moved.param("mlp.up")[:, 2] /= 2.0
        assert (moved(TOKENS) - m(TOKENS)).abs().max() < 1e-5 * m(TOKENS).abs().max()  # the same function
    raw, mine = effective_weights(m), effective_weights(moved)
    assert not torch.allclose(raw["blocks.1.mlp.up"], mine["blocks.1.mlp.up"])
    same, other = comparable_weights(m), comparable_weights(moved)
    assert set(same) == set(other) and all(torch.allclose(same[k], other[k], rtol=1e-5, atol=1e-5) for k in same)


@pytest.mark.integration
def test_exact_symmetries_fixed_by_a_layout_are_fitted_exactly(fitted):
    source = a_38p_model(fitted)
    bridge = compile_spec(bridge_recipe(get_recipe("qwen3-mirror-35")).build(), seed=0)
    info = fit(bridge, source, PAIRS)
    assert info["tied_gap"] < 1e-6 and info["matched"] in ("ties", "logits")  # no difference needed: the same function
    assert all(n < 1e-5 for n in info["slack_norms"].values())
