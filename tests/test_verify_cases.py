"""Case generators: each suite really covers the family of cases it claims to."""

import pytest
import torch

from adder.compiler.digits import MAX_ADDEND, Carry, carries_in, digits_of, longest_chain, pair_classes, pairs_for_classes
from adder.compiler.errors import AdderError
from adder.verify.cases import (ADVERSARIAL, EDGE_CASES, SUITES, SuiteOptions, carry_patterns, official_pairs,
                                select_suites)

pytestmark = pytest.mark.usefixtures("one_thread")


def collect(name, chunk=5000, **opts):
    chunks = list(SUITES[name].chunks(0, chunk, SuiteOptions(**opts)))
    assert all(len(a) == chunk for a, _ in chunks[:-1]) and 0 < len(chunks[-1][0]) <= chunk
    return torch.cat([a for a, _ in chunks]), torch.cat([b for _, b in chunks])


def test_official_cases_are_the_edge_cases_then_seeded_random_pairs():
    pairs = official_pairs()
    assert len(pairs) == 10_010 and pairs[:10] == EDGE_CASES
    assert pairs == official_pairs()  # seeded
    assert all(0 <= x <= MAX_ADDEND for p in pairs for x in p)


def test_carry_classes_are_the_digit_pair_sums():
    a, b = torch.arange(100) // 10, torch.arange(100) % 10
    expect = [Carry.GENERATE if x + y >= 10 else Carry.PROPAGATE if x + y == 9 else Carry.KILL
              for x, y in zip(a.tolist(), b.tolist())]
    assert pair_classes(a, b, 1)[:, 0].tolist() == expect
    for c in Carry:  # the digit ranges of a class hold exactly its pairs
        lo, hi = c.first_digits()
        pairs = {(x, y) for x in range(lo, hi + 1) for y in range(c.second_digits(x)[0], c.second_digits(x)[1] + 1)}
        assert pairs == {(x, y) for x, y, e in zip(a.tolist(), b.tolist(), expect) if e == c}


def test_pairs_for_classes_respects_every_class():
    g = torch.Generator().manual_seed(0)
    cls = torch.randint(0, len(Carry), (5000, 10), generator=g)
    a, b = pairs_for_classes(cls, g)
    assert torch.equal(pair_classes(a, b), cls)
    seen = {(x, y) for x, y in zip(digits_of(a).flatten().tolist(), digits_of(b).flatten().tolist())}
    assert len(seen) == 100  # every digit pair of every class is drawn


def test_digits_and_carries_of_one_sum():
    a, b = torch.tensor([1_999_999_999]), torch.tensor([8_000_000_001])
    assert digits_of(a).tolist() == [[9] * 9 + [1]] and digits_of(a, 3, "msb").tolist() == [[9, 9, 9]]
    assert carries_in(a, b).tolist() == [[0] + [1] * 10]  # 1 + 9 carries, 9 + 0 + 1 propagates, 1 + 8 + 1 leaves the top
    assert longest_chain(a, b).tolist() == [10]


def test_carry_suite_is_every_pattern_once_per_instance():
    a, b = collect("carry", k=1)
    assert len(a) == SUITES["carry"].count(SuiteOptions(k=1)) == 3**10
    seen = pair_classes(a, b)
    assert torch.equal(seen, carry_patterns())
    assert int(carries_in(a, b)[:, 10].sum()) > 0  # the carry into the 11th digit is exercised


def test_chains_suite_has_every_chain_start_and_length():
    a, b = collect("chains", k=1)
    assert len(a) == SUITES["chains"].count(SuiteOptions(k=1))
    cls = pair_classes(a, b)
    found = set()
    for row in cls.tolist():
        for s in range(10):
            if row[s] == Carry.GENERATE:
                L = 1
                while s + L < 10 and row[s + L] == Carry.PROPAGATE:
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


SMALL = {"adderboard": {}, "carry": {"k": 2}, "chains": {"k": 1}, "window": {"window": 1}, "random": {"n": 5000}}


@pytest.mark.parametrize("name", list(SUITES))
def test_a_suites_cases_depend_on_seed_and_options_only(name):
    """The chunk size bounds memory: it must not change which cases a seed checks."""
    assert set(SMALL) == set(SUITES)
    a1, b1 = collect(name, chunk=4096, **SMALL[name])
    a2, b2 = collect(name, chunk=999, **SMALL[name])
    assert len(a1) == SUITES[name].count(SuiteOptions(**SMALL[name]))
    assert torch.equal(a1, a2) and torch.equal(b1, b2)


@pytest.mark.parametrize("options", [dict(k=0), dict(n=-5), dict(window=0), dict(window=4), dict(k=1.5), dict(n=True)])
def test_impossible_suite_options_are_one_line_errors(options):
    with pytest.raises(AdderError, match=f"suite option {next(iter(options))} .* got") as e:
        SuiteOptions(**options)
    assert "\n" not in str(e.value)


def test_suite_options_are_recorded_in_full():
    assert SuiteOptions(k=3).to_json() == {"k": 3, "window": 2, "n": 100_000}


def test_select_suites():
    assert select_suites([], False) == ["adderboard"]
    assert select_suites(["chains", "random", "chains"], False) == ["chains", "random"]
    assert select_suites(["carry", "random"], True) == ["carry", "random", *[s for s in ADVERSARIAL if s != "carry"]]
    with pytest.raises(AdderError, match="unknown suite 'nope'; choose from adderboard, carry"):
        select_suites(["adderboard", "nope"], False)
