"""Hypothesis strategies for addition cases, to use in your own property-based tests.

    from hypothesis import given
    from adder.verify.strategies import addend_pairs, carry_chains

    @given(addend_pairs(digits=10))
    def test_my_model_adds(pair): ...

Every pair is built digit by digit: first a carry class per position (`Carry.KILL`: a_i + b_i
<= 8, `Carry.PROPAGATE`: = 9, `Carry.GENERATE`: >= 10; `adder.compiler.digits`), then the
digits within it. Classes are drawn kill-first, so Hypothesis shrinks a failure towards the
fewest carries, i.e. the shortest carry chain that still breaks the model, and digits shrink
towards 0.
"""

from __future__ import annotations

from functools import cache

from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from ..compiler.digits import BASE, DIGITS, Carry

#: The order classes are drawn in, simplest first: Hypothesis shrinks towards the first.
SHRINK_ORDER = (Carry.KILL, Carry.PROPAGATE, Carry.GENERATE)


def _check_digits(digits: int, name: str = "digits") -> None:
    if isinstance(digits, bool) or not isinstance(digits, int) or not 1 <= digits <= DIGITS:
        raise InvalidArgument(f"{name} must be an int in 1..{DIGITS}, got {digits!r}")


def _check_class(cls) -> None:
    if not isinstance(cls, Carry):
        raise InvalidArgument(f"a carry class must be one of {', '.join(f'Carry.{c.name}' for c in SHRINK_ORDER)}, got {cls!r}")


def digit_classes(*, allow: tuple[Carry, ...] = SHRINK_ORDER) -> st.SearchStrategy[Carry]:
    """One position's class: a `Carry` from `allow` (shrinks towards kill)."""
    if not allow:
        raise InvalidArgument("allow must name at least one carry class")
    for cls in allow:
        _check_class(cls)
    return _classes(tuple(c for c in SHRINK_ORDER if c in allow))


@cache
def _classes(allowed: tuple[Carry, ...]) -> st.SearchStrategy[Carry]:
    return st.sampled_from(allowed)


def digit_pairs(cls: Carry) -> st.SearchStrategy[tuple[int, int]]:
    """Digits (a_i, b_i) uniformly within a class."""
    _check_class(cls)
    return _DIGIT_PAIRS[cls]


@st.composite
def _digit_pairs(draw, cls: Carry) -> tuple[int, int]:
    a = draw(_digits(*cls.first_digits()))
    lo, hi = cls.second_digits(a)
    return a, lo if cls is Carry.PROPAGATE else draw(_digits(lo, hi))  # propagate: b = 9 - a, nothing to draw


@cache
def _digits(lo: int, hi: int) -> st.SearchStrategy[int]:
    return st.integers(lo, hi)


#: One strategy object per class (and per digit range, per set of classes), built once: the pair
#: builders below draw ten of them per example, and a strategy made afresh is validated afresh
#: (the margin-steered search spent about a fifth of its time there). The draws are the same.
_DIGIT_PAIRS = {cls: _digit_pairs(cls) for cls in SHRINK_ORDER}


def _from_digits(pairs: list[tuple[int, int]]) -> tuple[int, int]:
    """Digit pairs, least significant first -> (a, b)."""
    return (sum(da * BASE**i for i, (da, _) in enumerate(pairs)), sum(db * BASE**i for i, (_, db) in enumerate(pairs)))


def addend_pairs(*, digits: int = DIGITS, classes: st.SearchStrategy[Carry] | None = None) -> st.SearchStrategy[tuple[int, int]]:
    """Pairs (a, b) of at most `digits` digits, each position's carry class drawn first."""
    _check_digits(digits)
    classes = digit_classes() if classes is None else classes

    @st.composite
    def build(draw):
        return _from_digits([draw(digit_pairs(draw(classes))) for _ in range(digits)])

    return build()


def carry_chains(*, min_length: int = 1, max_length: int = DIGITS, digits: int = DIGITS,
                 carry_in: bool | None = True) -> st.SearchStrategy[tuple[int, int]]:
    """Pairs containing a run of length L: a generate at position s, then propagates.

    `carry_in=True` (default): a carry chain, the generate followed by L - 1 propagates.
    `carry_in=False`: L propagates with a kill below, i.e. a run of 9s in the sum that must
    *not* turn over. `carry_in=None`: either. Other positions are drawn freely (any class).
    """
    _check_digits(digits)
    if isinstance(min_length, bool) or not isinstance(min_length, int) or not isinstance(max_length, int):
        raise InvalidArgument("min_length and max_length must be ints")
    if not 1 <= min_length <= max_length <= digits:
        raise InvalidArgument(f"need 1 <= min_length <= max_length <= digits, got {min_length}, {max_length}, {digits}")

    @st.composite
    def build(draw):
        length = draw(st.integers(min_length, max_length))
        start = draw(st.integers(0, digits - length))
        gen = draw(st.booleans()) if carry_in is None else carry_in
        pairs = []
        for i in range(digits):
            if i == start - 1 and not gen:
                cls = Carry.KILL
            elif i == start:
                cls = Carry.GENERATE if gen else Carry.PROPAGATE
            elif start < i < start + length:
                cls = Carry.PROPAGATE
            else:
                cls = draw(digit_classes())
            pairs.append(draw(digit_pairs(cls)))
        return _from_digits(pairs)

    return build()
