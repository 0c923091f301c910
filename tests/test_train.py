"""The trainer: loss falls, checkpoints round-trip, runs repeat, bad input is one line."""

from dataclasses import replace

import pytest
import torch

from adder.compiler import checkpoint, ledger
from adder.compiler.errors import AdderError
from adder.train import data
from adder.train.loop import train
from adder.train.recipes import get_recipe

from test_cli import adder

TINY = dict(steps=240, eval_every=80, eval_pairs=300, warmup=50)


def tiny_run(tmp_path, seed=3, name="run"):
    r = get_recipe("micro57")
    return train(r, seed=seed, out=tmp_path / name, hyper=replace(r.hyper, **TINY), force=True)


def test_loss_falls_and_the_checkpoint_round_trips(tmp_path):
    torch.set_num_threads(1)
    res = tiny_run(tmp_path)
    losses = [row["loss"] for row in res.rows]
    assert losses[-1] < losses[0] * 0.8, losses
    m = checkpoint.load(res.checkpoint)
    assert ledger(m).adderboard == 57
    meta = torch.load(res.checkpoint, weights_only=True)["meta"]
    assert meta["recipe"] == "micro57" and meta["seed"] == 3 and meta["hyper"]["steps"] == 240
    assert meta["validation_seed"] != 2025
    assert (tmp_path / "run" / "metrics.csv").read_text().startswith("step,loss")


def test_same_seed_same_metrics(tmp_path):
    torch.set_num_threads(1)
    a, b = tiny_run(tmp_path, name="a"), tiny_run(tmp_path, name="b")
    assert a.rows[-1]["loss"] == b.rows[-1]["loss"] and a.rows[-1]["token_acc"] == b.rows[-1]["token_acc"]
    assert torch.equal(checkpoint.load(a.checkpoint).param("head"), checkpoint.load(b.checkpoint).param("head"))


def test_samplers_respect_curriculum_and_carry_mix():
    phases = data.parse_curriculum("1-3:100,1-6:100,1-10:rest")
    g = torch.Generator().manual_seed(0)
    a, b = data.training_batch(50, 2000, phases, 0.0, (0, 1), g)
    assert int(a.max()) < 1000 and int(b.max()) < 1000
    ha, hb = data.carry_heavy_pairs(2000, 10, g)
    from adder.compiler.digits import longest_chain
    uniform_chain = longest_chain(*data.uniform_pairs(2000, 10, 10, g)).double().mean()
    assert longest_chain(ha, hb).double().mean() > 1.5 * uniform_chain  # carry-heavy really is
    assert data.carry_mix_at(0, 0.8, (10, 20)) == 0.8 and data.carry_mix_at(15, 0.8, (10, 20)) == pytest.approx(0.4)
    assert data.carry_mix_at(25, 0.8, (10, 20)) == 0.0


def digit_count(x: torch.Tensor) -> torch.Tensor:
    return torch.tensor([len(str(v)) for v in x.tolist()])


def test_operands_drawn_by_length_first():
    """'lengths': both operands have the pair's k digits, k uniform over the phase; 'bounds': both
    below 10^k, so short operands are common; 'values': nine in ten operands are full-length."""
    phases = data.parse_curriculum("2-10:rest")
    g = torch.Generator().manual_seed(1)
    a, b = data.training_batch(0, 20_000, phases, 0.0, (0, 1), g, operands="lengths")
    ka, kb = digit_count(a), digit_count(b)
    assert torch.equal(ka, kb) and int(ka.min()) == 2 and int(ka.max()) == 10
    assert torch.bincount(ka)[2:].double().div(len(a)).sub(1 / 9).abs().max() < 0.01
    a, b = data.training_batch(0, 20_000, phases, 0.0, (0, 1), g, operands="bounds")
    short = (digit_count(a) <= 2).double().mean()  # k = 2 always, else 10^2/10^k of the range
    assert abs(short - sum(100 / 10**k for k in range(2, 11)) / 9) < 0.01 and int(b.max()) < 10**10
    a, _ = data.training_batch(0, 20_000, phases, 0.0, (0, 1), g)
    assert (digit_count(a) == 10).double().mean() > 0.88
    with pytest.raises(AdderError, match="operands must be one of"):
        data.training_batch(0, 10, phases, 0.0, (0, 1), g, operands="digits")


@pytest.mark.parametrize("bad", ["1-3", "0-3:10,1-10:rest", "3-1:10", "1-3:rest,1-10:100", "1-3:-5,1-10:rest"])
def test_impossible_curriculum(bad):
    with pytest.raises(AdderError, match="impossible curriculum"):
        data.parse_curriculum(bad)


def test_cli_errors_are_one_line(tmp_path):
    def run(*args):
        return adder("train", *args, cwd=tmp_path)

    for args, msg in ((("nope",), "unknown recipe"), (("micro57", "--curriculum", "1-99:5"), "impossible curriculum")):
        r = run(*args)
        assert r.returncode == 2 and msg in r.stderr and "Traceback" not in r.stderr
    other = tmp_path / "p40.pt"
    assert adder("build", "param40", "-o", other).returncode == 0
    r = run("micro57", "--resume", str(other), "--steps", "10")
    assert r.returncode == 2 and "not of recipe 'micro57'" in r.stderr
    lst = run("--list")
    assert lst.returncode == 0 and "micro57" in lst.stdout
