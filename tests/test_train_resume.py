"""Trainer details: exact resume, the Xavier initialiser, the family carry sampler, decay groups."""

import math
from dataclasses import replace

import pytest
import torch

from adder.compiler import checkpoint
from adder.compiler.builder import Construction
from adder.compiler.errors import AdderError
from adder.compiler.formats import PromptFormat
from adder.compiler.module import compile_spec
from adder.train import data
from adder.train.loop import train
from adder.train.recipes import get_recipe

# constant LR after a short warm-up: the schedule does not depend on the total step count
FLAT = dict(eval_every=40, eval_pairs=200, warmup=10, min_lr_ratio=1.0)


def test_resume_continues_exactly(tmp_path):
    torch.set_num_threads(1)
    r = get_recipe("micro57")
    straight = train(r, seed=5, out=tmp_path / "s", hyper=replace(r.hyper, steps=120, **FLAT), force=True)
    train(r, seed=5, out=tmp_path / "p", hyper=replace(r.hyper, steps=80, **FLAT), force=True)
    resumed = train(r, seed=0, out=tmp_path / "p", hyper=replace(r.hyper, steps=120, **FLAT),
                    resume=tmp_path / "p" / "last.pt")
    assert resumed.seed == 5  # the seed comes from the checkpoint
    a = dict(checkpoint.load(tmp_path / "s" / "last.pt").named_spec_params())
    b = dict(checkpoint.load(tmp_path / "p" / "last.pt").named_spec_params())
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert straight.rows[-1]["loss"] == resumed.rows[-1]["loss"]
    meta = torch.load(tmp_path / "p" / "last.pt", weights_only=True)["meta"]
    assert meta["step"] == 120 and meta["seed"] == 5 and {"torch_version", "adder_version", "python"} <= set(meta)
    with pytest.raises(AdderError, match="already at step"):
        train(r, seed=5, out=tmp_path / "p", hyper=replace(r.hyper, steps=120, **FLAT), resume=tmp_path / "p" / "last.pt")


def test_xavier_init_is_seeded_and_bounded():
    spec = _spec_with_xavier()
    m1, m2 = compile_spec(spec, seed=1), compile_spec(spec, seed=1)
    t, bound = m1.param("w").detach().double(), math.sqrt(6 / 700)  # U(+-sqrt(6 / (fan_in + fan_out)))
    assert float(t.abs().max()) <= bound and float(t.std()) == pytest.approx(bound / math.sqrt(3), rel=0.05)
    assert torch.equal(m1.param("w"), m2.param("w"))
    assert not torch.equal(m1.param("w"), compile_spec(spec, seed=2).param("w"))


def _spec_with_xavier():
    c = Construction("x", vocab=[str(d) for d in range(10)],
                     fmt=PromptFormat(prompt=(("a", "lsb"), 0, ("b", "lsb"), 0)), slots=[("h", 300)])
    w = c.free("w", (400, 300), init="xavier")
    c.embed(c.free("e", (10, 300), init="normal"))
    c.mlp(up=w, down=c.free("d", (300, 400), init="zeros"))
    c.unembed(c.free("o", (10, 300)))
    return c.build()


def test_family_sampler_keeps_the_phase_and_carries():
    from adder.compiler.digits import longest_chain

    g = torch.Generator().manual_seed(0)
    a, b = data.carry_family_pairs(4000, 1, 3, g)
    assert int(a.max()) < 1000 and int(b.max()) <= 1000
    a, b = data.carry_family_pairs(4000, 10, 10, g)
    ua, ub = data.uniform_pairs(4000, 10, 10, g)
    assert (longest_chain(a, b) >= 9).double().mean() > 0.15  # the chain/boundary families run to the top
    assert (longest_chain(ua, ub) >= 9).double().mean() < 0.01
    with pytest.raises(AdderError, match="carry sampler"):
        data.training_batch(0, 8, data.parse_curriculum("1-10:rest"), 0.5, (0, 1), g, "nope")


def test_decay_groups():
    r = get_recipe("micro57")
    with pytest.raises(AdderError, match="decay"):
        train(r, seed=0, out=__import__("pathlib").Path("/tmp/adder-decay-test"),
              hyper=replace(r.hyper, steps=1, decay="some"), force=True)


def test_hyper_round_trips_through_the_checkpoint_meta():
    from adder.train.recipes import Hyper

    h = replace(get_recipe("micro57").hyper, steps=123, carry_fade=(5, 9))
    assert Hyper.from_json(h.to_json()) == h
    with pytest.raises(AdderError, match="unknown hyperparameters"):
        Hyper.from_json({**h.to_json(), "bogus": 1})
