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

Reading a tree is bounded, so that a crafted spec (`10^(10^100)`, a power with a huge
exponent, a number with a million digits, a tree a thousand levels deep) is one SpecError at
once, never a computation that runs for ever: integers and rationals have at most
`MAX_DIGITS` digits, exact exponents at most `MAX_EXPONENT` in numerator and denominator,
the argument of a function or power is a finite real number below 10^MAX_DIGITS, and a
tree is at most `MAX_DEPTH` operations deep. Published constructions stay far inside these
bounds (14-digit integers, exponents such as 1/2, trees under ten levels).
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

#: Bounds on a scalar read from JSON (see the module docstring): digits of an integer, of a
#: rational's numerator and denominator, and of every exact intermediate result;
MAX_DIGITS = 400
#: |numerator| and denominator of an exact exponent;
MAX_EXPONENT = 1000
#: nesting of operations.
MAX_DEPTH = 64
#: Significant digits to which a function's or power's argument is evaluated for the bound check.
CHECK_DIGITS = 15
_MAX_BITS = math.ceil(MAX_DIGITS * math.log2(10))
_MAX_MAGNITUDE = sympy.Integer(10) ** MAX_DIGITS


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
    """Inverse of `scalar_to_json`; refuses anything outside the whitelist or the bounds (module docstring)."""
    return _from_json(node, 0)


def _from_json(node: Any, depth: int) -> Scalar:
    if depth > MAX_DEPTH:
        raise SpecError(f"scalar is nested more than {MAX_DEPTH} operations deep")
    if not isinstance(node, dict) or len(node) not in (1, 2):
        raise SpecError(f"malformed scalar node {str(node)[:80]}")
    try:
        if "i" in node:
            return sympy.Integer(_bounded_int(node["i"]))
        if "q" in node:
            p, q = node["q"]
            p, q = _bounded_int(p), _bounded_int(q)
            if q == 0:
                raise SpecError("scalar rational has denominator 0")
            return sympy.Rational(p, q)
        if "f" in node:
            return sympy.Float(float.fromhex(node["f"]), FLOAT_DIGITS)
    except (ValueError, TypeError, OverflowError):
        raise SpecError(f"malformed scalar node {str(node)[:80]}") from None
    if "c" in node:
        if node["c"] not in NAMED_CONSTANTS:
            raise SpecError(f"unknown constant {node['c']!r}")
        return NAMED_CONSTANTS[node["c"]]
    op, args = node.get("o"), node.get("a", [])
    if op not in ARITHMETIC and op not in SCALAR_FUNCTIONS:
        raise SpecError(f"scalar operation {op!r} is not in the whitelist")
    if not isinstance(args, list):
        raise SpecError(f"malformed scalar node {str(node)[:80]}")
    args = [_from_json(a, depth + 1) for a in args]
    if op == "pow" or op in SCALAR_FUNCTIONS:
        for a in args:
            _check_argument(a, op)
    if op == "pow" and len(args) == 2 and args[1].is_Rational and max(abs(args[1].p), args[1].q) > MAX_EXPONENT:
        raise SpecError(f"scalar exponent {_short(args[1])} is beyond the bound {MAX_EXPONENT}")
    try:
        x = (ARITHMETIC.get(op) or SCALAR_FUNCTIONS[op])(*args)
    except TypeError:
        raise SpecError(f"scalar operation {op} has the wrong number of arguments ({len(args)})") from None
    if x.is_Rational and (_too_long(x.p) or _too_long(x.q)):
        raise SpecError(f"scalar {op} of {', '.join(map(_short, args))} has more than {MAX_DIGITS} digits")
    return x


def _bounded_int(text: Any) -> int:
    """An integer written in decimal, refused beyond MAX_DIGITS digits before it is converted."""
    text = str(text).strip()
    digits = len(text.lstrip("+-"))
    if digits > MAX_DIGITS:
        raise SpecError(f"scalar integer of {digits} digits is beyond the bound of {MAX_DIGITS} digits")
    return int(text)


def _too_long(n: int) -> bool:
    return abs(int(n)).bit_length() > _MAX_BITS


def _check_argument(x: Scalar, op: str) -> None:
    """The argument of a function or power: a finite real number below 10^MAX_DIGITS."""
    if x.is_Rational:
        return  # bounded when it was read
    v = x.evalf(CHECK_DIGITS)
    if not (v.is_Number and v.is_real):
        raise SpecError(f"scalar {op} of {_short(x)}: the argument is not a finite real number")
    if abs(v) >= _MAX_MAGNITUDE:
        raise SpecError(f"scalar {op} of {_short(x)}: the argument is beyond 10^{MAX_DIGITS}")


def _short(x: Scalar) -> str:
    text = str(x)
    return text if len(text) <= 60 else text[:57] + "..."


def scalar_to_float(x: Scalar) -> float:
    """Round an exact scalar to the nearest float64."""
    x = as_scalar(x)
    if x == sympy.oo:
        return math.inf
    if x == -sympy.oo:
        return -math.inf
    try:
        return float(x.evalf(EVAL_DIGITS))
    except TypeError:
        raise SpecError(f"scalar {_short(x)} is not a real number") from None
