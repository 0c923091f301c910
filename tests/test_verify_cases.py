"""Case generators: each suite really covers the family of cases it claims to."""

import pytest
import torch

from adder.verify.cases import (EDGE_CASES, GENERATE, KILL, PROPAGATE, SUITES, carries_in, carry_patterns,

                                longest_chain, official_pairs, pairs_for_classes)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One intra-op thread: on a shared 2-core machine, two spin-waiting threads run ~10x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def digit_classes(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    s = (a[:, None] // 10 ** torch.arange(10)) % 10 + (b[:, None] // 10 ** torch.arange(10)) % 10
    return torch.where(s >= 10, GENERATE, torch.where(s == 9, PROPAGATE, KILL))


def collect(name, **opts):
    chunks = list(SUITES[name].chunks(0, 5000, opts))
    return torch.cat([a for a, _ in chunks]), torch.cat([b for _, b in chunks])


def test_official_cases_are_the_edge_cases_then_seeded_random_pairs():
    pairs = official_pairs()
    assert len(pairs) == 10_010 and pairs[:10] == EDGE_CASES
    assert pairs == official_pairs()  # seeded
    assert all(0 <= x <= 9_999_999_999 for p in pairs for x in p)


def test_pairs_for_classes_respects_every_class():
    g = torch.Generator().manual_seed(0)
    cls = torch.randint(0, 3, (5000, 10), generator=g)
    a, b = pairs_for_classes(cls, g)
    assert torch.equal(digit_classes(a, b), cls)


def test_carry_suite_is_every_pattern_once_per_instance():
    a, b = collect("carry", k=1)
    assert len(a) == SUITES["carry"].count({"k": 1}) == 3**10
    seen = digit_classes(a, b)
    assert torch.equal(seen, carry_patterns())
    assert int(carries_in(a, b)[:, 10].sum()) > 0  # the carry into the 11th digit is exercised


def test_chains_suite_has_every_chain_start_and_length():
    a, b = collect("chains", k=1)
    assert len(a) == SUITES["chains"].count({"k": 1})
    cls = digit_classes(a, b)
    found = set()
    for row in cls.tolist():
        for s in range(10):
            if row[s] == GENERATE:
                L = 1
                while s + L < 10 and row[s + L] == PROPAGATE:
                    L += 1
                found.add((s, L))
    assert {(s, L) for s in range(10) for L in range(1, 11 - s)} <= found
    assert int(longest_chain(a, b).max()) == 10
    half = len(a) // 2  # both operand orders
    assert torch.equal(a[:half], b[half:]) and torch.equal(b[:half], a[half:])


def test_window_suite_enumerates_every_digit_pair_at_every_offset():
    a, b = collect("window", window=1)
    assert len(a) == 10 * 100
    for offset in range(10):
        da = (a[offset * 100:(offset + 1) * 100] // 10**offset) % 10
        db = (b[offset * 100:(offset + 1) * 100] // 10**offset) % 10
        assert len(set(zip(da.tolist(), db.tolist()))) == 100


def test_random_suite_mixes_lengths():
    a, b = collect("random", n=2000)
    assert len(a) == 4000
    lengths = {len(str(int(x))) for x in a[2000:]}
    assert lengths == set(range(1, 11))
