"""The addition domain's vocabulary: digits, addends, carries and the carry class of a digit pair.

An addend has `DIGITS` decimal digits (base `BASE`), so it lies in [0, `MAX_ADDEND`], and a
sum has `SUM_DIGITS`. Digits are indexed least significant first: digit i of a is
`(a // BASE**i) % BASE`. Digit i of a + b receives a carry c_i (c_0 = 0) and passes on
c_{i+1} = [a_i + b_i + c_i >= BASE]. What it passes on depends on the digit pair's sum
a_i + b_i in one of three ways, the pair's *carry class* (`Carry`):

* **generate** (a_i + b_i >= 10): a carry goes out, whatever comes in;
* **propagate** (a_i + b_i == 9): the carry that comes in goes out (sum digit 9, or 0 and a carry);
* **kill** (a_i + b_i <= 8): no carry goes out, whatever comes in.

A carry chain is then a class pattern, G P P .. P K: it starts at a generate, runs through
the propagates and stops at a kill (or leaves the top digit as sum digit 10). The verifier's
suites enumerate class patterns, the Hypothesis strategies draw a class per position before
its digits, and the training sampler draws carry-heavy classes: all of them through `Carry`
and the digit ranges it defines. Everything here is vectorised over int64 tensors [B].
"""

from __future__ import annotations

from enum import IntEnum

import torch

#: Digit values are 0 .. BASE - 1.
BASE = 10
#: Digits of an addend.
DIGITS = 10
#: Digits of a sum: one more than an addend, for the carry out of the top digit.
SUM_DIGITS = DIGITS + 1
MAX_ADDEND = BASE**DIGITS - 1
#: Digit pairs (a_i, b_i) one position can hold.
DIGIT_PAIRS = BASE * BASE
MAX_DIGIT = BASE - 1


class Carry(IntEnum):
    """The carry class of one digit pair (module docstring). The values number the classes
    in tensors of classes (the carry suite's patterns are their base-3 numbers)."""

    GENERATE = 0
    PROPAGATE = 1
    KILL = 2

    @property
    def sums(self) -> tuple[int, int]:
        """The smallest and largest digit-pair sum a_i + b_i of the class."""
        return {Carry.GENERATE: (BASE, 2 * MAX_DIGIT), Carry.PROPAGATE: (MAX_DIGIT, MAX_DIGIT),
                Carry.KILL: (0, MAX_DIGIT - 1)}[self]

    def first_digits(self) -> tuple[int, int]:
        """The digits a_i (lowest, highest) that some b_i completes to a pair of the class."""
        lo, hi = self.sums
        return max(0, lo - MAX_DIGIT), min(MAX_DIGIT, hi)

    def second_digits(self, a: int) -> tuple[int, int]:
        """The digits b_i (lowest, highest) that make (a, b_i) a pair of the class."""
        lo, hi = self.sums
        return max(0, lo - a), min(MAX_DIGIT, hi - a)


#: [class, 2]: first_digits of each class; [class, a, 2]: second_digits of each class and a
#: (an empty range, highest < lowest, where no b completes a).
_FIRST = torch.tensor([c.first_digits() for c in Carry])
_SECOND = torch.tensor([[c.second_digits(a) for a in range(BASE)] for c in Carry])


def place_values(n: int, device=None) -> torch.Tensor:
    """BASE**i for i = 0..n-1 -> int64 [n]."""
    return BASE ** torch.arange(n, dtype=torch.long, device=device)


def digits_of(x: torch.Tensor, n: int = DIGITS, order: str = "lsb") -> torch.Tensor:
    """Decimal digits of int64 tensor `x` [B] -> [B, n], least ("lsb") or most ("msb") significant first."""
    d = (x[:, None] // place_values(n, x.device)) % BASE
    return d if order == "lsb" else d.flip(1)


def from_digits(d: torch.Tensor) -> torch.Tensor:
    """Digits [B, n], least significant first -> the numbers [B]."""
    return (d * place_values(d.shape[1], d.device)).sum(1)


def pair_classes(a: torch.Tensor, b: torch.Tensor, n: int = DIGITS) -> torch.Tensor:
    """The carry class of each digit pair of a + b -> [B, n] (`Carry` values)."""
    s = digits_of(a, n) + digits_of(b, n)
    return torch.where(s >= Carry.GENERATE.sums[0], Carry.GENERATE,
                       torch.where(s >= Carry.PROPAGATE.sums[0], Carry.PROPAGATE, Carry.KILL))


def pairs_for_classes(cls: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Addend pairs whose digits are drawn uniformly within each position's class:
    cls [B, n] (`Carry` values) -> a, b [B]. a_i is uniform over the class's first digits,
    then b_i uniform over the digits that complete it."""
    u1 = torch.rand(cls.shape, generator=gen, dtype=torch.float64)
    u2 = torch.rand(cls.shape, generator=gen, dtype=torch.float64)
    a_lo, a_hi = _FIRST[cls].unbind(-1)
    a = a_lo + (u1 * (a_hi - a_lo + 1)).floor().long()
    b_lo, b_hi = _SECOND[cls, a].unbind(-1)
    b = b_lo + (u2 * (b_hi - b_lo + 1)).floor().long()
    return from_digits(a), from_digits(b)


def carries_in(a: torch.Tensor, b: torch.Tensor, n: int = SUM_DIGITS) -> torch.Tensor:
    """Carry into digit i (i = 0..n-1) of a + b -> [B, n] in {0, 1}."""
    powers = place_values(n, a.device)
    return (((a[:, None] % powers) + (b[:, None] % powers)) >= powers).long()


def longest_chain(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Length of the longest run of consecutive carry-outs in a + b -> [B]."""
    c = carries_in(a, b)[:, 1:]  # carry out of digits 0..DIGITS-1
    best = torch.zeros(len(a), dtype=torch.long)
    run = torch.zeros(len(a), dtype=torch.long)
    for j in range(DIGITS):
        run = (run + 1) * c[:, j]
        best = torch.maximum(best, run)
    return best
