"""Case generators: where counterexamples live, as batches of addend pairs.

Every suite is a generator of `(a, b)` int64 tensor chunks plus a case count, seeded
explicitly; the runner (`runner.py`) is the same for all of them. The building block is a
per-digit *class*: each digit position of a pair either

* **generates** a carry (a_i + b_i >= 10),
* **propagates** one (a_i + b_i == 9), or
* **kills** it (a_i + b_i <= 8),

and `pairs_for_classes` draws digits uniformly within given classes. Carry chains are then
just class patterns: G P P P K ...
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass
from typing import Callable, Iterator

import torch

from ..compiler.errors import AdderError

GENERATE, PROPAGATE, KILL = 0, 1, 2
DIGITS = 10
MAX = 10**DIGITS - 1
POWERS = 10 ** torch.arange(DIGITS, dtype=torch.long)

#: AdderBoard's fixed edge cases, in the order its verify.py runs them.
EDGE_CASES = [(0, 0), (0, 1), (9_999_999_999, 0), (9_999_999_999, 1), (9_999_999_999, 9_999_999_999),
              (5_000_000_000, 5_000_000_000), (1_111_111_111, 8_888_888_889), (1_234_567_890, 9_876_543_210),
              (9_999_999_999, 9_999_999_999), (1, 9_999_999_999)]
OFFICIAL_SEED = 2025
OFFICIAL_RANDOM = 10_000
QUALIFY_AT = 0.99
#: Random instances of each chain pattern per unit of k (patterns are few: ~200).
CHAIN_INSTANCES = 8

Chunks = Iterator[tuple[torch.Tensor, torch.Tensor]]


def official_pairs(seed: int = OFFICIAL_SEED, n: int = OFFICIAL_RANDOM) -> list[tuple[int, int]]:
    """The official qualification cases: the edge cases, then `Random(2025)` draws a, b."""
    rng = random.Random(seed)
    return EDGE_CASES + [(rng.randint(0, MAX), rng.randint(0, MAX)) for _ in range(n)]


def pairs_for_classes(cls: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Digit pairs drawn uniformly within each position's class. cls [B, 10] -> a, b [B]."""
    n = cls.shape[0]
    u1 = torch.rand(cls.shape, generator=gen, dtype=torch.float64)
    u2 = torch.rand(cls.shape, generator=gen, dtype=torch.float64)
    # generate: a in 1..9, b in 10-a..9 | propagate: a in 0..9, b = 9-a | kill: a in 0..8, b in 0..8-a
    a_gen = 1 + (u1 * 9).floor().long()
    a_any = (u1 * 10).floor().long()
    a_kill = (u1 * 9).floor().long()
    a = torch.where(cls == GENERATE, a_gen, torch.where(cls == PROPAGATE, a_any, a_kill))
    b_gen = (10 - a) + (u2 * a).floor().long()
    b_kill = (u2 * (9 - a)).floor().long()
    b = torch.where(cls == GENERATE, b_gen, torch.where(cls == PROPAGATE, 9 - a, b_kill))
    assert n == 0 or (a.max() <= 9 and b.max() <= 9 and b.min() >= 0)
    return (a * POWERS).sum(1), (b * POWERS).sum(1)


def carries_in(a: torch.Tensor, b: torch.Tensor, n: int = DIGITS + 1) -> torch.Tensor:
    """Carry into digit i (i = 0..n-1) of a + b -> [B, n] in {0, 1}."""
    powers = 10 ** torch.arange(n, dtype=torch.long)
    return (((a[:, None] % powers) + (b[:, None] % powers)) >= powers).long()


