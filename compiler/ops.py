"""The operations a spec names by kind, each written in one place.

A spec says `act="gelu"`, `Norm(kind="rms")`, `softmax="softmax1"`, `RoPE(convention=
"interleaved")`. Each such kind is an `Op` here, holding side by side:

* `torch`: what `AdderModel.forward` computes (compiler/module.py calls it);
* `exact`: the same function in high precision, over numpy arrays of mpmath numbers
  (verify/exact.py, which classes failures as construction or precision errors);
* `export`: how an exported PyTorch file writes it (compiler/codegen.py), and the source of
  the helper function it needs, if any;
* `library`: the library functions whose accuracy a proof of a model using it assumes
  (checked by verify/prove/libm.py).

Bound rules belong to the prover, a layer above this one: verify/prove/layers.py keys them by
these same names and gives an explicit reason for each kind without one, and
tests/test_operations.py walks every kind of every family through all of these places.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import mpmath
import numpy as np
import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Op:
    name: str
    title: str
    torch: Callable
    exact: Callable
    export: str  # activation: the call, with {} for its argument; others: the helper's key line(s)
    helper: str = ""  # source of the helper function an exported file defines for it ("" if none)
    library: tuple[str, ...] = ()  # library functions a proof assumes accurate (verify/prove/libm.py)


# ---------------------------------------------------------------------------- mpmath on arrays
mp_exp = np.vectorize(mpmath.exp, otypes=[object])
mp_sqrt = np.vectorize(mpmath.sqrt, otypes=[object])
mp_erf = np.vectorize(mpmath.erf, otypes=[object])
mp_cos = np.vectorize(mpmath.cos, otypes=[object])
mp_sin = np.vectorize(mpmath.sin, otypes=[object])


# ---------------------------------------------------------------------------- activations
def _silu_mlx(x: torch.Tensor) -> torch.Tensor:
    """SiLU as MLX evaluates it: x * sigmoid(x), sigmoid split at 0 (y = 1 / (1 + e^|x|);
    y for x < 0, 1 - y otherwise). Where e^|x| overflows, y is 0 as in MLX; the exponent is
    masked there so that gradients stay finite."""
    a = x.abs()
    with torch.no_grad():
        big = torch.isinf(torch.exp(a))
    y = torch.where(big, 0.0, 1 / (1 + torch.exp(torch.where(big, 0.0, a))))
    return x * torch.where(x < 0, y, 1 - y)


SILU_MLX_SOURCE = '''def silu_mlx(x):
    """SiLU as MLX evaluates it: x * sigmoid(x), the sigmoid split at 0 (y = 1 / (1 + e^|x|);
    y for x < 0, 1 - y otherwise); where e^|x| overflows, y is 0."""
    a = x.abs()
    with torch.no_grad():
        big = torch.isinf(torch.exp(a))
    y = torch.where(big, 0.0, 1 / (1 + torch.exp(torch.where(big, 0.0, a))))
    return x * torch.where(x < 0, y, 1 - y)
'''


def _mp_silu(x):
    return x / (1 + mp_exp(-x))


def _mp_gelu(x):
    return x / 2 * (1 + mp_erf(x / mpmath.sqrt(2)))


ACTIVATIONS: dict[str, Op] = {op.name: op for op in (
    Op("relu", "ReLU", F.relu, lambda x: np.where(x > 0, x, mpmath.mpf(0)), "F.relu({})"),
    Op("silu", "SiLU", F.silu, _mp_silu, "F.silu({})", library=("silu",)),
    Op("silu_mlx", "SiLU (MLX)", _silu_mlx, _mp_silu, "silu_mlx({})", SILU_MLX_SOURCE, library=("silu_mlx",)),
    Op("gelu", "GELU", F.gelu, _mp_gelu, "F.gelu({})", library=("gelu",)),
    Op("identity", "linear", lambda x: x, lambda x: x, "{}"),
)}


# ---------------------------------------------------------------------------- norms (before weight and bias)
def _mp_rms(x, eps):
    return x / mp_sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps)


def _mp_layer(x, eps):
    mu = np.mean(x, axis=-1, keepdims=True)
    return (x - mu) / mp_sqrt(np.mean((x - mu) ** 2, axis=-1, keepdims=True) + eps)


#: `export`: the helper's normalising line (its weight and bias lines are written by codegen).
NORMS: dict[str, Op] = {op.name: op for op in (
    Op("rms", "RMSNorm", lambda x, eps: x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps), _mp_rms,
       "x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)",
       "RMSNorm over the last dim: x / sqrt(mean(x^2) + eps).", library=("rsqrt",)),
    Op("layer", "LayerNorm", lambda x, eps: F.layer_norm(x, x.shape[-1:], eps=eps), _mp_layer,
       "x = F.layer_norm(x, x.shape[-1:], eps=eps)",
       "LayerNorm over the last dim (no affine part: weight and bias follow).", library=("rsqrt",)),
)}


# ---------------------------------------------------------------------------- softmax variants
def _softmax1(scores: torch.Tensor) -> torch.Tensor:
    e = scores.exp()
    return e / (1 + e.sum(dim=-1, keepdim=True))


def _mp_softmax(s):
    e = mp_exp(s - s.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _mp_softmax1(s):
    e = mp_exp(s)
    return e / (1 + e.sum(axis=-1, keepdims=True))


#: `export`: the lines an exported `attend` writes (newline-separated), scores -> probs.
SOFTMAXES: dict[str, Op] = {op.name: op for op in (
    Op("softmax", "softmax", lambda s: F.softmax(s, dim=-1), _mp_softmax, "probs = F.softmax(scores, dim=-1)",
       library=("exp",)),
    Op("softmax1", "softmax1", _softmax1, _mp_softmax1,
       "e = scores.exp()\nprobs = e / (1 + e.sum(dim=-1, keepdim=True))  # softmax1: rows may sum to < 1",
       library=("exp1",)),
)}


# ---------------------------------------------------------------------------- rotary conventions
def _rope_half(x: torch.Tensor, ang: torch.Tensor) -> torch.Tensor:
    """GPT-NeoX / HF pairing: dim i turns with dim i + hd/2. ang [T, hd/2]; x [B, T, H, hd]."""
    c, s = torch.cos(ang)[None, :, None, :], torch.sin(ang)[None, :, None, :]
    half = x.shape[-1] // 2
    x0, x1 = x[..., :half], x[..., half:]
    return torch.cat([x0 * c - x1 * s, x0 * s + x1 * c], dim=-1)


def _rope_interleaved(x: torch.Tensor, ang: torch.Tensor) -> torch.Tensor:
    """Meta Llama's reference form: adjacent pairs (2i, 2i+1) as complex numbers times e^{i angle}
    (other dtypes than float32/64, which have no complex type here: the same turn written out)."""
    if x.dtype in (torch.float32, torch.float64):
        rot = torch.polar(torch.ones_like(ang), ang)[None, :, None, :]
        xc = torch.view_as_complex(x.reshape(*x.shape[:-1], -1, 2).contiguous())
        return torch.view_as_real(xc * rot).flatten(-2)
    c, s = torch.cos(ang)[None, :, None, :], torch.sin(ang)[None, :, None, :]
    x0, x1 = x[..., 0::2], x[..., 1::2]
    return torch.stack([x0 * c - x1 * s, x0 * s + x1 * c], dim=-1).flatten(-2)


def _mp_rope(pairs: str):
    def turn(x, ang):  # x [T, H, hd] (object), ang [T, hd/2] (object)
        c, s = mp_cos(ang)[:, None, :], mp_sin(ang)[:, None, :]
        if pairs == "interleaved":
            x0, x1 = x[..., 0::2], x[..., 1::2]
            out = np.empty_like(x)
            out[..., 0::2], out[..., 1::2] = x0 * c - x1 * s, x0 * s + x1 * c
            return out
        half = x.shape[-1] // 2
        x0, x1 = x[..., :half], x[..., half:]
        return np.concatenate([x0 * c - x1 * s, x0 * s + x1 * c], axis=-1)
    return turn


ROPE_HALF_SOURCE = '''def rope_half(x, pos, omegas):
    """Rotary positions, GPT-NeoX / HF pairing: dim i turns with dim i + head_dim/2 by the
    angle pos * omegas[i]. x [B, T, heads, head_dim], pos [T], omegas [head_dim/2]."""
    angle = pos[:, None] * omegas[None, :]  # [T, head_dim/2]
    cos, sin = torch.cos(angle)[None, :, None, :], torch.sin(angle)[None, :, None, :]
    half = x.shape[-1] // 2
    x0, x1 = x[..., :half], x[..., half:]
    return torch.cat([x0 * cos - x1 * sin, x0 * sin + x1 * cos], dim=-1)
'''

ROPE_INTERLEAVED_SOURCE = '''def rope_interleaved(x, pos, omegas):
    """Rotary positions, Meta Llama's pairing and arithmetic: dims (2i, 2i+1) as one complex number,
    multiplied by e^(i pos omegas[i]). x [B, T, heads, head_dim], pos [T], omegas [head_dim/2]."""
    angle = pos[:, None] * omegas[None, :]  # [T, head_dim/2]
    turn = torch.polar(torch.ones_like(angle), angle)[None, :, None, :]
    xc = torch.view_as_complex(x.reshape(*x.shape[:-1], -1, 2).contiguous())
    return torch.view_as_real(xc * turn).flatten(-2)
'''

#: `export`: the helper's name; `helper`: its source. Input-independent tables: no library assumption
#: (the prover reads the module's own rotation of unit vectors).
ROTARIES: dict[str, Op] = {op.name: op for op in (
    Op("half", "RoPE (half pairs)", _rope_half, _mp_rope("half"), "rope_half", ROPE_HALF_SOURCE),
    Op("interleaved", "RoPE (interleaved pairs)", _rope_interleaved, _mp_rope("interleaved"), "rope_interleaved",
       ROPE_INTERLEAVED_SOURCE),
)}

#: Every family, by the spec field that names its kind.
FAMILIES: dict[str, dict[str, Op]] = {"activation": ACTIVATIONS, "norm": NORMS, "softmax": SOFTMAXES,
                                      "rotary": ROTARIES}
