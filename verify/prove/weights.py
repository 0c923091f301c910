"""The numbers the compiled module really uses, as exact float64 arrays.

A proof is about the model that runs, so its weights are read from the compiled
`AdderModel` (every tied or derived weight evaluated by torch in the model's dtype, exactly
as `forward` computes it) and input-independent tables (RoPE's cos/sin) are produced by the
module's own rotation code. float64 holds every float32 value exactly.
"""

from __future__ import annotations

import numpy as np
import torch

from ...compiler.module import AdderModel, rotary
from ...compiler.spec import Attention, Norm, RoPE, TExpr
from .floatmodel import ARITHMETICS, Arithmetic
from .intervals import Interval


class ModelWeights:
    """Weight lookup by spec expression, plus the module's scalars and tables."""

    def __init__(self, model: AdderModel):
        self.model = model
        self.spec = model.spec
        self.dtype = str(model.dtype).replace("torch.", "")
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"cannot prove a {self.dtype} model")
        with torch.no_grad():
            self._w = {k: v.detach().cpu().to(torch.float64).numpy() for k, v in model.weights().items()}

    @property
    def arithmetic(self) -> Arithmetic:
        return ARITHMETICS[self.dtype]

    def __call__(self, e: TExpr | None) -> np.ndarray | None:
        return None if e is None else self._w[id(e)]

    def scalar(self, x: float) -> Interval:
        """A Python float the module combines with a tensor: torch may round it to the
        tensor's dtype first or not, so both values are enclosed."""
        if self.dtype == "float32":
            return Interval.hull(np.float64(np.float32(x)), np.float64(x))
        return Interval.point(np.float64(x))

    def eps(self, norm: Norm) -> Interval:
        return self.scalar(norm.eps)

    def attention_scale(self, att: Attention) -> Interval:
        return self.scalar(self.model._scales[id(att)])

    def rope_tables(self, rope: RoPE, n_pos: int, head_dim: int) -> tuple[np.ndarray, np.ndarray]:
        """(cos, sin) [n_pos, head_dim/2] exactly as `forward` rotates: the module's rotation
        applied to the unit vector of each pair (x0 = 1, x1 = 0) returns (cos, sin) unrounded."""
        half = head_dim // 2
        x = torch.zeros(1, n_pos, 1, head_dim, dtype=self.model.dtype)
        if rope.convention == "interleaved":
            x[..., 0::2] = 1
        else:
            x[..., :half] = 1
        pos = torch.arange(n_pos, dtype=self.model.dtype)
        omegas = self.model.weights()[id(rope.omegas)]
        with torch.no_grad():
            y = rotary(x, pos, omegas, rope.convention)[0, :, 0].to(torch.float64).numpy()
        if rope.convention == "interleaved":
            return y[:, 0::2], y[:, 1::2]
        return y[:, :half], y[:, half:]