def longest_chain(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Length of the longest run of consecutive carry-outs in a + b -> [B]."""
    c = carries_in(a, b)[:, 1:]  # carry out of digits 0..9
    best = torch.zeros(len(a), dtype=torch.long)
    run = torch.zeros(len(a), dtype=torch.long)
    for j in range(DIGITS):
        run = (run + 1) * c[:, j]
        best = torch.maximum(best, run)
    return best


# ----------------------------------------------------------------------------- suites
@dataclass(frozen=True)
class Suite:
    name: str
    description: str
    count: Callable[[dict], int]
    chunks: Callable[[int, int, dict], Chunks]  # (seed, chunk_size, options) -> chunks


def _batched(a: torch.Tensor, b: torch.Tensor, size: int) -> Chunks:
    for i in range(0, len(a), size):
        yield a[i:i + size], b[i:i + size]


def adderboard_chunks(seed: int, size: int, opts: dict) -> Chunks:
    pairs = official_pairs()
    a = torch.tensor([x for x, _ in pairs], dtype=torch.long)
    b = torch.tensor([y for _, y in pairs], dtype=torch.long)
    yield from _batched(a, b, size)


def carry_patterns() -> torch.Tensor:
    """All 3^10 generate/propagate/kill patterns of the 10 positions -> [59049, 10]."""
    idx = torch.arange(3**DIGITS, dtype=torch.long)
    return (idx[:, None] // 3 ** torch.arange(DIGITS, dtype=torch.long)) % 3


def carry_chunks(seed: int, size: int, opts: dict) -> Chunks:
    gen = torch.Generator().manual_seed(seed)
    pats = carry_patterns()
    for _ in range(opts.get("k", 1)):
        for i in range(0, len(pats), size):
            yield pairs_for_classes(pats[i:i + size], gen)


def chain_patterns() -> torch.Tensor:
    """Class patterns of every carry chain, on a kill background.

    For each start s and length L (the chain generates at s and propagates through the next
    L - 1 digits): the chain stopped by a kill digit, or reaching the top digit (carry into
    digit 11); the chain broken by one kill digit and resumed by propagates (which must then
    *not* carry); and runs of propagates (sum digits 9) with and without a generate below.
    """
    rows = []
    for s in range(DIGITS):
        for L in range(1, DIGITS - s + 1):
            base = [KILL] * DIGITS
            base[s] = GENERATE
            for j in range(s + 1, s + L):
                base[j] = PROPAGATE
            rows.append(base)  # stops at a kill, or reaches the top when s + L == 10
            if s + L < DIGITS:  # broken by one kill digit, then propagates that must not carry
                broken = list(base)
                for j in range(s + L + 1, DIGITS):
                    broken[j] = PROPAGATE
                rows.append(broken)
    for start in range(DIGITS):  # runs of 9s in the sum
        for end in range(start + 1, DIGITS + 1):
            run = [KILL] * DIGITS
            for j in range(start, end):
                run[j] = PROPAGATE
            rows.append(run)  # no incoming carry: every sum digit in the run is 9
            if start > 0:
                with_carry = list(run)
                with_carry[start - 1] = GENERATE
                rows.append(with_carry)  # a carry ripples through the whole run
    return torch.tensor(rows, dtype=torch.long)


def chains_chunks(seed: int, size: int, opts: dict) -> Chunks:
    gen = torch.Generator().manual_seed(seed)
    pats = chain_patterns().repeat(CHAIN_INSTANCES * opts.get("k", 1), 1)
    a, b = pairs_for_classes(pats, gen)
    a, b = torch.cat([a, b]), torch.cat([b, a])  # both operand orders
    yield from _batched(a, b, size)


def window_chunks(seed: int, size: int, opts: dict) -> Chunks:
    """Every digit value of both operands in a window of w positions, at every offset."""
    w = opts.get("window", 2)
    gen = torch.Generator().manual_seed(seed)
    combos = torch.tensor(list(itertools.product(range(10), repeat=2 * w)), dtype=torch.long)  # [10^2w, 2w]
    for offset in range(DIGITS - w + 1):
        bg_a = torch.randint(0, MAX + 1, (len(combos),), generator=gen)
        bg_b = torch.randint(0, MAX + 1, (len(combos),), generator=gen)
        place = 10 ** torch.arange(offset, offset + w, dtype=torch.long)
        a = bg_a - (bg_a % (10 ** (offset + w)) - bg_a % (10 ** offset)) + (combos[:, :w] * place).sum(1)
        b = bg_b - (bg_b % (10 ** (offset + w)) - bg_b % (10 ** offset)) + (combos[:, w:] * place).sum(1)
        yield from _batched(a, b, size)


def random_chunks(seed: int, size: int, opts: dict) -> Chunks:
    n = opts.get("n", 100_000)
    gen = torch.Generator().manual_seed(seed)
    done = 0
    while done < n:  # uniform pairs
        m = min(size, n - done)
        yield torch.randint(0, MAX + 1, (m,), generator=gen), torch.randint(0, MAX + 1, (m,), generator=gen)
        done += m
    done = 0
    while done < n:  # random lengths: each operand has 1..10 digits
        m = min(size, n - done)
        la = torch.randint(1, DIGITS + 1, (m,), generator=gen)
        lb = torch.randint(1, DIGITS + 1, (m,), generator=gen)
        a = (torch.rand(m, generator=gen, dtype=torch.float64) * (10.0 ** la)).long().clamp(max=MAX)
        b = (torch.rand(m, generator=gen, dtype=torch.float64) * (10.0 ** lb)).long().clamp(max=MAX)
        yield a, b
        done += m


SUITES: dict[str, Suite] = {
    "adderboard": Suite("adderboard", "the official 10,010 cases (10 edge cases + Random(2025))",
                        lambda o: len(EDGE_CASES) + OFFICIAL_RANDOM, adderboard_chunks),
    "carry": Suite("carry", "every generate/propagate/kill pattern of the 10 digits (3^10) x k",
                   lambda o: 3**DIGITS * o.get("k", 1), carry_chunks),
    "chains": Suite("chains", "every carry chain by start and length, stopped, reaching the top, broken; "
                              "runs of 9s with and without carry; both operand orders",
                    lambda o: 2 * len(chain_patterns()) * CHAIN_INSTANCES * o.get("k", 1), chains_chunks),
    "window": Suite("window", "all digits of both operands in a sliding window of w positions, every offset",
                    lambda o: (DIGITS - o.get("window", 2) + 1) * 10 ** (2 * o.get("window", 2)), window_chunks),
    "random": Suite("random", "n uniform pairs + n pairs of random lengths (1-10 digits)",
                    lambda o: 2 * o.get("n", 100_000), random_chunks),
}
ADVERSARIAL = ("carry", "chains", "window")
#: Instances per carry pattern / chain under `--adversarial` unless `--k` is given:
#: 16 x 59,049 carry + 16 x 3,200 chains + 90,000 window cases = 1,085,984 (> 10^6).
ADVERSARIAL_K = 16


def get_suite(name: str) -> Suite:
    if name not in SUITES:
        raise AdderError(f"unknown suite {name!r}; choose from {', '.join(SUITES)}")
    return SUITES[name]
