"""Finishing a run: an exponential moving average of the weights once it has grokked, and an
L-BFGS phase on one fixed batch after the AdamW steps. Both are what published sub-100p trained
adders leaned on to get from ~99% to 100%: the last wrong cases of a grokked model come and go
with the noise of each AdamW step, which an average of the weights smooths out, and a
full-batch quasi-Newton method then raises every answer's margin where a first-order step at a
small learning rate barely moves.

The loop (`loop.train`) owns the schedule and the selection; this module holds the two
mechanisms, each with its state in plain tensors so that `last.state.pt` resumes them exactly.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

import torch

#: L-BFGS's remembered curvature pairs (torch's default).
LBFGS_HISTORY = 100
#: Loss evaluations one line search may make (torch's `_strong_wolfe` default). Passed as `max_eval`:
#: torch caps a line search at `max_eval` minus the one evaluation before it, and its default
#: `max_eval` for `max_iter=1` is 1, which would leave no evaluation and so no step at all.
LINE_SEARCH_EVALS = 25


def trainable(model: torch.nn.Module) -> list[torch.Tensor]:
    """The parameters a run trains, in the module's order."""
    return [p for p in model.parameters() if p.requires_grad]


class WeightEMA:
    """An exponential moving average of a model's trainable parameters, s <- d s + (1 - d) p after
    every optimizer step, started (at the weights of that moment) once held-out exact match first
    reaches `after`; `after` 0 keeps it off.

    Started late on purpose: an average over the plateau before grokking would mix weights that
    do not add; after it, the run wanders between nearby solutions and their average is often
    right where each one alone is wrong on a few cases.
    """

    def __init__(self, model: torch.nn.Module, *, after: float, decay: float):
        self.after, self.decay = after, decay
        self.params = trainable(model)
        self.shadow: list[torch.Tensor] | None = None

    @property
    def started(self) -> bool:
        return self.shadow is not None

    def follow(self, exact: float) -> None:
        """Start the average now if it is on and held-out exact match `exact` has reached its threshold."""
        if not self.started and self.after > 0 and exact >= self.after:
            self.shadow = [p.detach().clone() for p in self.params]

    @torch.no_grad()
    def update(self) -> None:
        """One step of the average (after an optimizer step); nothing before it started."""
        if self.started:
            for s, p in zip(self.shadow, self.params):
                s.mul_(self.decay).add_(p, alpha=1 - self.decay)

    @contextmanager
    def swapped(self) -> Iterator[None]:
        """The model holds the averaged weights inside the block, its own ones again after it."""
        if not self.started:
            raise RuntimeError("the weight average has not started")
        own = [p.detach().clone() for p in self.params]
        with torch.no_grad():
            for p, s in zip(self.params, self.shadow):
                p.copy_(s)
        try:
            yield
        finally:
            with torch.no_grad():
                for p, o in zip(self.params, own):
                    p.copy_(o)

    def state_dict(self) -> list[torch.Tensor] | None:
        """The average as `last.state.pt` keeps it (None before it started)."""
        return None if self.shadow is None else [s.clone() for s in self.shadow]

    def load_state_dict(self, state: list[torch.Tensor] | None) -> None:
        self.shadow = None if state is None else [s.to(p) for s, p in zip(state, self.params)]


def lbfgs(model: torch.nn.Module, loss: Callable[[], torch.Tensor], steps: int) -> Iterator[int]:
    """`steps` iterations of L-BFGS (strong-Wolfe line search, step size 1) on `loss()`, a closure over
    one fixed batch; yields the number of iterations done after each. The iteration's state (its
    curvature history) lives in the optimizer, so the phase runs start to end: it is not resumed.

    One `step` call per iteration (`max_iter=1`) so the caller can log between them; the curvature
    history carries over between calls, so this is one L-BFGS run of `steps` iterations (each call
    evaluates the loss once more at its start, and torch's stopping tolerances end a call, not the run)."""
    opt = torch.optim.LBFGS(trainable(model), lr=1.0, max_iter=1, max_eval=1 + LINE_SEARCH_EVALS,
                            history_size=LBFGS_HISTORY,
                            line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad(set_to_none=True)
        value = loss()
        value.backward()
        return value

    for k in range(steps):
        opt.step(closure)
        yield k + 1
