"""Training data, generated vectorised: uniform pairs by digit count, curriculum phases and
carry-heavy examples. No Python loop per example (a per-example loop costs 15-35% of a
training step on a 2-core CPU).
"""

from __future__ import annotations

import torch

from ..compiler.digits import BASE, DIGITS, MAX_ADDEND, Carry, from_digits, pairs_for_classes
from ..compiler.errors import AdderError

#: Seed of the held-out validation pairs: never AdderBoard's 2025.
VALIDATION_SEED = 31_337
#: Carry classes of a carry-heavy position, and their odds.
CARRY_HEAVY_CLASSES = (Carry.GENERATE, Carry.PROPAGATE, Carry.KILL)
CARRY_HEAVY_ODDS = (0.35, 0.45, 0.20)


def parse_curriculum(text: str) -> list[tuple[int, int, float]]:
    """'1-3:2000,1-6:5000,1-10:rest' -> [(1, 3, 2000), (1, 6, 7000), (1, 10, inf)]."""
    phases, end = [], 0
    try:
        for part in text.split(","):
            rng, steps = part.strip().split(":")
            lo, hi = (int(x) for x in rng.split("-"))
            if not 1 <= lo <= hi <= DIGITS:
                raise ValueError(f"digit range {rng} must satisfy 1 <= lo <= hi <= {DIGITS}")
            if steps.strip() == "rest":
                phases.append((lo, hi, float("inf")))
            else:
                if int(steps) <= 0:
                    raise ValueError(f"phase length {steps} must be positive")
                end += int(steps)
                phases.append((lo, hi, end))
    except ValueError as e:
        raise AdderError(f"impossible curriculum {text!r}: {e}. Write phases like '1-3:2000,1-6:5000,1-10:rest'") from None
    if any(p[2] == float("inf") for p in phases[:-1]):
        raise AdderError(f"impossible curriculum {text!r}: only the last phase may be 'rest'")
    return phases


def digit_range(step: int, phases) -> tuple[int, int]:
    for lo, hi, end in phases:
        if step < end:
            return lo, hi
    return phases[-1][0], phases[-1][1]


