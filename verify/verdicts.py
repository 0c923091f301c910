"""`Verdict`: what a proof run established, one word per outcome.

It lives here, below the prover, so that every layer that reads a proof report (the board, the
until-proven loop in `train/`, the command line) compares against the same names instead of
bare strings. A `str` enum: each verdict compares equal to its word and is written to JSON as
that word, so reports and certificates stay plain text.
"""

from __future__ import annotations

from enum import Enum


class Verdict(str, Enum):
    """Strongest first (docs/prove.md, "The theorem")."""

    PROVEN = "proven"  # every step of the argument went through, every assumption checked
    CONDITIONAL = "conditional"  # the argument went through, but a library assumption was only sampled or unchecked
    REFUTED = "refuted"  # a concrete input that greedy decoding gets wrong
    REAL_ONLY = "real-only"  # correct in real arithmetic; the float model is not proven
    UNDECIDED = "undecided"  # open regions remain (or the budget ran out)
    CANDIDATE = "candidate"  # internal: the search bounded every step; the checks decide
    CLOSED = "closed"  # a step only: bounded by the search, not re-checked on its own

    def __str__(self) -> str:
        return self.value
