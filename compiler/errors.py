"""Errors a user can cause. The CLI prints them as one line, without a traceback.

Anything that is *not* an `AdderError` is a bug in `adder` and is shown with its traceback.
"""

import difflib
from collections.abc import Iterable


def did_you_mean(name: str, known: Iterable[str], n: int = 3) -> str:
    """' Did you mean a, b?' for the names closest to a mistyped `name` (or '')."""
    close = difflib.get_close_matches(name, list(known), n=n)
    return f" Did you mean {', '.join(close)}?" if close else ""


class AdderError(Exception):
    """A problem with the user's input: the message says what is wrong and what to do."""


class SpecError(AdderError):
    """A construction or spec is malformed (shape mismatch, unknown symbol, unwritten slot...)."""


class CheckpointError(AdderError):
    """A checkpoint cannot be read: missing, truncated, pickled code, or a wrong format version."""


class OperandError(AdderError):
    """An addend is not an integer in [0, 9_999_999_999]."""


def exception_line(e: BaseException) -> str:
    """'ValueError: the message' on one line, for reporting an exception raised by a user's code."""
    return " ".join(f"{type(e).__name__}: {e}".split())
