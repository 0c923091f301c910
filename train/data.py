"""Training data, generated vectorised: uniform pairs by digit count, curriculum phases and
carry-heavy examples. No Python loop per example (a per-example loop costs 15-35% of a
training step on a 2-core CPU).
"""

from __future__ import annotations

import torch

from ..compiler.errors import AdderError

#: Seed of the held-out validation pairs: never AdderBoard's 2025.
VALIDATION_SEED = 31_337


def parse_curriculum(text: str) -> list[tuple[int, int, float]]:
    """'1-3:2000,1-6:5000,1-10:rest' -> [(1, 3, 2000), (1, 6, 7000), (1, 10, inf)]."""
    phases, end = [], 0
    try:
        for part in text.split(","):
            rng, steps = part.strip().split(":")
            lo, hi = (int(x) for x in rng.split("-"))
            if not 1 <= lo <= hi <= 10:
                raise ValueError(f"digit range {rng} must satisfy 1 <= lo <= hi <= 10")
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
    low = 0 if lo == 1 else 10 ** (lo - 1)
    return (torch.randint(low, 10**hi, (n,), generator=gen), torch.randint(low, 10**hi, (n,), generator=gen))


def carry_heavy_pairs(n: int, lo: int, hi: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Carry-heavy pairs within the phase's digit range, a quarter from each family:

    * single carry — one position with both digits 5..9, the others 0..4;
    * long chain — a = 10^k - 1 (k digits of 9) plus a small b: the carry runs to the top;
    * place value — a random k-digit a plus one digit d at one position of b;
    * boundary — a just below a power of ten, plus 1..20.
    """
    k = torch.randint(lo, hi + 1, (n,), generator=gen)
    top = 10**k
    fam = torch.randint(0, 4, (n,), generator=gen)
    pos = (torch.rand(n, generator=gen) * k).long()  # a position below k
    place = 10**pos
    # single carry
    digits = torch.randint(0, 5, (n, 10), generator=gen)
    big = torch.randint(5, 10, (n, 2), generator=gen)
    pw = 10 ** torch.arange(10)
    mask = torch.arange(10)[None, :] < k[:, None]
    sa = ((digits * pw) * mask).sum(1) - (digits.gather(1, pos[:, None]).squeeze(1) - big[:, 0]) * place
    digits_b = torch.randint(0, 5, (n, 10), generator=gen)
    sb = ((digits_b * pw) * mask).sum(1) - (digits_b.gather(1, pos[:, None]).squeeze(1) - big[:, 1]) * place
    # long chain
    small_top = 10 ** torch.clamp(k, max=3)
    ca, cb = top - 1, 1 + (torch.rand(n, generator=gen) * small_top).long()
    # place value
    low = torch.where(k > 1, 10 ** (k - 1), torch.zeros_like(k))
    pa = low + (torch.rand(n, generator=gen, dtype=torch.float64) * (top - low)).long()
    pb = torch.randint(1, 10, (n,), generator=gen) * place
    # boundary
    ba, bb = top - torch.randint(1, 11, (n,), generator=gen), torch.randint(1, 21, (n,), generator=gen)
    a = torch.stack([sa, ca, pa, ba], 1).gather(1, fam[:, None]).squeeze(1)
    b = torch.stack([sb, cb, pb, bb], 1).gather(1, fam[:, None]).squeeze(1)
    return a.clamp(0, 10**10 - 1), b.clamp(0, 10**10 - 1)


def carry_mix_at(step: int, base: float, fade: tuple[int, int]) -> float:
    start, end = fade
    if step <= start:
        return base
    if step >= end:
        return 0.0
    return base * (1 - (step - start) / (end - start))


def training_batch(step: int, batch: int, phases, carry_mix: float, fade, gen: torch.Generator):
    lo, hi = digit_range(step, phases)
    a, b = uniform_pairs(batch, lo, hi, gen)
    mix = carry_mix_at(step, carry_mix, fade)
    heavy = torch.rand(batch, generator=gen) < mix
    k = int(heavy.sum())
    if k:
        ha, hb = carry_heavy_pairs(k, lo, hi, gen)
        a[heavy], b[heavy] = ha, hb
    return a, b


def validation_pairs(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Held-out uniform 10-digit pairs (seed VALIDATION_SEED, not the official 2025)."""
    return uniform_pairs(n, 1, 10, torch.Generator().manual_seed(VALIDATION_SEED))
