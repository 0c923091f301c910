"""The independent certificate checker: the trusted base of `adder prove`.

A proof certificate (written by the search in `adder.verify.prove`) is accepted only if this
package re-establishes it from the model's tensors and the spec, with its own case split
(`paths.py`), its own bound rule per operation (`bounds.py`, `inner.py`, and `joint.py` for
the relational rules of a last attention with several heads; `table.py` with `tight.py` for
the steps a one-layer model's sparse attention turns into a finite table), its own outward-rounded
arithmetic and exp from arb tables (`reals.py`) and its own walk of the certificate (`check.py`). It
imports nothing from the search (tests/test_checker.py reads the imports), so a wrong rule
in the search is caught here instead of repeated. docs/prove.md, "The trusted base", lists
what it assumes.

Scope: every operation the proven models use (`bounds.unsupported` lists what has no rule:
softmax1, LayerNorm); `check` raises `NotCheckable` for those,
and the caller says which checker a verdict rests on.
"""

from .bounds import NotCheckable, unsupported
from .check import Result, check

__all__ = ["NotCheckable", "Result", "check", "unsupported"]
