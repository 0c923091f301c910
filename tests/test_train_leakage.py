"""Leakage guard (issue 11): no training, L-BFGS finishing or fine-tuning batch holds an official
2025 pair or a held-out pair, and nothing a run reads to select, stop or mine is an official pair.

The check does not trust the trainer's own bookkeeping: it watches every forward pass of the
module (`AdderModel.forward`) during a run of a few hundred steps and a fine-tune round, and
reads the addends back from the prompt tokens. A forward pass with gradients on is a training
batch; one without is evaluation, mining or selection. The run ends with an L-BFGS finishing
phase whose batch has a size of its own (LBFGS_BATCH), so its rows are told apart. Planted leaks
show that it fails when the guard is bypassed.
"""

from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from adder.compiler import checkpoint
from adder.compiler.module import AdderModel
from adder.train import data
from adder.train.finetune import FinetuneOptions, finetune
from adder.train.guard import Forbidden
from adder.train.loop import train
from adder.train.recipes import get_recipe
from adder.verify.api import official_cases

REF = Path(__file__).resolve().parents[1] / "train" / "reference" / "micro57.pt"
EVAL_PAIRS = 500
#: A run short enough for the default tests, long enough to pass the 1-3 digit phase's (0, 0)
#: and (0, 1) many times over (each is drawn with odds ~1/10^6 per pair: planted below).
#: The L-BFGS phase's fixed batch: a size no other batch has.
LBFGS_BATCH = 300
HYPER = dict(steps=300, eval_every=100, eval_pairs=EVAL_PAIRS, warmup=20, batch=64, lbfgs_steps=2,
             lbfgs_batch=LBFGS_BATCH)
ROUND = FinetuneOptions(steps=20, rounds=1, fresh=4096, suite_k=1, window=1, pool=2000)
#: The planted leaks need a few steps only, and mine fresh pairs only.
SHORT = dict(steps=30, eval_every=10)
SHORT_ROUND = replace(ROUND, steps=10, suite_k=0)
OFFICIAL_EDGE = (0, 1)  # an official edge case, drawn by chance in the 1-3 digit phase


class Watcher:
    """Every (a, b) the module is run on, split by whether gradients were on."""

    def __init__(self):
        self.trained: set = set()
        self.read: set = set()
        self.trained_rows: Counter = Counter()  # rows of training batches, by batch size
        self.lbfgs: set = set()  # pairs of the L-BFGS phase's batch

    def __call__(self, forward):
        def watched(module, tokens, *args, **kwargs):
            fmt = module.spec.format
            pairs = _prompt_pairs(fmt, tokens)
            if torch.is_grad_enabled():
                self.trained |= pairs
                self.trained_rows[len(tokens)] += len(tokens)
                if len(tokens) == LBFGS_BATCH:
                    self.lbfgs |= pairs
            else:
                self.read |= pairs
            return forward(module, tokens, *args, **kwargs)
        return watched

    def leaks(self, eval_pairs: int) -> dict:
        official = set(official_cases())
        va, vb = data.validation_pairs(eval_pairs)
        held_out = set(zip(va.tolist(), vb.tolist()))
        return {"official in a training batch": self.trained & official,
                "held-out in a training batch": self.trained & held_out,
                "official in an L-BFGS batch": self.lbfgs & official,
                "held-out in an L-BFGS batch": self.lbfgs & held_out,
                "official read to select, stop or mine": self.read & official}


def _prompt_pairs(fmt, tokens: torch.Tensor) -> set:
    """The (a, b) of each row's prompt, found by encoding candidates: rows of the prompt are matched
    against the format's own encoding, digit by digit, so any layout reads back."""
    p = fmt.prompt_len
    probe = fmt.encode(torch.tensor([0]), torch.tensor([0]))  # where each digit sits: found by setting it
    rows = tokens[:, :p].long()
    a, b = torch.zeros(len(rows), dtype=torch.long), torch.zeros(len(rows), dtype=torch.long)
    for i in range(10):
        place = 10 ** i
        ea = fmt.encode(torch.tensor([place]), torch.tensor([0]))[0] != probe[0]
        eb = fmt.encode(torch.tensor([0]), torch.tensor([place]))[0] != probe[0]
        a += rows[:, ea.nonzero().flatten()[0]] * place
        b += rows[:, eb.nonzero().flatten()[0]] * place
    assert torch.equal(fmt.encode(a, b), rows), "prompt rows must read back to the pairs they encode"
    return set(zip(a.tolist(), b.tolist()))


