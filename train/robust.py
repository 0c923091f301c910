"""Margins under worst-case float perturbations: what fine-tuning for a float proof trains on.

Why. `adder prove` bounds the float module: every rounding may go either way, and a one-layer
model's bound at a single input is close to its first-order worst case, margin - sum_s eps_s
|d margin / d site_s| over the places where rounding enters and is amplified (measured on the
44-parameter arc model at 9 + 81: the scores and the attention output account for ~4.7 of the
bound's ~6.2 loss, `docs/train.md`). A model trained only on clean margins can be right on
every input in real arithmetic and still have no float proof. Training on the margins that
survive an adversarial perturbation of those sites (one signed-gradient step, FGSM, per batch)
pushes down exactly that first-order loss.

The perturbation at each attention layer's scores is `ulps` float32 ulps of the row's largest
finite magnitude, and at its output `out_ulps` of the output row's, in the direction that
lowers each answer step's margin (rows are the query positions, so each answer step gets its
own worst case). Masked scores (-inf) stay masked. Two numbers because the prover's widths
differ by an order of magnitude there: at 9 + 81 the 44p's score box is ~130 ulps a side and
its attention-output box ~600 (it holds the scores' effect through the softmax, the rounding
of the weighted sum and of O, each coordinate on its own). The proven 44p was fine-tuned with
260 and 1,200: twice those widths.
"""

from __future__ import annotations

import torch

from ..compiler.module import AdderModel
from ..compiler.spec import Attention

#: float32's unit in the last place at 1 is 2^-23.
ULP_AT_ONE = 2.0 ** -23


def sites(model: AdderModel, ulps: float, out_ulps: float) -> dict[str, float]:
    """The activation sites perturbed, with their ulps: every attention layer's scores and output."""
    want = {"scores": ulps, "out": out_ulps}
    return {f"blocks.{i}.attn.{s}": u for i, b in enumerate(model.spec.blocks) if isinstance(b.layer, Attention)
            for s, u in want.items() if u > 0}


def row_ulp(t: torch.Tensor) -> torch.Tensor:
    """One float32 ulp of each row's largest finite |value| (last axis), shaped to broadcast."""
    mag = torch.where(torch.isfinite(t), t.abs(), torch.zeros_like(t)).amax(-1, keepdim=True)
    return torch.exp2(torch.floor(torch.log2(mag.clamp_min(1e-30)))) * ULP_AT_ONE


def margins(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """[B, n] the right logit minus the best wrong one, per answer step."""
    right = logits.gather(-1, targets[..., None]).squeeze(-1)
    other = logits.scatter(-1, targets[..., None], float("-inf")).amax(dim=-1)
    return right - other


def perturbed_logits(model: AdderModel, tokens: torch.Tensor, targets: torch.Tensor, ulps: float,
                     out_ulps: float = 0.0) -> torch.Tensor:
    """Logits of the answer steps with the scores moved by `ulps` row-ulps and the attention
    outputs by `out_ulps`, against each step's margin (one signed-gradient step)."""
    keep = targets.shape[1]
    where = sites(model, ulps, out_ulps)
    if not where:
        return model(tokens, keep_last=keep)
    deltas: dict = {}

    def probe(name, u):
        def hook(t):
            d = torch.zeros_like(t, requires_grad=True)
            deltas[name] = (d, row_ulp(t.detach()) * u)
            return t + d
        return hook

    with torch.enable_grad():
        clean = model(tokens, keep_last=keep, hooks={s: probe(s, u) for s, u in where.items()})
        grads = torch.autograd.grad(margins(clean, targets).sum(), [d for d, _ in deltas.values()],
                                    allow_unused=True)
    push = {name: -(torch.zeros_like(d) if g is None else g.sign()) * eps
            for (name, (d, eps)), g in zip(deltas.items(), grads)}
    return model(tokens, keep_last=keep, hooks={s: (lambda t, p=push[s]: t + p) for s in push})
