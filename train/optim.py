"""Optimisers beyond torch's: AdamW as MLX implements it by default (no bias correction).

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
