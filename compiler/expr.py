"""Tensor expressions: the weights of a spec as small trees over named parameters (the second pass).

Why a tree and not a tensor: a construction's weights are *derived* quantities
(`omega = 2*pi/19`, "Q is K rotated by a phase", "O is V transposed"). Keeping the
derivation lets a checkpoint be inspected, re-counted and re-evaluated in another
arithmetic without the construction's source.

A `TExpr` combines named parameters (`param`) and constant tensors of exact scalars
(`const`, see `scalars.py`) with a handful of operations (matmul, elementwise arithmetic,
transpose, stack, index, place). Shapes are checked when the expression is built, so a
construction with a shape mismatch fails at the line that made it. `texpr_to_json` /
`texpr_from_json` write a tree as JSON over the whitelist `TENSOR_OPS`; `evaluate.py` turns
a tree into numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import sympy

from .errors import SpecError
from .scalars import as_scalar, scalar_from_json, scalar_to_json

#: The leaves of a tree: a declared parameter (by name) and a constant tensor of exact scalars.
LEAF_OPS = ("param", "const")
#: Tensor operations and the number of tensor arguments each takes (None: any).
TENSOR_OPS: dict[str, int | None] = {
    **{leaf: 0 for leaf in LEAF_OPS},
    "add": 2, "sub": 2, "mul": 2, "div": 2, "neg": 1, "matmul": 2, "transpose": 1,
    "fn": 1, "stack": None, "cat": None, "index": 1, "reshape": 1, "place": None,
}
ELEMENTWISE_FUNCTIONS = ("cos", "sin", "exp", "log", "sqrt", "abs")


@dataclass(frozen=True, eq=False)
class TExpr:
    """A node of a tensor expression. Build them with the functions below or with operators.

    `shape` is known when the node is made; `attrs` holds the op's JSON-able settings
    (constants keep exact sympy scalars in `attrs["values"]`).
    """

    op: str
    args: tuple["TExpr", ...]
    attrs: dict = field(default_factory=dict)
    shape: tuple[int, ...] = ()

    # --- operators: read like the maths ---
    def __add__(self, o): return _binary("add", self, o)
    def __radd__(self, o): return _binary("add", o, self)
    def __sub__(self, o): return _binary("sub", self, o)
    def __rsub__(self, o): return _binary("sub", o, self)
    def __mul__(self, o): return _binary("mul", self, o)
    def __rmul__(self, o): return _binary("mul", o, self)
    def __truediv__(self, o): return _binary("div", self, o)
    def __rtruediv__(self, o): return _binary("div", o, self)
    def __neg__(self): return TExpr("neg", (self,), {}, self.shape)
    def __matmul__(self, o): return matmul(self, o)
    def __rmatmul__(self, o): return matmul(o, self)

    @property
    def T(self) -> "TExpr":
        if len(self.shape) != 2:
            raise SpecError(f"transpose needs a matrix, got shape {self.shape}")
        return TExpr("transpose", (self,), {}, (self.shape[1], self.shape[0]))

    def __getitem__(self, idx) -> "TExpr":
        return index(self, idx)

    def __repr__(self) -> str:
        if self.op == "param":
            return f"param({self.attrs['name']}{list(self.shape)})"
        if self.op == "const":
            return f"const{list(self.shape)}"
        return f"{self.op}({', '.join(map(repr, self.args))})"

    def walk(self):
        """Yield every node of the tree once (post-order)."""
        seen: set[int] = set()

        def rec(n: TExpr):
            if id(n) in seen:
                return
            seen.add(id(n))
            for a in n.args:
                yield from rec(a)
            yield n

        yield from rec(self)

    def param_names(self) -> set[str]:
        return {n.attrs["name"] for n in self.walk() if n.op == "param"}


def param(name: str, shape: Sequence[int]) -> TExpr:
    return TExpr("param", (), {"name": name}, tuple(int(s) for s in shape))


def const(values: Any) -> TExpr:
    """A constant tensor from a (nested) list of exact scalars / numbers."""
    flat, shape = _flatten(values)
    return TExpr("const", (), {"values": tuple(as_scalar(v) for v in flat)}, shape)


def zeros(*shape: int) -> TExpr:
    n = math.prod(shape)
    return TExpr("const", (), {"values": (sympy.Integer(0),) * n}, tuple(shape))


def ones(*shape: int) -> TExpr:
    n = math.prod(shape)
    return TExpr("const", (), {"values": (sympy.Integer(1),) * n}, tuple(shape))


def eye(n: int) -> TExpr:
    return const([[1 if i == j else 0 for j in range(n)] for i in range(n)])


def lift(x: Any) -> TExpr:
    """A TExpr as is; a number or sympy scalar as a 0-d constant."""
    return x if isinstance(x, TExpr) else const(x)


def matmul(a: Any, b: Any) -> TExpr:
    a, b = lift(a), lift(b)
    if len(a.shape) != 2 or len(b.shape) != 2 or a.shape[1] != b.shape[0]:
        raise SpecError(f"matmul shape mismatch: {a.shape} @ {b.shape} ({a!r} @ {b!r})")
    return TExpr("matmul", (a, b), {}, (a.shape[0], b.shape[1]))


def fn(name: str, x: Any) -> TExpr:
    if name not in ELEMENTWISE_FUNCTIONS:
        raise SpecError(f"unknown elementwise function {name!r}; use one of {ELEMENTWISE_FUNCTIONS}")
    x = lift(x)
    return TExpr("fn", (x,), {"name": name}, x.shape)


def cos(x): return fn("cos", x)
def sin(x): return fn("sin", x)


def stack(items: Sequence[Any], axis: int = 0) -> TExpr:
    items = [lift(i) for i in items]
    shapes = {i.shape for i in items}
    if len(shapes) != 1:
        raise SpecError(f"stack needs equal shapes, got {[i.shape for i in items]}")
    shape = list(items[0].shape)
    ax = axis if axis >= 0 else len(shape) + 1 + axis
    shape.insert(ax, len(items))
    return TExpr("stack", tuple(items), {"axis": ax}, tuple(shape))


def cat(items: Sequence[Any], axis: int = 0) -> TExpr:
    items = [lift(i) for i in items]
    nd = len(items[0].shape)
    ax = axis if axis >= 0 else nd + axis
    rest = {i.shape[:ax] + i.shape[ax + 1:] for i in items}
    if len(rest) != 1 or any(len(i.shape) != nd for i in items):
        raise SpecError(f"cat along axis {axis} needs matching shapes, got {[i.shape for i in items]}")
    shape = list(items[0].shape)
    shape[ax] = sum(i.shape[ax] for i in items)
    return TExpr("cat", tuple(items), {"axis": ax}, tuple(shape))


def reshape(x: Any, *shape: int) -> TExpr:
    x = lift(x)
    if math.prod(shape) != math.prod(x.shape):
        raise SpecError(f"cannot reshape {x.shape} to {shape}")
    return TExpr("reshape", (x,), {"to": list(shape)}, tuple(shape))


def place(shape: Sequence[int], entries: dict[tuple[int, ...], Any]) -> TExpr:
    """A tensor of zeros with the given entries (each a 0-d expression) placed in it.

    This is how sparse, hand-set weights are written: `place((5, 5), {(3, 1): k_w})`.
    Placing one scalar parameter in many cells is a broadcast: it still counts once.
    """
    shape = tuple(int(s) for s in shape)
    positions, values = [], []
    for pos, v in entries.items():
        pos = (pos,) if isinstance(pos, int) else tuple(pos)
        if len(pos) != len(shape) or any(not 0 <= p < s for p, s in zip(pos, shape)):
            raise SpecError(f"place: index {pos} is outside shape {shape}")
        v = lift(v)
        if v.shape != ():
            raise SpecError(f"place: value at {pos} must be a scalar, got shape {v.shape}")
        positions.append(list(pos))
        values.append(v)
    return TExpr("place", tuple(values), {"positions": positions, "out_shape": list(shape)}, shape)


def index(x: Any, idx: Any) -> TExpr:
    """Basic indexing with ints and slices (no fancy indexing)."""
    x = lift(x)
    if not isinstance(idx, tuple):
        idx = (idx,)
    if len(idx) > len(x.shape):
        raise SpecError(f"too many indices {idx} for shape {x.shape}")
    spec, shape = [], []
    for i, dim in enumerate(x.shape):
        it = idx[i] if i < len(idx) else slice(None)
        if isinstance(it, int):
            if not -dim <= it < dim:
                raise SpecError(f"index {it} out of range for axis {i} of size {dim}")
            spec.append(it % dim)
        elif isinstance(it, slice):
            start, stop, step = it.indices(dim)
            spec.append([start, stop, step])
            shape.append(len(range(start, stop, step)))
        else:
            raise SpecError(f"unsupported index {it!r}: use ints and slices")
    return TExpr("index", (x,), {"index": spec}, tuple(shape))


def _binary(op: str, a: Any, b: Any) -> TExpr:
    a, b = lift(a), lift(b)
    try:
        shape = _broadcast(a.shape, b.shape)
    except ValueError:
        raise SpecError(f"{op}: shapes {a.shape} and {b.shape} do not broadcast ({a!r}, {b!r})") from None
    return TExpr(op, (a, b), {}, shape)


def _broadcast(s1: tuple, s2: tuple) -> tuple:
    out = []
    for x, y in zip(reversed((1,) * (len(s2) - len(s1)) + s1), reversed((1,) * (len(s1) - len(s2)) + s2)):
        if x != y and 1 not in (x, y):
            raise ValueError
        out.append(max(x, y))
    return tuple(reversed(out))


def _flatten(values: Any) -> tuple[list, tuple[int, ...]]:
    if hasattr(values, "tolist") and not isinstance(values, sympy.Basic):
        values = values.tolist()
    if isinstance(values, (list, tuple)):
        if not values:
            return [], (0,)
        parts = [_flatten(v) for v in values]
        shapes = {p[1] for p in parts}
        if len(shapes) != 1:
            raise SpecError(f"ragged constant: rows of shapes {sorted(shapes)}")
        return [x for p in parts for x in p[0]], (len(values),) + parts[0][1]
    return [values], ()


# ----------------------------------------------------------------------------------------
# JSON
# ----------------------------------------------------------------------------------------

#: Keys every JSON node has (`args` only when the op takes arguments); the rest are the op's attrs.
_NODE_KEYS = ("op", "shape", "args")


def texpr_to_json(e: TExpr) -> dict:
    """A tree as JSON: {"op", "shape", the op's attrs, "args"}; constants' values as exact scalars."""
    node: dict[str, Any] = {"op": e.op, "shape": list(e.shape)}
    if e.op == "const":
        node["values"] = [scalar_to_json(v) for v in e.attrs["values"]]
    else:
        node.update({k: v for k, v in e.attrs.items()})
    if e.args:
        node["args"] = [texpr_to_json(a) for a in e.args]
    return node


def texpr_from_json(node: Any) -> TExpr:
    """Inverse of `texpr_to_json`; refuses ops outside `TENSOR_OPS` and functions outside the whitelist."""
    if not isinstance(node, dict) or node.get("op") not in TENSOR_OPS:
        raise SpecError(f"malformed or non-whitelisted tensor node: {str(node)[:80]}")
    op = node["op"]
    shape = tuple(int(s) for s in node.get("shape", []))
    args = tuple(texpr_from_json(a) for a in node.get("args", []))
    want = TENSOR_OPS[op]
    if want is not None and len(args) != want:
        raise SpecError(f"tensor node {op!r} takes {want} arguments, got {len(args)}")
    if op == "const":
        values = tuple(scalar_from_json(v) for v in node["values"])
        if len(values) != math.prod(shape):
            raise SpecError(f"constant of shape {shape} has {len(values)} values")
        return TExpr("const", (), {"values": values}, shape)
    attrs = {k: v for k, v in node.items() if k not in _NODE_KEYS}
    if op == "fn" and attrs.get("name") not in ELEMENTWISE_FUNCTIONS:
        raise SpecError(f"elementwise function {attrs.get('name')!r} is not in the whitelist")
    return TExpr(op, args, attrs, shape)
