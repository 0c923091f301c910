"""Initialisers of free tensors: their names (checked when a construction declares one) and
their seeded draws (made when a spec is compiled).

A free tensor (`Construction.free`) has a shape but no value; its `init` names how the
module draws it, from a generator seeded by `compile_spec(seed=...)`, in declaration order.
"""

from __future__ import annotations

import math

import torch

from .errors import SpecError

#: Initialisers of free tensors: N(0, DEFAULT_STD^2); zeros; ones; nn.Linear's
#: U(+-1/sqrt(fan_in)); Glorot/Xavier uniform U(+-sqrt(6/(fan_in + fan_out))) of a [out, in]
#: matrix. "normal:S" draws N(0, S^2) for a decimal S > 0 (MLX's embedding init is
#: "normal:<1/sqrt(d)>").
INITS = ("normal", "zeros", "ones", "linear", "xavier")
#: The standard deviation of plain "normal" (GPT-2's).
DEFAULT_STD = 0.02


def check_init(init: str) -> str:
    """`init` if it names an initialiser (one of INITS, or "normal:S" with S > 0), else SpecError."""
    if init in INITS:
        return init
    kind, _, std = init.partition(":")
    try:
        ok = kind == "normal" and float(std) > 0
    except ValueError:
        ok = False
    if not ok:
        raise SpecError(f"init must be one of {INITS} or 'normal:S' with a standard deviation S > 0, got {init!r}")
    return init


def init_tensor(init: str, shape: tuple, gen: torch.Generator) -> torch.Tensor:
    """A float64 draw of the initialiser `init` (see `INITS`)."""
    if init == "zeros":
        return torch.zeros(shape, dtype=torch.float64)
    if init == "ones":
        return torch.ones(shape, dtype=torch.float64)
    if init == "linear":  # nn.Linear's default: U(+-1/sqrt(fan_in))
        return _uniform(shape, 1 / math.sqrt(shape[-1] if shape else 1), gen)
    if init == "xavier":  # Glorot uniform of an [out, in] matrix (a vector: fan_in = fan_out = 1)
        fan_in, fan_out = (shape[-1], shape[0]) if len(shape) >= 2 else (1, 1)
        return _uniform(shape, math.sqrt(6 / (fan_in + fan_out)), gen)
    std = float(init.partition(":")[2] or DEFAULT_STD)  # "normal" or "normal:S"
    return torch.randn(shape, generator=gen, dtype=torch.float64) * std


def _uniform(shape: tuple, bound: float, gen: torch.Generator) -> torch.Tensor:
    """U(-bound, bound), drawn as `(rand * 2 - 1) * bound`."""
    return (torch.rand(shape, generator=gen, dtype=torch.float64) * 2 - 1) * bound
