"""`Hyper`: a training run's hyperparameters, recorded in every checkpoint it writes.

A recipe carries its defaults; `adder train` overrides some (`Hyper.override`, which checks
them), and a resumed run takes the ones its checkpoint recorded (`Hyper.recorded_in`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

from ...compiler import checkpoint
from ...compiler.errors import AdderError
from ...compiler.limits import MAX_PAIRS, check_count, check_finite
from ..data import check_sources, parse_curriculum
from ..optim import OPTIMIZERS


#: Steps of one run: a billion is weeks on any machine here; more is a typo.
MAX_STEPS = 10**9


@dataclass(frozen=True)
class Hyper:
    """Hyperparameters; every field is recorded in the checkpoint."""

    steps: int = 60_000
    batch: int = 256
    lr: float = 0.02
    min_lr_ratio: float = 0.1  # cosine decays to lr * min_lr_ratio
    warmup: int = 1_000
    weight_decay: float = 0.01
    clip: float = 1.0
    curriculum: str = "1-3:2000,1-6:5000,1-10:rest"  # digits of the operands, by phase
    carry_mix: float = 0.8  # share of carry-heavy examples ...
    carry_fade: tuple[int, int] = (15_000, 45_000)  # ... fading linearly to 0 over these steps
    eval_every: int = 2_000
    eval_pairs: int = 4_000
    early_stop_evals: int = 3  # stop after this many consecutive evals at 100% held-out exact match
    decay: str = "all"  # weight decay on "all" parameters (as MicroAdder's AdamW) or only "matrices"
    carry_sampler: str = "classes"  # carry-heavy examples: "classes" (generate/propagate/kill per digit) or "families"
    # the other examples: uniform over the phase's "values"; or k digits, k uniform in the phase's
    # range, then operands of exactly k digits ("lengths") or below 10^k ("bounds")
    operands: str = "values"
    # end-of-sequence target (MicroAdder's and Jack Cai's trainers): -1 none; a token id t >= 0: the last sum
    # digit is fed in too and its position must predict t, one more term in the loss's mean (docs/train.md)
    eos_token: int = -1
    # adaptive weight decay: (min held-out exact, min token accuracy, multiplier of weight_decay);
    # after each evaluation the last stage whose two thresholds are met sets the decay (none: base)
    wd_drops: tuple[tuple[float, float, float], ...] = ()
    optimizer: str = "adamw"  # "adamw" (torch) or "adamw-mlx" (no bias correction, MLX's default)
    # Grokfast-EMA gradient filter (train/optim.py): g += lamb * EMA_alpha(g); lamb 0 turns it off
    grokfast_alpha: float = 0.98
    grokfast_lamb: float = 0.0
    # finishing (train/finish.py): an EMA of the weights from the first evaluation at held-out exact
    # >= ema_after (0: off), and lbfgs_steps L-BFGS iterations on lbfgs_batch fresh pairs after the run (0: off)
    ema_after: float = 0.0
    ema_decay: float = 0.999
    lbfgs_steps: int = 0
    lbfgs_batch: int = 8_192

    def to_json(self) -> dict:
        d = asdict(self)
        d["carry_fade"] = list(self.carry_fade)
        d["wd_drops"] = [list(s) for s in self.wd_drops]
        return d

    @classmethod
    def from_json(cls, d: dict) -> "Hyper":
        """The hyperparameters recorded in a checkpoint (unknown keys are refused)."""
        known = {f for f in cls.__dataclass_fields__}
        if set(d) - known:
            raise AdderError(f"unknown hyperparameters {sorted(set(d) - known)} in checkpoint")
        tuples = {"carry_fade": tuple(d["carry_fade"])} if "carry_fade" in d else {}
        if "wd_drops" in d:
            tuples["wd_drops"] = tuple(tuple(s) for s in d["wd_drops"])
        return cls(**{**d, **tuples})

    @classmethod
    def recorded_in(cls, path, default: "Hyper") -> "Hyper":
        """The hyperparameters a checkpoint's run recorded (`default` for a checkpoint that has none)."""
        recorded = checkpoint.read(path)["meta"].get("hyper")
        return cls.from_json(recorded) if recorded else default

    def override(self, *, steps: int | None = None, lr: float | None = None, curriculum: str | None = None,
                 sets: list[str] = ()) -> "Hyper":
        """These hyperparameters with the given ones in place (None keeps one), each checked: one-line errors.

        `sets` are `name=value` assignments of any scalar field (`adder train --set grokfast_lamb=2`),
        the value read as the field's type. A shorter run evaluates at least four times; the
        curriculum must be one the sampler can follow.
        """
        hyper = replace(self, **dict(self._assignment(text) for text in sets)).check()
        if steps is not None:
            if steps < 1:
                raise AdderError(f"--steps must be positive, got {steps}")
            hyper = replace(hyper, steps=steps, eval_every=min(hyper.eval_every, max(1, steps // 4)))
        if lr is not None:
            if not (math.isfinite(lr) and lr > 0):
                raise AdderError(f"--lr must be a positive finite number, got {lr}")
            hyper = replace(hyper, lr=lr)
        if curriculum is not None:
            parse_curriculum(curriculum)
            hyper = replace(hyper, curriculum=curriculum)
        return hyper

    def _assignment(self, text: str) -> tuple[str, object]:
        """`name=value` as (name, value of the field's type), or an AdderError saying what is wrong."""
        name, eq, value = text.partition("=")
        name = name.strip()
        if not eq or name not in self.__dataclass_fields__:
            raise AdderError(f"--set wants NAME=VALUE with NAME one of {sorted(self.__dataclass_fields__)}, got {text!r}")
        kind = type(getattr(self, name))
        if kind not in (int, float, str):
            raise AdderError(f"--set cannot set {name} (a {kind.__name__}); write a recipe for it (docs/train.md)")
        try:
            return name, kind(value.strip())
        except ValueError:
            raise AdderError(f"--set {name} wants a {kind.__name__}, got {value.strip()!r}") from None

    def check(self) -> "Hyper":
        """These hyperparameters, or an AdderError naming the first one no run can use."""
        for name in ("steps", "eval_every", "early_stop_evals"):
            check_count(getattr(self, name), name, high=MAX_STEPS)
        for name in ("batch", "eval_pairs", "lbfgs_batch"):  # pairs held in memory at once
            check_count(getattr(self, name), name, high=MAX_PAIRS)
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise AdderError(f"lr must be a positive finite number, got {self.lr}")
        check_count(self.warmup, "warmup", low=0, high=MAX_STEPS)
        check_finite(self.min_lr_ratio, "min_lr_ratio", 0, 1)
        check_finite(self.weight_decay, "weight_decay", 0)
        check_finite(self.clip, "clip (0: off)", 0)
        check_finite(self.carry_mix, "carry_mix (a share of the batch)", 0, 1)
        if not 0 <= self.carry_fade[0] <= self.carry_fade[1]:
            raise AdderError(f"carry_fade must be (start, end) steps with 0 <= start <= end, got {self.carry_fade}")
        for stage in self.wd_drops:
            if len(stage) != 3 or not all(math.isfinite(x) and x >= 0 for x in stage):
                raise AdderError(f"wd_drops stages are (min exact, min token accuracy, factor >= 0), got {stage}")
        if self.decay not in ("all", "matrices"):
            raise AdderError(f"decay must be 'all' or 'matrices', got {self.decay!r}")
        check_sources(self.carry_sampler, self.operands)
        if self.eos_token < -1:
            raise AdderError(f"eos_token must be a token id >= 0, or -1 for no end-of-sequence target, got {self.eos_token}")
        if self.optimizer not in OPTIMIZERS:
            raise AdderError(f"optimizer must be one of {sorted(OPTIMIZERS)}, got {self.optimizer!r}")
        if not 0.0 <= self.grokfast_alpha < 1.0:
            raise AdderError(f"grokfast_alpha must be in [0, 1), got {self.grokfast_alpha}")
        if not (math.isfinite(self.grokfast_lamb) and self.grokfast_lamb >= 0):
            raise AdderError(f"grokfast_lamb must be a finite number >= 0 (0: off), got {self.grokfast_lamb}")
        if not 0.0 <= self.ema_after <= 1.0:
            raise AdderError(f"ema_after must be a held-out exact match in [0, 1] (0: off), got {self.ema_after}")
        if not 0.0 < self.ema_decay < 1.0:
            raise AdderError(f"ema_decay must be in (0, 1), got {self.ema_decay}")
        if self.lbfgs_steps < 0:
            raise AdderError(f"lbfgs_steps must be >= 0 (0: off), got {self.lbfgs_steps}")
        return self

    def weight_decay_at(self, exact: float, token_acc: float) -> float:
        """The decay after an evaluation with these held-out metrics (MicroAdder's adaptive rule)."""
        wd = self.weight_decay
        for min_exact, min_tok, factor in self.wd_drops:
            if exact >= min_exact and token_acc >= min_tok:
                wd = self.weight_decay * factor
        return wd
