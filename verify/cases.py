"""Case generators: where counterexamples live, as batches of addend pairs.

Every suite is a generator of `(a, b)` int64 tensor chunks plus a case count, seeded
explicitly, with its options in one `SuiteOptions`; the runner (`runner.py`) is the same for
all of them. A suite's cases depend on the seed and the options only: it draws them in
blocks of its own (`Suite.blocks`), which `Suite.chunks` re-cuts to any chunk size, so the
chunk size bounds memory and changes nothing else. The carry, chains and window suites are
built from carry classes (generate / propagate / kill, `adder.compiler.digits`): a carry
chain is a class pattern G P P P K ..., and `pairs_for_classes` draws its digits.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import asdict, dataclass
from typing import Callable, Iterable, Iterator

import torch

from ..compiler.digits import BASE, DIGITS, MAX_ADDEND, Carry, pairs_for_classes
from ..compiler.errors import AdderError

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


#: Cases the carry and random suites draw per call of the random generator. Fixed, so that a
#: seed names the same cases under any chunk size; equal to the runner's default chunk, so a
#: default run is cut into chunks exactly where the cases were drawn.
DRAW_BLOCK = 4096
#: The widest window the window suite enumerates: (DIGITS + 1 - w) x BASE^2w cases.
MAX_WINDOW = 3
DEFAULT_SUITE = "adderboard"


def official_pairs(seed: int = OFFICIAL_SEED, n: int = OFFICIAL_RANDOM) -> list[tuple[int, int]]:
    """The official qualification cases: the edge cases, then `Random(2025)` draws a, b."""
    rng = random.Random(seed)
    return EDGE_CASES + [(rng.randint(0, MAX_ADDEND), rng.randint(0, MAX_ADDEND)) for _ in range(n)]


@dataclass(frozen=True)
class SuiteOptions:
    """The options of the generated suites: `k` instances per carry pattern and chain,
    `window` width w of the window suite, `n` pairs per half of the random suite."""

    k: int = 1
    window: int = 2
    n: int = 100_000

    def __post_init__(self):
        for name, lo, hi in (("k", 1, None), ("window", 1, MAX_WINDOW), ("n", 1, None)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < lo or (hi is not None and v > hi):
                rule = f"an integer in {lo}..{hi}" if hi is not None else "a positive integer"
                raise AdderError(f"suite option {name} (--{name}) must be {rule}, got {v!r}")

    @classmethod
    def for_run(cls, *, adversarial: bool, k: int | None = None, **given) -> "SuiteOptions":
        """A run's options: `k` not given means ADVERSARIAL_K under --adversarial, else 1."""
        return cls(k=k if k is not None else (ADVERSARIAL_K if adversarial else cls.k), **given)

    def to_json(self) -> dict:
        return asdict(self)


def rechunk(blocks: Iterable[tuple[torch.Tensor, torch.Tensor]], size: int) -> Chunks:
    """The pairs of `blocks`, in order, cut into chunks of `size` (the last may be shorter)."""
    parts_a, parts_b, have = [], [], 0
    for a, b in blocks:
        start = 0
        while start < len(a):
            take = min(size - have, len(a) - start)
            parts_a.append(a[start:start + take])
            parts_b.append(b[start:start + take])
            have, start = have + take, start + take
            if have == size:
                yield torch.cat(parts_a), torch.cat(parts_b)
                parts_a, parts_b, have = [], [], 0
    if have:
        yield torch.cat(parts_a), torch.cat(parts_b)


# ----------------------------------------------------------------------------- suites
@dataclass(frozen=True)
class Suite:
    name: str
    description: str
    count: Callable[[SuiteOptions], int]
    blocks: Callable[[int, SuiteOptions], Chunks]  # (seed, options) -> the cases, in blocks of the suite's own

    def chunks(self, seed: int, size: int, options: SuiteOptions) -> Chunks:
        """The suite's cases in chunks of `size`: the same cases, in the same order, for any size."""
        return rechunk(self.blocks(seed, options), size)


def _drawn(n: int) -> Iterator[int]:
    """Sizes of the DRAW_BLOCK blocks that draw n cases."""
    for done in range(0, n, DRAW_BLOCK):
        yield min(DRAW_BLOCK, n - done)


def adderboard_blocks(seed: int, opts: SuiteOptions) -> Chunks:
    pairs = official_pairs()
    yield (torch.tensor([x for x, _ in pairs], dtype=torch.long), torch.tensor([y for _, y in pairs], dtype=torch.long))


