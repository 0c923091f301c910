"""Hypothesis strategies for addition cases, to use in your own property-based tests.

    from hypothesis import given
    from adder.verify.strategies import addend_pairs, carry_chains

    @given(addend_pairs(digits=10))
    def test_my_model_adds(pair): ...

Every pair is built digit by digit: first a *class* per position (kill: a_i + b_i <= 8,
propagate: = 9, generate: >= 10), then the digits within it. Classes are drawn kill-first,
so Hypothesis shrinks a failure towards the fewest carries, i.e. the shortest carry chain
that still breaks the model, and digits shrink towards 0.
"""

from __future__ import annotations

from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

KILL, PROPAGATE, GENERATE = "kill", "propagate", "generate"
CLASS_ORDER = (KILL, PROPAGATE, GENERATE)  # shrink order: kill is "simplest"


def _check_digits(digits: int, name: str = "digits") -> None:
    if isinstance(digits, bool) or not isinstance(digits, int) or not 1 <= digits <= 10:
        raise InvalidArgument(f"{name} must be an int in 1..10, got {digits!r}")


def digit_classes(*, allow: tuple[str, ...] = CLASS_ORDER) -> st.SearchStrategy[str]:
    """One position's class: "kill", "propagate" or "generate" (shrinks towards kill)."""
    if not allow or any(c not in CLASS_ORDER for c in allow):
        raise InvalidArgument(f"allow must be a non-empty subset of {CLASS_ORDER}, got {allow!r}")
    return st.sampled_from([c for c in CLASS_ORDER if c in allow])


@st.composite
def digit_pairs(draw, cls: str) -> tuple[int, int]:
    """Digits (a_i, b_i) uniformly within a class."""
    if cls == GENERATE:
        a = draw(st.integers(1, 9))
        return a, draw(st.integers(10 - a, 9))
    if cls == PROPAGATE:
        a = draw(st.integers(0, 9))
        return a, 9 - a
    a = draw(st.integers(0, 8))
    return a, draw(st.integers(0, 8 - a))


def addend_pairs(*, digits: int = 10, classes: st.SearchStrategy[str] | None = None) -> st.SearchStrategy[tuple[int, int]]:
    """Pairs (a, b) of at most `digits` digits, each position's carry class drawn first."""
    _check_digits(digits)
    classes = digit_classes() if classes is None else classes

    @st.composite
    def build(draw):
        a = b = 0
        for i in range(digits):
            da, db = draw(digit_pairs(draw(classes)))
            a, b = a + da * 10**i, b + db * 10**i
        return a, b

    return build()


def carry_chains(*, min_length: int = 1, max_length: int = 10, digits: int = 10,
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
        a = b = 0
        for i in range(digits):
            if i == start - 1 and not gen:
                cls = KILL
            elif i == start:
                cls = GENERATE if gen else PROPAGATE
            elif start < i < start + length:
                cls = PROPAGATE
            else:
                cls = draw(digit_classes())
            da, db = draw(digit_pairs(cls))
            a, b = a + da * 10**i, b + db * 10**i
        return a, b

    return build()
