"""Finishing a run (train/finish.py): the weight average after grokking and the L-BFGS phase.
The average is the formula, resumes bit for bit and is what best.pt holds when it scored best;
the L-BFGS phase lowers the training loss of a real warm-started run, is deterministic for a
seed, and both are refused by populations and checked as hyperparameters in one line."""

from __future__ import annotations

import csv
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from adder.compiler import checkpoint
from adder.compiler.errors import AdderError
from adder.train import data
from adder.train.finish import WeightEMA, lbfgs
from adder.train.loop import evaluate, train
from adder.train.population import train_population
from adder.train.recipes import Hyper, get_recipe

pytestmark = pytest.mark.usefixtures("one_thread")
REF = Path(__file__).resolve().parents[1] / "train" / "reference" / "micro57.pt"
#: The reference micro57 trained on at a constant LR high enough to shake it: its raw weights
#: drop to ~6% held-out exact at step 80 and ~98% at 120 while their average (from step 40,
#: where it is at 74%) stays above 99%.
SHAKEN = dict(curriculum="1-10:rest", eval_every=40, eval_pairs=1000, warmup=10, min_lr_ratio=1.0, lr=0.01,
              ema_after=0.5, ema_decay=0.9)
#: A short AdamW phase at a low LR from the reference, then a few L-BFGS iterations on 1,024 pairs.
FINISHED = dict(curriculum="1-10:rest", steps=20, eval_every=20, eval_pairs=500, warmup=5, lr=1e-3,
                lbfgs_steps=4, lbfgs_batch=1024)


def _ref():
    return checkpoint.load(REF, dtype="float32")


def _params(path: Path) -> dict:
    return dict(checkpoint.load(path).named_spec_params())


def test_the_average_is_the_formula_and_swaps_back():
    model = torch.nn.Linear(3, 2)
    model.bias.requires_grad_(False)  # not trained: not averaged
    ema = WeightEMA(model, after=0.9, decay=0.75)
    ema.follow(0.5)
    ema.update()
    assert not ema.started and ema.state_dict() is None  # below the threshold: nothing yet
    ema.follow(0.95)
    expected = model.weight.detach().clone()
    for t in range(3):
        with torch.no_grad():
            model.weight.add_(t + 1.0)
        ema.update()
        expected = 0.75 * expected + 0.25 * model.weight.detach()
    own = model.weight.detach().clone()
    with ema.swapped():
        torch.testing.assert_close(model.weight.detach(), expected)
    assert torch.equal(model.weight.detach(), own)
    assert len(ema.state_dict()) == 1
    assert not WeightEMA(model, after=0.0, decay=0.9).started  # 0: off, whatever the exact match


def test_resume_with_the_average_continues_exactly_and_best_holds_the_average(tmp_path):
    r = get_recipe("micro57")
    h = replace(r.hyper, **SHAKEN)
    straight = train(r, seed=5, out=tmp_path / "s", hyper=replace(h, steps=120), force=True, warm_start=_ref())
    train(r, seed=5, out=tmp_path / "p", hyper=replace(h, steps=80), force=True, warm_start=_ref())
    ema_at = {80: torch.load(tmp_path / "p" / "last.state.pt", weights_only=True)["ema"]}  # before the resume
    resumed = train(r, seed=5, out=tmp_path / "p", hyper=replace(h, steps=120), resume=tmp_path / "p" / "last.pt")
    for name in ("last.pt", "best.pt"):
        a, b = _params(tmp_path / "s" / name), _params(tmp_path / "p" / name)
        assert all(torch.equal(a[k], b[k]) for k in a), name
    state_s = torch.load(tmp_path / "s" / "last.state.pt", weights_only=True)
    state_p = torch.load(tmp_path / "p" / "last.state.pt", weights_only=True)
    assert state_s["ema"] is not None and all(torch.equal(x, y) for x, y in zip(state_s["ema"], state_p["ema"]))
    assert straight.rows[0]["ema_exact"] is None  # started at that evaluation (74% >= 0.5), scored from the next
    assert (straight.rows[-1]["loss"], straight.rows[-1]["ema_exact"]) == (resumed.rows[-1]["loss"], resumed.rows[-1]["ema_exact"])
    # selection: the average scored best at the last evaluation (or tied with it earlier: the first
    # such evaluation is kept, which float differences between CPUs can make step 80), and best.pt
    # holds the average of that evaluation
    last = straight.rows[-1]
    assert last["ema_exact"] > last["exact"], "SHAKEN no longer shakes the raw weights: pick its LR again"
    meta = checkpoint.read(tmp_path / "s" / "best.pt")["meta"]
    assert meta["weights"] == "ema" and meta["val_exact"] == last["ema_exact"] == straight.best_exact
    assert checkpoint.read(tmp_path / "s" / "last.pt")["meta"]["weights"] == "raw"
    ema_at[120] = state_s["ema"]
    assert [row["ema_exact"] for row in straight.rows if row["step"] == meta["step"]] == [meta["val_exact"]]
    best = checkpoint.load(tmp_path / "s" / "best.pt")
    averaged = [p for p in best.parameters() if p.requires_grad]
    assert all(torch.equal(p.detach(), s) for p, s in zip(averaged, ema_at[meta["step"]]))
    assert evaluate(best, *data.validation_pairs(h.eval_pairs))["exact"] == meta["val_exact"]
    assert meta["hyper"]["ema_after"] == 0.5 and meta["hyper"]["ema_decay"] == 0.9