def carry_patterns() -> torch.Tensor:
    """All 3^10 generate/propagate/kill patterns of the 10 positions -> [59049, 10]."""
    idx = torch.arange(len(Carry)**DIGITS, dtype=torch.long)
    return (idx[:, None] // len(Carry) ** torch.arange(DIGITS, dtype=torch.long)) % len(Carry)


def carry_blocks(seed: int, opts: SuiteOptions) -> Chunks:
    gen = torch.Generator().manual_seed(seed)
    pats = carry_patterns()
    for _ in range(opts.k):
        for i in range(0, len(pats), DRAW_BLOCK):
            yield pairs_for_classes(pats[i:i + DRAW_BLOCK], gen)


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
            base = [Carry.KILL] * DIGITS
            base[s] = Carry.GENERATE
            for j in range(s + 1, s + L):
                base[j] = Carry.PROPAGATE
            rows.append(base)  # stops at a kill, or reaches the top when s + L == 10
            if s + L < DIGITS:  # broken by one kill digit, then propagates that must not carry
                broken = list(base)
                for j in range(s + L + 1, DIGITS):
                    broken[j] = Carry.PROPAGATE
                rows.append(broken)
    for start in range(DIGITS):  # runs of 9s in the sum
        for end in range(start + 1, DIGITS + 1):
            run = [Carry.KILL] * DIGITS
            for j in range(start, end):
                run[j] = Carry.PROPAGATE
            rows.append(run)  # no incoming carry: every sum digit in the run is 9
            if start > 0:
                with_carry = list(run)
                with_carry[start - 1] = Carry.GENERATE
                rows.append(with_carry)  # a carry ripples through the whole run
    return torch.tensor(rows, dtype=torch.long)


def chains_blocks(seed: int, opts: SuiteOptions) -> Chunks:
    gen = torch.Generator().manual_seed(seed)
    pats = chain_patterns().repeat(CHAIN_INSTANCES * opts.k, 1)
    a, b = pairs_for_classes(pats, gen)
    yield torch.cat([a, b]), torch.cat([b, a])  # both operand orders


def window_blocks(seed: int, opts: SuiteOptions) -> Chunks:
    """Every digit value of both operands in a window of w positions, at every offset."""
    w = opts.window
    gen = torch.Generator().manual_seed(seed)
    combos = torch.tensor(list(itertools.product(range(BASE), repeat=2 * w)), dtype=torch.long)  # [BASE^2w, 2w]
    for offset in range(DIGITS - w + 1):
        bg_a = torch.randint(0, MAX_ADDEND + 1, (len(combos),), generator=gen)
        bg_b = torch.randint(0, MAX_ADDEND + 1, (len(combos),), generator=gen)
        place = BASE ** torch.arange(offset, offset + w, dtype=torch.long)
        below, upto = BASE**offset, BASE ** (offset + w)
        a = bg_a - (bg_a % upto - bg_a % below) + (combos[:, :w] * place).sum(1)
        b = bg_b - (bg_b % upto - bg_b % below) + (combos[:, w:] * place).sum(1)
        yield a, b


def random_blocks(seed: int, opts: SuiteOptions) -> Chunks:
    gen = torch.Generator().manual_seed(seed)
    for m in _drawn(opts.n):  # uniform pairs
        yield torch.randint(0, MAX_ADDEND + 1, (m,), generator=gen), torch.randint(0, MAX_ADDEND + 1, (m,), generator=gen)
    for m in _drawn(opts.n):  # random lengths: each operand has 1..DIGITS digits
        la = torch.randint(1, DIGITS + 1, (m,), generator=gen)
        lb = torch.randint(1, DIGITS + 1, (m,), generator=gen)
        a = (torch.rand(m, generator=gen, dtype=torch.float64) * (float(BASE) ** la)).long().clamp(max=MAX_ADDEND)
        b = (torch.rand(m, generator=gen, dtype=torch.float64) * (float(BASE) ** lb)).long().clamp(max=MAX_ADDEND)
        yield a, b


SUITES: dict[str, Suite] = {
    "adderboard": Suite("adderboard", "the official 10,010 cases (10 edge cases + Random(2025))",
                        lambda o: len(EDGE_CASES) + OFFICIAL_RANDOM, adderboard_blocks),
    "carry": Suite("carry", "every generate/propagate/kill pattern of the 10 digits (3^10) x k",
                   lambda o: len(Carry)**DIGITS * o.k, carry_blocks),
    "chains": Suite("chains", "every carry chain by start and length, stopped, reaching the top, broken; "
                              "runs of 9s with and without carry; both operand orders",
                    lambda o: 2 * len(chain_patterns()) * CHAIN_INSTANCES * o.k, chains_blocks),
    "window": Suite("window", "all digits of both operands in a sliding window of w positions, every offset",
                    lambda o: (DIGITS - o.window + 1) * BASE ** (2 * o.window), window_blocks),
    "random": Suite("random", "n uniform pairs + n pairs of random lengths (1-10 digits)",
                    lambda o: 2 * o.n, random_blocks),
}
ADVERSARIAL = ("carry", "chains", "window")
#: Instances per carry pattern / chain under `--adversarial` unless `--k` is given:
#: 16 x 59,049 carry + 16 x 3,200 chains + 90,000 window cases = 1,085,984 (> 10^6).
ADVERSARIAL_K = 16


def get_suite(name: str) -> Suite:
    if name not in SUITES:
        raise AdderError(f"unknown suite {name!r}; choose from {', '.join(SUITES)}")
    return SUITES[name]


def select_suites(names: list[str], adversarial: bool) -> list[str]:
    """The suites a run asks for, in order, each once: `names`, then the adversarial ones if
    asked for; the official suite when neither names any. Unknown names are an AdderError."""
    chosen = list(dict.fromkeys([*names, *(ADVERSARIAL if adversarial else ())])) or [DEFAULT_SUITE]
    for name in chosen:
        get_suite(name)
    return chosen
