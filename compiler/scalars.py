"""Exact scalars: the numbers a construction's weights are written in (the first pass).

A scalar is a sympy expression without free symbols: an integer, a rational, `pi`, `E`,
`log(10)`, `e^80`, or a binary float written as a Python float. Keeping them exact lets a
checkpoint be re-evaluated in another arithmetic (float32, float64, 50-digit mpmath)
without the construction's source.

They serialise to a JSON tree over a fixed whitelist of operations (`scalar_to_json` /
`scalar_from_json`): no pickle, no eval. A node is one of

    {"i": "12"}                    an integer (decimal string: no size limit)
    {"q": ["3", "10"]}             a rational p/q
    {"f": "0x1.999999999999ap-4"}  a binary float (float.hex)
    {"c": "pi"}                    a named constant (NAMED_CONSTANTS)
    {"o": "add", "a": [...]}       an operation on argument nodes (add, mul, pow, SCALAR_FUNCTIONS)
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any, Callable

import sympy

from .errors import SpecError

Scalar = sympy.Expr

#: Functions a serialized scalar may use. Anything else is refused on load.
SCALAR_FUNCTIONS: dict[str, Callable[..., sympy.Expr]] = {
    "exp": sympy.exp,
    "log": sympy.log,
    "sin": sympy.sin,
    "cos": sympy.cos,
    "tan": sympy.tan,
    "atan": sympy.atan,
    "abs": sympy.Abs,
}
_FUNCTION_NAMES = {f: name for name, f in SCALAR_FUNCTIONS.items()}
#: sympy's n-ary arithmetic, by its name in the JSON tree.
ARITHMETIC: dict[str, Callable[..., sympy.Expr]] = {"add": sympy.Add, "mul": sympy.Mul, "pow": sympy.Pow}
#: Constants a serialized scalar may name.
NAMED_CONSTANTS: dict[str, sympy.Expr] = {"pi": sympy.pi, "E": sympy.E, "oo": sympy.oo, "-oo": -sympy.oo}

#: Digits used when an exact scalar is rounded to a float (well past float64's 17).
EVAL_DIGITS = 40
#: Significant digits of a sympy Float made from a Python float: enough to hold it exactly.
FLOAT_DIGITS = 17
#: Integers from here on are not all representable as floats: a float this large stays a Float.
EXACT_INT_LIMIT = 2**53


def as_scalar(x: Any) -> Scalar:
    """Turn a Python number or sympy expression into an exact sympy scalar.

    Python floats keep their exact binary value (0.1 stays the double nearest 1/10);
    write `Rational(1, 10)` for an exact tenth.
    """
    if isinstance(x, sympy.Basic):
        if x.free_symbols:
            raise SpecError(f"scalar {x} has free symbols {sorted(map(str, x.free_symbols))}; "
                            "use dsl parameters for named values")
        return x
    if isinstance(x, bool):
        raise SpecError("booleans are not weights; use 0 or 1")
    if isinstance(x, int):
        return sympy.Integer(x)
    if isinstance(x, Fraction):
        return sympy.Rational(x.numerator, x.denominator)
    if isinstance(x, float):
        if math.isinf(x):
            return sympy.oo if x > 0 else -sympy.oo
        if math.isnan(x):
            raise SpecError("NaN is not a valid weight")
        if x != int(x) or abs(x) >= EXACT_INT_LIMIT:
            return sympy.Float(x, FLOAT_DIGITS)
        return sympy.Integer(int(x))
    if hasattr(x, "item"):  # numpy / torch scalar
        return as_scalar(x.item())
    raise SpecError(f"cannot use {type(x).__name__} {x!r} as a weight value")


def scalar_to_json(x: Scalar) -> Any:
    """Serialise an exact scalar as a JSON tree (see module docstring)."""
    x = as_scalar(x)
    if x.is_Integer:
        return {"i": str(int(x))}
    if x.is_Rational:
        return {"q": [str(x.p), str(x.q)]}
    if x.is_Float:
        return {"f": float(x).hex()}
    for name, c in NAMED_CONSTANTS.items():
        if x == c:
            return {"c": name}
    for name, op in ARITHMETIC.items():
        if isinstance(x, op):
            return {"o": name, "a": [scalar_to_json(t) for t in x.args]}
    if x.func in _FUNCTION_NAMES:
        return {"o": _FUNCTION_NAMES[x.func], "a": [scalar_to_json(t) for t in x.args]}
    raise SpecError(f"scalar {x} uses an operation outside the whitelist "
                    f"({', '.join([*ARITHMETIC, *SCALAR_FUNCTIONS])})")


def scalar_from_json(node: Any) -> Scalar:
    """Inverse of `scalar_to_json`; refuses anything outside the whitelist."""
    if not isinstance(node, dict) or len(node) not in (1, 2):
        raise SpecError(f"malformed scalar node {node!r}")
    if "i" in node:
        return sympy.Integer(int(node["i"]))
    if "q" in node:
        p, q = node["q"]
        return sympy.Rational(int(p), int(q))
    if "f" in node:
        return sympy.Float(float.fromhex(node["f"]), FLOAT_DIGITS)
    if "c" in node:
        if node["c"] not in NAMED_CONSTANTS:
            raise SpecError(f"unknown constant {node['c']!r}")
        return NAMED_CONSTANTS[node["c"]]
    op, args = node.get("o"), [scalar_from_json(a) for a in node.get("a", [])]
    if op in ARITHMETIC:
        return ARITHMETIC[op](*args)
    if op in SCALAR_FUNCTIONS:
        return SCALAR_FUNCTIONS[op](*args)
    raise SpecError(f"scalar operation {op!r} is not in the whitelist")


def scalar_to_float(x: Scalar) -> float:
    """Round an exact scalar to the nearest float64."""
    x = as_scalar(x)
    if x == sympy.oo:
        return math.inf
    if x == -sympy.oo:
        return -math.inf
    return float(x.evalf(EVAL_DIGITS))
