"""The Grokfast-EMA gradient filter (train/optim.py) and `--set`: the filter is the formula of the
paper, it resumes exactly, a population member with it follows its single run, and bad settings
are one-line errors."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace

import pytest
import torch

from adder.compiler import checkpoint
from adder.compiler.errors import AdderError
from adder.train.loop import train
from adder.train.optim import make_optimizer
from adder.train.population import train_population
from adder.train.recipes import Hyper, get_recipe

pytestmark = pytest.mark.usefixtures("one_thread")
FLAT = dict(eval_every=40, eval_pairs=200, warmup=10, min_lr_ratio=1.0)
GROKFAST = dict(grokfast_alpha=0.9, grokfast_lamb=2.0)


def _grads(step: int, shapes) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(step)
    return [torch.randn(s, generator=g) for s in shapes]


def _run(opt, params, steps, start=0):
    for t in range(start, steps):
        for p, g in zip(params, _grads(t, [p.shape for p in params])):
            p.grad = g.clone()
        opt.step()


def test_the_filter_adds_lamb_times_the_ema_of_past_gradients():
    shapes = [(3, 2), (4,)]
    filtered = [torch.zeros(s, requires_grad=True) for s in shapes]
    plain = [torch.zeros(s, requires_grad=True) for s in shapes]
    opt = make_optimizer("adamw", [{"params": filtered}], lr=0.1, **GROKFAST)
    ref = make_optimizer("adamw", [{"params": plain}], lr=0.1)
    ema = None
    for t in range(5):  # the paper's formula by hand, fed to the plain optimizer
        gs = _grads(t, shapes)
        ema = [g.clone() for g in gs] if ema is None else [0.9 * e + 0.1 * g for e, g in zip(ema, gs)]
        for p, g, e in zip(plain, gs, ema):
            p.grad = g + 2.0 * e
        ref.step()
        for p, g in zip(filtered, gs):
            p.grad = g.clone()
        opt.step()
    for a, b in zip(filtered, plain):
        torch.testing.assert_close(a, b)
    assert not torch.equal(filtered[0], make_plain_run(shapes)[0]), "the filter changed nothing"


def make_plain_run(shapes):
    params = [torch.zeros(s, requires_grad=True) for s in shapes]
    _run(make_optimizer("adamw", [{"params": params}], lr=0.1), params, 5)
    return params


@pytest.mark.parametrize("name", ["adamw", "adamw-mlx"])
def test_the_filter_state_resumes_exactly(name):
    shapes = [(3, 2), (4,)]
    straight = [torch.zeros(s, requires_grad=True) for s in shapes]
    _run(make_optimizer(name, [{"params": straight}], lr=0.1, **GROKFAST), straight, 6)
    first = [torch.zeros(s, requires_grad=True) for s in shapes]
    opt = make_optimizer(name, [{"params": first}], lr=0.1, **GROKFAST)
    _run(opt, first, 3)
    saved = opt.state_dict()
    assert all("grokfast_ema" in st for st in saved["state"].values())
    second = [p.detach().clone().requires_grad_() for p in first]
    resumed = make_optimizer(name, [{"params": second}], lr=0.1, **GROKFAST)
    resumed.load_state_dict(saved)
    _run(resumed, second, 6, start=3)
    for a, b in zip(straight, second):
        assert torch.equal(a, b)


def test_a_population_member_with_grokfast_follows_its_single_run(tmp_path):
    r = get_recipe("micro57")
    h = replace(r.hyper, steps=120, **FLAT, **GROKFAST)
    pop = train_population(r, [3], tmp_path / "pop", h)
    single = train(r, seed=3, out=tmp_path / "single", hyper=h)
    plain = train(r, seed=3, out=tmp_path / "plain", hyper=replace(h, grokfast_lamb=0.0))
    for m, s in zip(pop.runs[0].rows, single.rows):
        assert m["loss"] == pytest.approx(s["loss"], rel=1e-4)
    assert single.rows[-1]["loss"] != plain.rows[-1]["loss"]
    meta = checkpoint.read(single.checkpoint)["meta"]
    assert meta["hyper"]["grokfast_lamb"] == 2.0 and meta["hyper"]["grokfast_alpha"] == 0.9


@pytest.mark.parametrize("sets, message", [
    (["grokfast_lamb=-1"], "grokfast_lamb must be"),
    (["grokfast_alpha=1"], "grokfast_alpha must be"),
    (["grokfast_lamb=two"], "wants a float"),
    (["nosuch=1"], "NAME one of"),
    (["grokfast_lamb"], "NAME=VALUE"),
    (["carry_fade=1"], "cannot set carry_fade"),
    (["optimizer=sgd"], "optimizer must be one of"),
    (["batch=0"], "batch must be between 1 and"),
    (["lr=nan"], "lr must be"),
])
def test_bad_settings_are_refused(sets, message):
    with pytest.raises(AdderError, match=message):
        Hyper().override(sets=sets)


def test_set_reads_each_field_as_its_type():
    h = Hyper().override(sets=["grokfast_lamb=2", "batch=64", "decay=matrices"])
    assert (h.grokfast_lamb, h.batch, h.decay) == (2.0, 64, "matrices")


def test_the_cli_refuses_a_bad_set_in_one_line(tmp_path):
    r = subprocess.run([sys.executable, "-m", "adder", "train", "micro57", "--set", "grokfast_alpha=2",
                        "--out", str(tmp_path / "run")], capture_output=True, text=True)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().count("\n") == 0 and "grokfast_alpha" in r.stderr
    assert not (tmp_path / "run").exists()