def uniform_pairs(n: int, lo: int, hi: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Operands uniform in [10^(lo-1) (or 0), 10^hi - 1]."""
    low = 0 if lo == 1 else BASE ** (lo - 1)
    return (torch.randint(low, BASE**hi, (n,), generator=gen), torch.randint(low, BASE**hi, (n,), generator=gen))


def length_pairs(n: int, lo: int, hi: int, gen: torch.Generator, *, exact: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Pairs drawn by length first: k uniform in [lo, hi] per pair, then each operand uniform
    among the k-digit numbers (`exact`, Jack Cai's trainer) or below 10^k (yinglunz's).

    Either way a tenth of the last phase's pairs are single digits, where uniform values over
    10 digits make nine in ten operands full-length."""
    k = torch.randint(lo, hi + 1, (n,), generator=gen)
    low = torch.where(k > 1, BASE ** (k - 1), torch.zeros_like(k)) if exact else torch.zeros_like(k)
    span = (BASE**k - low).double()

    def operand():
        return low + (torch.rand(n, generator=gen, dtype=torch.float64) * span).long()

    return operand(), operand()


#: How plain (not carry-heavy) operands are drawn: uniform over the values of the phase's digit
#: range, or by length first (`length_pairs`): k-digit operands, or operands below 10^k.
OPERANDS = {"values": uniform_pairs, "lengths": length_pairs,
            "bounds": lambda n, lo, hi, gen: length_pairs(n, lo, hi, gen, exact=False)}


def carry_heavy_pairs(n: int, hi: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Pairs whose first `hi` digit positions are mostly generate/propagate: long chains."""
    odds = torch.tensor(CARRY_HEAVY_ODDS)
    cls = torch.multinomial(odds, n * DIGITS, replacement=True, generator=gen).view(n, DIGITS)
    cls = torch.tensor(CARRY_HEAVY_CLASSES)[cls]
    cls[:, hi:] = Carry.KILL  # keep the digit count of the phase
    a, b = pairs_for_classes(cls, gen)
    top = BASE**hi
    return a % top, b % top  # kill class may hold non-zero digits: cut to `hi` digits


def carry_family_pairs(n: int, lo: int, hi: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Carry-heavy pairs of k digits (k uniform in [lo, hi]), a quarter from each family:

    * single — one position where both digits are 5..9 (a carry), every other digit 0..4;
    * chain — a = 10^k - 1 (k nines) plus a small b in [1, 10^min(k,3)]: the carry runs to the top;
    * place — a random k-digit a plus one non-zero digit at one position of b;
    * boundary — a just below a power of ten (10^k - 1..10), plus 1..20.
    """
    k = torch.randint(lo, hi + 1, (n,), generator=gen)
    top = BASE**k
    family = torch.randint(0, 4, (n,), generator=gen)
    at = (torch.rand(n, generator=gen) * k).long()  # one digit position below k
    one_hot = torch.arange(DIGITS)[None, :] == at[:, None]  # [n, DIGITS]
    inside = torch.arange(DIGITS)[None, :] < k[:, None]
    half = BASE // 2  # two digits >= half always carry, two below it never do

    def single_operand():
        d = torch.where(one_hot, torch.randint(half, BASE, (n, DIGITS), generator=gen),
                        torch.randint(0, half, (n, DIGITS), generator=gen))
        return from_digits(d * inside)

    sa, sb = single_operand(), single_operand()
    ca, cb = top - 1, 1 + (torch.rand(n, generator=gen) * BASE ** k.clamp(max=3)).long()
    low = torch.where(k > 1, BASE ** (k - 1), torch.zeros_like(k))
    pa = low + (torch.rand(n, generator=gen, dtype=torch.float64) * (top - low)).long()
    pb = torch.randint(1, BASE, (n,), generator=gen) * BASE**at
    ba, bb = top - torch.randint(1, 11, (n,), generator=gen), torch.randint(1, 21, (n,), generator=gen)
    pick = family[:, None]
    a = torch.stack([sa, ca, pa, ba], 1).gather(1, pick).squeeze(1)
    b = torch.stack([sb, cb, pb, bb], 1).gather(1, pick).squeeze(1)
    return a.clamp(0, MAX_ADDEND), b.clamp(0, MAX_ADDEND)


def carry_mix_at(step: int, base: float, fade: tuple[int, int]) -> float:
    start, end = fade
    if step <= start:
        return base
    if step >= end:
        return 0.0
    return base * (1 - (step - start) / (end - start))


SAMPLERS = ("families", "classes")


def training_batch(step: int, batch: int, phases, carry_mix: float, fade, gen: torch.Generator,
                   sampler: str = "classes", exclude=None, operands: str = "values"):
    """Operand pairs [batch] for `step`: uniform within the phase's digit range, a `carry_mix_at`
    share of them replaced by carry-heavy pairs from `sampler` ("families" or "classes").

    `exclude` (a `guard.Forbidden`): pairs no batch may hold (the official and held-out ones),
    replaced without drawing anything more, so the stream is the same wherever none was drawn."""
    lo, hi = digit_range(step, phases)
    a, b = mixed_pairs(batch, lo, hi, carry_mix_at(step, carry_mix, fade), gen, sampler, operands)
    return exclude.clean(a, b) if exclude is not None else (a, b)


def check_sources(sampler: str, operands: str) -> None:
    """An AdderError naming `sampler` or `operands` unless SAMPLERS and OPERANDS know them."""
    if sampler not in SAMPLERS:
        raise AdderError(f"carry sampler must be one of {SAMPLERS}, got {sampler!r}")
    if operands not in OPERANDS:
        raise AdderError(f"operands must be one of {tuple(OPERANDS)}, got {operands!r}")


def hyper_batch(h, step: int, n: int, phases, gen: torch.Generator, exclude=None):
    """`training_batch` of `n` pairs as the run's hyperparameters `h` (a `Hyper`) draw them."""
    return training_batch(step, n, phases, h.carry_mix, h.carry_fade, gen, h.carry_sampler, exclude, h.operands)


def mixed_pairs(n: int, lo: int, hi: int, mix: float, gen: torch.Generator, sampler: str = "classes",
                operands: str = "values"):
    """`n` pairs of lo..hi digits drawn as `operands` says (OPERANDS), a `mix` share of them
    replaced by carry-heavy pairs from `sampler`."""
    check_sources(sampler, operands)
    a, b = OPERANDS[operands](n, lo, hi, gen)
    heavy = torch.rand(n, generator=gen) < mix
    k = int(heavy.sum())
    if k:
        ha, hb = carry_family_pairs(k, lo, hi, gen) if sampler == "families" else carry_heavy_pairs(k, hi, gen)
        a[heavy], b[heavy] = ha, hb
    return a, b


def validation_pairs(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Held-out uniform 10-digit pairs (seed VALIDATION_SEED, not the official 2025)."""
    return uniform_pairs(n, 1, DIGITS, torch.Generator().manual_seed(VALIDATION_SEED))
