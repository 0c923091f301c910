"""Generic decoding outside the model: greedy generation and teacher-forced checking.

Greedy decoding yields the right sum exactly when, with the right prefix fed in, the
argmax at every answer position is the right digit. So one batched forward pass over
`prompt + answer[:-1]` checks a whole addition (`teacher_forced`); the real autoregressive
loop (`generate`) is only needed to show what a failing model actually outputs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .formats import as_addends
from .module import AdderModel


@torch.no_grad()
def generate(model: AdderModel, prompt: torch.Tensor, n: int) -> torch.Tensor:
    """Greedy decoding: append the argmax token `n` times. prompt [B, P] -> new tokens [B, n].

    Runs the full forward pass each step, exactly as the published submissions do.
    """
    seq = prompt
    for _ in range(n):
        nxt = model(seq)[:, -1].argmax(dim=-1)  # [B]
        seq = torch.cat([seq, nxt[:, None]], dim=1)
    return seq[:, prompt.shape[1]:]


@torch.no_grad()
def add(model: AdderModel, a, b) -> list[int | None]:
    """`a + b` as the model computes it, by greedy decoding (ints or batches of ints)."""
    fmt = model.spec.format
    a, b = as_addends(a).to(model.device), as_addends(b).to(model.device)
    out = generate(model, fmt.encode(a, b), fmt.out_digits)
    return fmt.decode(out.cpu())


@dataclass
class Checked:
    """Teacher-forced result for a batch: per-addition verdict, per-position margin and argmax."""

    correct: torch.Tensor  # bool [B]
    margin: torch.Tensor  # [B, out_digits]: right logit minus best other logit
    pred: torch.Tensor  # long [B, out_digits]: argmax at each answer position


@torch.no_grad()
def teacher_forced(model: AdderModel, a: torch.Tensor, b: torch.Tensor) -> Checked:
    """Check additions `a + b` ([B] int64 each) with one forward pass each."""
    fmt = model.spec.format
    answer = fmt.answer(a, b)  # [B, n]
    tokens = torch.cat([fmt.encode(a, b), answer[:, :-1]], dim=1)
    logits = model(tokens, keep_last=fmt.out_digits)  # [B, n, V]
    pred = logits.argmax(dim=-1)
    right = logits.gather(-1, answer[..., None]).squeeze(-1)
    other = logits.scatter(-1, answer[..., None], float("-inf")).amax(dim=-1)
    return Checked(correct=(pred == answer).all(dim=1), margin=right - other, pred=pred)
