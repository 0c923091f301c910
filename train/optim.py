"""Optimisers beyond torch's: AdamW as MLX implements it by default (no bias correction), and
the Grokfast-EMA gradient filter in front of any of them.

MLX's `optim.AdamW` skips Adam's bias correction unless asked (`bias_correction=False`), so
its first updates are m/sqrt(v) = (1 - b1) / sqrt(1 - b2) ~ 3.2x larger than torch's, decaying
to the same size over ~1/(1 - b2) = 1,000 steps. Recipes trained in MLX (qwen3-d3) can ask
for it to follow their original's dynamics.
"""

from __future__ import annotations

import torch


class AdamWNoBiasCorrection(torch.optim.Optimizer):
    """Decoupled weight decay Adam without bias correction (MLX's default AdamW)."""

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.01):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            b1, b2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                st = self.state[p]
                if not st:
                    st["m"], st["v"] = torch.zeros_like(p), torch.zeros_like(p)
                m, v = st["m"], st["v"]
                m.mul_(b1).add_(p.grad, alpha=1 - b1)
                v.mul_(b2).addcmul_(p.grad, p.grad, value=1 - b2)
                p.mul_(1 - group["lr"] * group["weight_decay"])
                p.addcdiv_(m, v.sqrt().add_(group["eps"]), value=-group["lr"])


OPTIMIZERS = {"adamw": torch.optim.AdamW, "adamw-mlx": AdamWNoBiasCorrection}


class GrokfastEMA:
    """Grokfast-EMA (Lee et al. 2024, "Grokfast: Accelerated Grokking by Amplifying Slow Gradients"):
    before each step, the gradient g gains `lamb` times an exponential moving average of past gradients,
    e <- alpha e + (1 - alpha) g (e starts at the first gradient), g <- g + lamb e.

    The slow component of the gradient is the one that generalises; amplifying it shortens the plateau
    before grokking. Mixed in front of an optimizer class (`with_grokfast`), it filters the gradient as
    the optimizer sees it, after clipping. Its EMA is part of the optimizer's `state_dict` under
    "grokfast_ema", one tensor per parameter shaped like it, so resumes and populations (which cut
    per-parameter state by member) carry it like Adam's moments.
    """

    def __init__(self, params, *, grokfast_alpha: float, grokfast_lamb: float, **kw):
        super().__init__(params, **kw)
        self.grokfast_alpha, self.grokfast_lamb = grokfast_alpha, grokfast_lamb
        self.grad_ema: dict[torch.Tensor, torch.Tensor] = {}

    @torch.no_grad()
    def step(self, closure=None):
        a = self.grokfast_alpha
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                ema = self.grad_ema.get(p)
                if ema is None:
                    self.grad_ema[p] = ema = p.grad.detach().clone()
                else:
                    ema.mul_(a).add_(p.grad, alpha=1 - a)
                p.grad.add_(ema, alpha=self.grokfast_lamb)
        return super().step(closure)

    def _params(self) -> list[torch.Tensor]:
        return [p for g in self.param_groups for p in g["params"]]

    def state_dict(self):
        sd = super().state_dict()
        for i, p in enumerate(self._params()):
            if p in self.grad_ema:
                sd["state"].setdefault(i, {})["grokfast_ema"] = self.grad_ema[p].clone()
        return sd

    def load_state_dict(self, state_dict):
        state = {i: dict(st) for i, st in state_dict["state"].items()}
        emas = {i: st.pop("grokfast_ema") for i, st in state.items() if "grokfast_ema" in st}
        super().load_state_dict({**state_dict, "state": {i: st for i, st in state.items() if st}})
        params = self._params()
        self.grad_ema = {params[int(i)]: e.to(params[int(i)]) for i, e in emas.items()}


def make_optimizer(name: str, groups: list[dict], *, lr: float, grokfast_alpha: float = 0.98,
                   grokfast_lamb: float = 0.0) -> torch.optim.Optimizer:
    """The optimizer `name` (OPTIMIZERS) over `groups`, behind a Grokfast-EMA filter when `grokfast_lamb` > 0."""
    base = OPTIMIZERS[name]
    if grokfast_lamb <= 0:
        return base(groups, lr=lr)
    filtered = type(f"Grokfast{base.__name__}", (GrokfastEMA, base), {})
    return filtered(groups, lr=lr, grokfast_alpha=grokfast_alpha, grokfast_lamb=grokfast_lamb)


def descend(model: torch.nn.Module, opt: torch.optim.Optimizer, loss: torch.Tensor, clip: float) -> None:
    """One step of `opt` down `loss`: fresh gradients, their global norm clipped to `clip` (when > 0)."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    opt.step()
