"""Evaluating tensor expressions: a `TExpr` tree to an array, in a chosen arithmetic.

`evaluate` walks a tree once (shared sub-trees once) and hands each operation to a
`Backend`. The backend says what an array is: `TorchBackend` computes in torch, in any
dtype and on any device (the compiled module, the validation pass); `adder.verify.exact`
supplies numpy arrays of 50-digit mpmath numbers. Leaves are the caller's business: a
`lookup(node)` gives the array of each `param` or `const` leaf.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch

from .errors import SpecError
from .expr import LEAF_OPS, TExpr
from .scalars import Scalar, scalar_to_float


def evaluate(e: TExpr, lookup: Callable[[TExpr], Any], backend: "Backend") -> Any:
    """Evaluate `e`; `lookup(node)` returns the array of a param or const leaf."""
    memo: dict[int, Any] = {}
    for n in e.walk():
        if n.op in LEAF_OPS:
            memo[id(n)] = lookup(n)
            continue
        a = [memo[id(x)] for x in n.args]
        memo[id(n)] = backend.apply(n, a)
    return memo[id(e)]


class Backend:
    """Array operations for `evaluate`. Arithmetic, transposes, reshapes and indexing are
    the arrays' own operators; a subclass supplies the five array-specific methods."""

    def apply(self, n: TExpr, a: list):
        op = n.op
        if op == "add": return a[0] + a[1]
        if op == "sub": return a[0] - a[1]
        if op == "mul": return a[0] * a[1]
        if op == "div": return a[0] / a[1]
        if op == "neg": return -a[0]
        if op == "transpose": return a[0].T
        if op == "matmul": return self.matmul(a[0], a[1])
        if op == "fn": return self.fn(n.attrs["name"], a[0])
        if op == "stack": return self.stack(a, n.attrs["axis"])
        if op == "cat": return self.cat(a, n.attrs["axis"])
        if op == "reshape": return a[0].reshape(n.attrs["to"])
        if op == "index":
            return a[0][tuple(i if isinstance(i, int) else slice(*i) for i in n.attrs["index"])]
        if op == "place": return self.place(n.attrs["out_shape"], n.attrs["positions"], a)
        raise SpecError(f"unknown tensor op {op!r}")

    def matmul(self, x, y):
        raise NotImplementedError

    def fn(self, name: str, x):
        """The elementwise function `name` (one of `expr.ELEMENTWISE_FUNCTIONS`)."""
        raise NotImplementedError

    def stack(self, xs: list, axis: int):
        raise NotImplementedError

    def cat(self, xs: list, axis: int):
        raise NotImplementedError

    def place(self, shape: list, positions: list, values: list):
        """Zeros of `shape` with the 0-d `values` at `positions`."""
        raise NotImplementedError


class TorchBackend(Backend):
    """`evaluate` in torch: the dtype and device are the leaves' (gradients flow through)."""

    def matmul(self, x, y):
        return x @ y

    def fn(self, name: str, x):
        return getattr(torch, name)(x)

    def stack(self, xs: list, axis: int):
        return torch.stack(xs, dim=axis)

    def cat(self, xs: list, axis: int):
        return torch.cat(xs, dim=axis)

    def place(self, shape: list, positions: list, values: list):
        ref = values[0] if values else None
        out = torch.zeros(shape, dtype=ref.dtype if ref is not None else None, device=ref.device if ref is not None else None)
        if values:
            idx = tuple(torch.tensor(c, device=out.device) for c in zip(*positions))
            out = out.index_put(idx, torch.stack(values))
        return out


#: The torch backend (it holds no state, so one serves everyone).
TORCH = TorchBackend()


def exact_tensor(values: Sequence[Scalar], shape: Sequence[int]) -> torch.Tensor:
    """Exact scalars rounded to float64, as a tensor of `shape` (cast it to the dtype you need)."""
    return torch.tensor([scalar_to_float(v) for v in values], dtype=torch.float64).reshape(tuple(shape))
