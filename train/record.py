"""One run's record: its metrics row after an evaluation, and what selection keeps.

A single run (`loop.py`) and each member of a population (`population.py`) evaluate on the
same held-out pairs and must write the same rows and choose the same checkpoints; this is the
one place both do it, so the two cannot drift (they once did: population rows lacked
`min_margin`). What selection reads is the better of the raw weights' and the weight
average's held-out exact match (`score`); the state it keeps is what `last.state.pt` records
for an exact resume.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import data
from .recipes import Hyper

#: Held-out exact match at which a run counts as grokked (docs/train.md).
GROKKED_AT = 0.99


def metrics_row(h: Hyper, step: int, *, loss: float, exact: float, token_acc: float, min_margin: float, lr: float,
                seconds: float, steps_per_s: float, weight_decay: float, ema_exact: float | None) -> dict:
    """The metrics.csv row of the evaluation after `step` (0-based) (`loop.METRICS_COLUMNS`)."""
    return {"step": step + 1, "loss": loss, "exact": exact, "token_acc": token_acc, "lr": lr,
            "carry_mix": data.carry_mix_at(step, h.carry_mix, h.carry_fade), "seconds": seconds,
            "steps_per_s": steps_per_s, "weight_decay": weight_decay, "phase": "train", "ema_exact": ema_exact,
            "min_margin": min_margin}


@dataclass
class Selection:
    """Best, grokked and the streak of perfect evaluations, updated after each evaluation."""

    best: float = -1.0
    best_step: int = -1
    grokked: int | None = None
    perfect_streak: int = 0
    best_weights: str = "raw"  # which weights scored the best: "raw" or "ema" (the weight average)

    def observe(self, step: int, exact: float, ema_exact: float | None) -> bool:
        """Fold in the evaluation after `step` (1-based count of steps done); True when it is the new best
        (its weights, `best_weights`, are then the ones to save as best.pt)."""
        use_ema = ema_exact is not None and ema_exact > exact
        score = ema_exact if use_ema else exact
        if self.grokked is None and score >= GROKKED_AT:
            self.grokked = step
        new_best = score > self.best
        if new_best:
            self.best, self.best_step, self.best_weights = score, step, "ema" if use_ema else "raw"
        self.perfect_streak = self.perfect_streak + 1 if score == 1.0 else 0
        return new_best

    def finished(self, best: float, best_step: int) -> None:
        """A finishing phase (L-BFGS) chose another best."""
        self.best, self.best_step = best, best_step
        if self.grokked is None and best >= GROKKED_AT:
            self.grokked = best_step

    def state(self) -> dict:
        """What `last.state.pt` records of it."""
        return {"best": self.best, "best_step": self.best_step, "grokked": -1 if self.grokked is None else self.grokked,
                "perfect_streak": self.perfect_streak}

    @classmethod
    def from_state(cls, st: dict) -> "Selection":
        return cls(best=st["best"], best_step=st["best_step"], grokked=st["grokked"] if st["grokked"] >= 0 else None,
                   perfect_streak=st["perfect_streak"])