def _finished(tmp_path: Path, name: str):
    r = get_recipe("micro57")
    return train(r, seed=7, out=tmp_path / name, hyper=replace(r.hyper, **FINISHED), force=True, warm_start=_ref())


def test_the_lbfgs_phase_lowers_the_training_loss_and_is_deterministic(tmp_path):
    res = _finished(tmp_path, "a")
    again = _finished(tmp_path, "b")
    phase = [row for row in res.rows if row.get("phase") == "lbfgs"]
    assert [row["step"] for row in phase] == list(range(20, 25))  # its start, then one row per iteration
    assert phase[-1]["loss"] < phase[0]["loss"]  # on its fixed batch: the loss before vs after the phase
    written = list(csv.DictReader(open(res.metrics)))
    assert [w["phase"] for w in written] == ["train"] + ["lbfgs"] * 5
    assert [float(w["loss"]) for w in written[1:]] == [row["loss"] for row in phase]
    # deterministic for a seed: the same rows and the same selected weights
    assert [(row["loss"], row["min_margin"]) for row in phase] == \
        [(row["loss"], row["min_margin"]) for row in again.rows if row.get("phase") == "lbfgs"]
    a, b = _params(tmp_path / "a" / "best.pt"), _params(tmp_path / "b" / "best.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)
    # best.pt holds what selection read; last.pt stays the AdamW phase's last step
    meta = checkpoint.read(tmp_path / "a" / "best.pt")["meta"]
    assert evaluate(checkpoint.load(tmp_path / "a" / "best.pt"),
                    *data.validation_pairs(FINISHED["eval_pairs"]))["exact"] == meta["val_exact"]
    if meta["weights"] == "lbfgs":
        chosen = next(row for row in phase if row["step"] == meta["step"])
        assert (chosen["exact"], chosen["min_margin"]) > (phase[0]["exact"], phase[0]["min_margin"])
    last = checkpoint.read(tmp_path / "a" / "last.pt")["meta"]
    assert last["step"] == 20 and last["weights"] == "raw" and last["hyper"]["lbfgs_steps"] == 4


def test_lbfgs_iterates_on_a_quadratic():
    """The phase's optimizer really steps (torch's default evaluation cap would leave it still)."""
    model = torch.nn.Linear(2, 1, bias=False)
    target = torch.tensor([[3.0, -2.0]])
    steps = list(lbfgs(model, lambda: ((model.weight - target) ** 2).sum(), 5))
    assert steps == [1, 2, 3, 4, 5]
    torch.testing.assert_close(model.weight.detach(), target)


#: A low LR, so that a population member stays within float rounding of its single run (at 0.003, Adam
#: on a grokked model's tiny gradients turns rounding into 3% loss differences within 40 steps).
GENTLE = dict(SHAKEN, lr=3e-4)


@pytest.mark.integration
def test_a_population_member_keeps_its_weight_average_as_its_single_run_does(tmp_path):
    r = get_recipe("micro57")
    h = replace(r.hyper, steps=120, **GENTLE)
    pop = train_population(r, [3, 4], tmp_path / "pop", h, warm_start=_ref())
    part = train_population(r, [3], tmp_path / "part", replace(h, steps=80), warm_start=_ref())
    single = train(r, seed=3, out=tmp_path / "single", hyper=h, warm_start=_ref())
    resumed = train(r, seed=3, out=tmp_path / "part" / "seed3", hyper=h, resume=tmp_path / "part" / "seed3" / "last.pt")
    assert single.rows[1]["ema_exact"] is not None, "GENTLE's average never started: lower ema_after"
    for member in (pop.runs[0].rows, part.runs[0].rows + resumed.rows):
        assert [row["step"] for row in member] == [row["step"] for row in single.rows]
        for m, s in zip(member, single.rows):
            assert m["loss"] == pytest.approx(s["loss"], rel=1e-4)
            assert (m["ema_exact"] is None) == (s["ema_exact"] is None)
            assert m["ema_exact"] is None or m["ema_exact"] == pytest.approx(s["ema_exact"], abs=2e-3)
    averages = [torch.load(path / "last.state.pt", weights_only=True)["ema"]
                for path in (tmp_path / "single", tmp_path / "pop" / "seed3", tmp_path / "part" / "seed3")]
    assert averages[0] is not None  # the member's average travelled into the resumed run, and matches
    for other in averages[1:]:
        assert all(torch.allclose(x, y, rtol=1e-4, atol=1e-5) for x, y in zip(averages[0], other))
    meta = checkpoint.read(pop.runs[0].checkpoint)["meta"]
    assert meta["weights"] == checkpoint.read(single.checkpoint)["meta"]["weights"]
    assert evaluate(checkpoint.load(pop.runs[0].checkpoint), *data.validation_pairs(h.eval_pairs))["exact"] \
        == pytest.approx(meta["val_exact"], abs=2e-3)


def test_a_population_member_finishes_with_lbfgs_as_its_single_run_does(tmp_path):
    """Members run the phase one after another after the batched steps; each one's phase is its
    single run's (same start, same batch from its generator), to float rounding."""
    r = get_recipe("micro57")
    h = replace(r.hyper, **FINISHED)
    pop = train_population(r, [7, 8], tmp_path / "pop", h, warm_start=_ref())
    single = _finished(tmp_path, "single")  # seed 7
    member = [row for row in pop.runs[0].rows if row.get("phase") == "lbfgs"]
    alone = [row for row in single.rows if row.get("phase") == "lbfgs"]
    assert [row["step"] for row in member] == [row["step"] for row in alone] == list(range(20, 25))
    # the start's loss is on the phase's batch: equal to 1e-4, so the member drew its single run's batch;
    # line searches then amplify the start's last-bit differences (1e-3 after 4 iterations here)
    assert member[0]["loss"] == pytest.approx(alone[0]["loss"], rel=1e-4)
    for m, s in zip(member, alone):
        assert m["loss"] == pytest.approx(s["loss"], rel=1e-2)
        assert m["exact"] == pytest.approx(s["exact"], abs=2e-3)
    assert [row["step"] for row in pop.runs[1].rows if row.get("phase") == "lbfgs"] == list(range(20, 25))
    meta = checkpoint.read(pop.runs[0].checkpoint)["meta"]
    assert meta["weights"] == checkpoint.read(single.checkpoint)["meta"]["weights"]
    assert (pop.runs[0].best_exact, pop.runs[0].best_step) == (meta["val_exact"], meta["step"])
    written = list(csv.DictReader(open(pop.runs[0].metrics)))
    assert [w["phase"] for w in written] == ["train"] + ["lbfgs"] * 5


@pytest.mark.parametrize("sets, message", [
    (["ema_after=1.5"], "ema_after must be"),
    (["ema_after=-0.1"], "ema_after must be"),
    (["ema_decay=1"], "ema_decay must be"),
    (["ema_decay=0"], "ema_decay must be"),
    (["lbfgs_steps=-1"], "lbfgs_steps must be"),
    (["lbfgs_batch=0"], "lbfgs_batch must be"),
    (["lbfgs_steps=1.5"], "wants a int"),
])
def test_bad_finishing_settings_are_refused(sets, message):
    with pytest.raises(AdderError, match=message):
        Hyper().override(sets=sets)


def test_the_finishing_options_are_off_by_default_and_round_trip():
    h = Hyper()
    assert h.ema_after == 0 and h.lbfgs_steps == 0
    on = h.override(sets=["ema_after=0.9", "ema_decay=0.999", "lbfgs_steps=50", "lbfgs_batch=4096"])
    assert Hyper.from_json(on.to_json()) == on and (on.ema_after, on.lbfgs_steps) == (0.9, 50)


def test_a_finetune_refuses_set_rather_than_ignoring_it(tmp_path):
    """A fine-tune takes its own options, not the recipe's: `--set lbfgs_steps=...` there is an error."""
    r = subprocess.run([sys.executable, "-m", "adder", "train", "micro57", "--warm-start", str(REF), "--finetune",
                        "--set", "lbfgs_steps=3", "--out", str(tmp_path / "ft")], capture_output=True, text=True)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().count("\n") == 0 and "--set" in r.stderr
    assert not (tmp_path / "ft").exists()
