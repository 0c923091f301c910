"""The leakage guard: the pairs no training or fine-tuning batch may hold.

A model is judged on AdderBoard's official 10,010 cases (seed 2025) and selected on held-out
pairs (seed `data.VALIDATION_SEED`); training on either would make both figures lie. The
random 10-digit ones are met by chance about never, but the edge cases are not: (0, 0) and
(0, 1) turn up in the 1-3 digit curriculum phase of most runs. `Forbidden.clean` takes them
out of a batch without drawing anything more from the generator (so a run's stream changes
only at the rows it replaces), and `Forbidden.drop` out of a mined pool.
`tests/test_train_leakage.py` watches every forward pass of a run and a fine-tune round.
"""

from __future__ import annotations

import torch

from . import data


class Forbidden:
    """A set of addend pairs; membership is tested on whole batches."""

    def __init__(self, pairs: list[tuple[int, int]]):
        self.pairs = frozenset(pairs)
        # a cheap first test on `a` alone: only rows whose `a` is some forbidden pair's `a` are looked up
        self._a = torch.tensor(sorted({x for x, _ in self.pairs}), dtype=torch.long)

    @classmethod
    def for_run(cls, eval_pairs: int) -> "Forbidden":
        """The official cases and a run's `eval_pairs` held-out pairs."""
        from ..verify.api import official_cases

        va, vb = data.validation_pairs(eval_pairs)
        return cls(official_cases() + list(zip(va.tolist(), vb.tolist())))

    def mask(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """bool [n]: which rows of (a, b) are forbidden."""
        hit = torch.isin(a, self._a)
        for i in torch.nonzero(hit).flatten().tolist():
            hit[i] = (int(a[i]), int(b[i])) in self.pairs
        return hit

    def clean(self, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(a, b) with every forbidden row replaced by a copy of the first allowed one (shape kept)."""
        bad = self.mask(a, b)
        if not bool(bad.any()):
            return a, b
        ok = torch.nonzero(~bad).flatten()
        fill_a, fill_b = (a[ok[0]], b[ok[0]]) if len(ok) else self.outside()
        a, b = a.clone(), b.clone()
        a[bad], b[bad] = fill_a, fill_b
        return a, b

    def drop(self, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(a, b) without their forbidden rows."""
        keep = ~self.mask(a, b)
        return a[keep], b[keep]

    def outside(self) -> tuple[int, int]:
        """A small pair that is not forbidden (a batch whose every row was)."""
        return next((x, y) for x in range(1, 100) for y in range(1, 100) if (x, y) not in self.pairs)
