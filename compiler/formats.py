"""Prompt formats: how two addends become tokens, and how output tokens become a sum.

A format is data (it travels inside the checkpoint), e.g. param_40's

    [0] a0 a1 .. a9 [0]*9 b0 .. b9 [0]   then 11 sum digits, least significant first

is `PromptFormat(prompt=[0, ("a", "lsb"), *[0]*9, ("b", "lsb"), 0], out_order="lsb")`.
Encoding is vectorised over a batch of addends (int64 tensors), so building a million
prompts is a few tensor operations rather than a Python loop per example.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from .digits import BASE, DIGITS, MAX_ADDEND, SUM_DIGITS, digits_of
from .errors import OperandError, SpecError

ORDERS = ("lsb", "msb")


@dataclass(frozen=True)
class PromptFormat:
    """Token layout of a prompt and of the answer.

    `prompt` items are token ids (ints) or operand slots `("a"|"b", "lsb"|"msb")`, each
    slot expanding to `digits` digit tokens. Digit `d` is token `digit_tokens[d]`.
    The answer is `out_digits` digit tokens in `out_order`, produced one at a time.
    """

    prompt: tuple[Any, ...]
    out_order: str = "lsb"
    out_digits: int = SUM_DIGITS
    digits: int = DIGITS
    digit_tokens: tuple[int, ...] = tuple(range(BASE))

    def __post_init__(self):
        slots = [p for p in self.prompt if not isinstance(p, int)]
        if sorted(s[0] for s in slots) != ["a", "b"]:
            raise SpecError(f"a prompt needs exactly one 'a' and one 'b' slot, got {slots}")
        for s in slots:
            if len(s) != 2 or s[1] not in ORDERS:
                raise SpecError(f"operand slot {s!r} must be ('a'|'b', 'lsb'|'msb')")
        if self.out_order not in ORDERS:
            raise SpecError(f"out_order must be one of {ORDERS}, got {self.out_order!r}")
        if len(self.digit_tokens) != BASE:
            raise SpecError(f"digit_tokens must list the token id of each digit 0..{BASE - 1}")

    @property
    def prompt_len(self) -> int:
        return sum(self.digits if not isinstance(p, int) else 1 for p in self.prompt)

    @property
    def total_len(self) -> int:
        """Prompt plus all answer tokens but the last (the longest sequence ever fed in)."""
        return self.prompt_len + self.out_digits - 1

    def digit_order(self) -> list[int]:
        """Answer token index of sum digit 0, 1, ... (least significant first)."""
        n = self.out_digits
        return list(range(n)) if self.out_order == "lsb" else list(range(n - 1, -1, -1))

    def prompt_tokens_max(self) -> int:
        return max((p for p in self.prompt if isinstance(p, int)), default=-1)

    # --- (de)serialisation ---
    def to_json(self) -> dict:
        return {"prompt": [p if isinstance(p, int) else list(p) for p in self.prompt],
                "out_order": self.out_order, "out_digits": self.out_digits,
                "digits": self.digits, "digit_tokens": list(self.digit_tokens)}

    @classmethod
    def from_json(cls, d: dict) -> "PromptFormat":
        return cls(prompt=tuple(p if isinstance(p, int) else tuple(p) for p in d["prompt"]),
                   out_order=d["out_order"], out_digits=d["out_digits"], digits=d["digits"],
                   digit_tokens=tuple(d["digit_tokens"]))

    # --- encoding ---
    def encode(self, a: Any, b: Any) -> torch.Tensor:
        """Prompt tokens for addends `a`, `b` (ints or int64 tensors [B]) -> LongTensor [B, P]."""
        a, b = as_addends(a), as_addends(b)
        table = torch.tensor(self.digit_tokens, dtype=torch.long, device=a.device)
        parts = []
        for p in self.prompt:
            if isinstance(p, int):
                parts.append(torch.full((a.shape[0], 1), p, dtype=torch.long, device=a.device))
            else:
                x = a if p[0] == "a" else b
                parts.append(table[digits_of(x, self.digits, p[1])])
        return torch.cat(parts, dim=1)

    def answer(self, a: Any, b: Any) -> torch.Tensor:
        """The correct answer tokens for `a + b` -> LongTensor [B, out_digits]."""
        s = as_addends(a) + as_addends(b)
        table = torch.tensor(self.digit_tokens, dtype=torch.long, device=s.device)
        return table[digits_of(s, self.out_digits, self.out_order)]

    def decode(self, tokens: torch.Tensor) -> list[int | None]:
        """Answer tokens [B, out_digits] -> integers (None where a token is not a digit)."""
        lookup = {t: d for d, t in enumerate(self.digit_tokens)}
        out = []
        for row in tokens.tolist():
            ds = [lookup.get(t) for t in row]
            if any(d is None for d in ds):
                out.append(None)
                continue
            if self.out_order == "lsb":
                ds = ds[::-1]
            out.append(int("".join(map(str, ds))))
        return out


def check_addend(x: Any, name: str = "addend") -> int:
    """One addend from the user: an int in [0, MAX_ADDEND], or an `OperandError`."""
    if isinstance(x, bool) or not isinstance(x, int):
        if isinstance(x, str) and x.strip().lstrip("+").isdigit():
            digits = x.strip().lstrip("+").lstrip("0")
            if len(digits) > DIGITS:  # before int(): Python refuses to read a 5,000-digit string
                raise OperandError(f"{name} must be in [0, {MAX_ADDEND}] ({DIGITS} digits), got a number of "
                                   f"{len(digits):,} digits")
            x = int(x)
        else:
            raise OperandError(f"{name} must be an integer in [0, {MAX_ADDEND}], got {x!r}")
    if not 0 <= x <= MAX_ADDEND:
        raise OperandError(f"{name} must be in [0, {MAX_ADDEND}] ({DIGITS} digits), got {x}")
    return x


def as_addends(x: Any) -> torch.Tensor:
    """Ints, sequences or tensors of addends -> validated int64 tensor [B]."""
    if isinstance(x, torch.Tensor):
        if x.dtype != torch.long:
            raise OperandError(f"addend tensors must be int64, got {x.dtype}")
        t = x.reshape(-1)
        if t.numel() and (int(t.min()) < 0 or int(t.max()) > MAX_ADDEND):
            raise OperandError(f"addends must be in [0, {MAX_ADDEND}]")
        return t
    if isinstance(x, (list, tuple)):
        return torch.tensor([check_addend(v) for v in x], dtype=torch.long)
    return torch.tensor([check_addend(x)], dtype=torch.long)
