"""Hand-coded constructions, one module per family, each registered by name.

Importing this package registers them all; `get(name)` / `build_spec(name)` look one up.
`register` is the decorator they use, and so can a user's construction file
(`userfile.py`) or an installed plugin (entry-point group `adder.constructions`).
"""

from . import (  # noqa: F401  (registration side effects)
    cosminscn66, cosminscn130, fblissjr33, jacobli99, lichengliu50, param40, qwen3_d3, qwen_d5, rope19_qwen,
    tinyadder36,
)
from .registry import REGISTRY, Entry, build_spec, get, register

__all__ = ["REGISTRY", "Entry", "build_spec", "get", "register"]