def _run(tmp_path: Path, monkeypatch, short: bool = False) -> Watcher:
    """A 300-step micro57 run with a 2-iteration L-BFGS finish and a fine-tune round from the
    reference (`short`: 30 steps and a 10-step round), every forward pass watched."""
    torch.set_num_threads(1)
    w = Watcher()
    monkeypatch.setattr(AdderModel, "forward", w(AdderModel.forward))
    r = get_recipe("micro57")
    h = replace(r.hyper, **{**HYPER, **(SHORT if short else {})})
    options = SHORT_ROUND if short else ROUND
    train(r, seed=3, out=tmp_path / "run", hyper=h, force=True)
    finetune(r, seed=3, out=tmp_path / "ft", warm_start=checkpoint.load(REF, dtype="float32"), options=options,
             hyper=h, force=True)
    assert w.trained_rows[h.batch] == (h.steps + options.steps) * h.batch  # every batch was seen
    assert w.trained_rows[LBFGS_BATCH] >= h.lbfgs_steps * LBFGS_BATCH  # a closure per iteration at least
    return w


def _plant(monkeypatch, pairs: list[tuple[int, int]]) -> None:
    """Put `pairs` into the first rows of every draw of training pairs (what a buggy sampler could do)."""
    mixed = data.mixed_pairs

    def planted(n, *args, **kwargs):
        a, b = mixed(n, *args, **kwargs)
        k = min(n, len(pairs))
        a[:k] = torch.tensor([x for x, _ in pairs[:k]])
        b[:k] = torch.tensor([y for _, y in pairs[:k]])
        return a, b

    monkeypatch.setattr(data, "mixed_pairs", planted)


def test_no_batch_holds_an_official_or_held_out_pair(tmp_path, monkeypatch):
    w = _run(tmp_path, monkeypatch)
    assert all(not v for v in w.leaks(EVAL_PAIRS).values()), w.leaks(EVAL_PAIRS)
    va, vb = data.validation_pairs(EVAL_PAIRS)
    assert set(zip(va.tolist(), vb.tolist())) <= w.read  # the watcher sees selection too


def test_the_guard_removes_a_planted_leak(tmp_path, monkeypatch):
    va, vb = data.validation_pairs(EVAL_PAIRS)
    _plant(monkeypatch, [OFFICIAL_EDGE, (int(va[0]), int(vb[0]))])
    w = _run(tmp_path, monkeypatch, short=True)
    assert all(not v for v in w.leaks(EVAL_PAIRS).values()), w.leaks(EVAL_PAIRS)


def test_a_planted_leak_is_caught_when_the_guard_is_bypassed(tmp_path, monkeypatch):
    va, vb = data.validation_pairs(EVAL_PAIRS)
    held = (int(va[0]), int(vb[0]))
    _plant(monkeypatch, [OFFICIAL_EDGE, held])
    monkeypatch.setattr(Forbidden, "clean", lambda self, a, b: (a, b))
    monkeypatch.setattr(Forbidden, "drop", lambda self, a, b: (a, b))
    leaks = _run(tmp_path, monkeypatch, short=True).leaks(EVAL_PAIRS)
    assert OFFICIAL_EDGE in leaks["official in a training batch"]
    assert held in leaks["held-out in a training batch"]
    assert OFFICIAL_EDGE in leaks["official in an L-BFGS batch"] and held in leaks["held-out in an L-BFGS batch"]
    assert OFFICIAL_EDGE in leaks["official read to select, stop or mine"]  # mining read it


def test_selection_on_official_pairs_is_caught(tmp_path, monkeypatch):
    official = official_cases()[:EVAL_PAIRS]
    monkeypatch.setattr(data, "validation_pairs", lambda n: (torch.tensor([x for x, _ in official[:n]]),
                                                             torch.tensor([y for _, y in official[:n]])))
    w = _run(tmp_path, monkeypatch, short=True)
    assert set(official) <= w.leaks(EVAL_PAIRS)["official read to select, stop or mine"]


@pytest.mark.parametrize("pairs", [[(0, 0), (0, 1), (7, 8)], [(1234567890, 9876543210)]])
def test_forbidden_clean_and_drop(pairs):
    guard = Forbidden([(0, 0), (0, 1), (1234567890, 9876543210)])
    a, b = torch.tensor([x for x, _ in pairs]), torch.tensor([y for _, y in pairs])
    ca, cb = guard.clean(a, b)
    assert len(ca) == len(a) and not guard.mask(ca, cb).any()
    kept = set(zip(*guard.drop(a, b)))
    assert {(int(x), int(y)) for x, y in kept} == {p for p in pairs if p not in guard.pairs}
    assert guard.mask(torch.tensor([0]), torch.tensor([2])).tolist() == [False]  # `a` alone is not enough
