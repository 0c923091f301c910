"""The intermediate representation: `ModelSpec` and its blocks (what the DSL builds).

A spec is everything needed to rebuild a model: vocabulary, prompt format, residual
layout (named slots), declared parameters with their values, and an ordered list of
residual blocks whose weights are `TExpr` trees over those parameters. It is plain data:
`spec_to_json` / `spec_from_json` round-trip it exactly (`spec == from_json(to_json(spec))`).

The residual stream is pre-norm, as in GPT-2/Llama/Qwen:

    h = embed[tokens] (+ pos[t])
    for block in blocks:  h = h + block.layer(block.norm(h))
    logits = unembed(final_norm(h))

Every projection is a `Linear`: a *chain* of matrices applied in order
(`x @ W1.T @ W2.T ... + b`). A chain keeps the published order of floating-point
operations (a rank-1 map is `x @ v.T @ u.T`, not `x @ (u v).T`), which matters for
constructions that win by a few float32 ULPs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from typing import Any

import sympy

from .errors import SpecError
from .expr import TExpr, texpr_from_json, texpr_to_json
from .formats import PromptFormat
from .scalars import scalar_from_json, scalar_to_json

SPEC_VERSION = 1
ACTIVATIONS = ("relu", "silu", "silu_mlx", "gelu", "identity")
NORM_KINDS = ("rms", "layer")
SOFTMAX_KINDS = ("softmax", "softmax1")
SCALE_OPS = ("mul", "div", "mul_q")
ROPE_CONVENTIONS = ("half", "interleaved")
REDUCTIONS = ("matmul", "sum")  # how a `Linear` evaluates each product (see its docstring)
RMS_EPS = 1e-6  # RMSNorm's default epsilon (Llama's, Qwen's)
LAYERNORM_EPS = 1e-5  # LayerNorm's default epsilon (PyTorch's)


@dataclass(eq=False)
class ParamDecl:
    """A learned tensor: its name, shape, values (exact scalars) and whether it is trained.

    `trainable=False` marks a frozen value that the published count still includes (the 87p
    model's 16 "frozen-but-counted" scalars): it is an `nn.Parameter` without gradient.
    """

    name: str
    shape: tuple[int, ...]
    values: tuple[sympy.Expr, ...] | None  # None: free tensor, initialised by `init`
    trainable: bool = True
    init: str = "normal"  # free tensors: one of `inits.INITS` or "normal:S"
    note: str = ""


@dataclass(eq=False)
class Linear:
    """`x @ W1.T @ W2.T ... + bias`: weights are applied in order; bias optional.

    `reduce="sum"` evaluates each product as `(x[..., None, :] * W).sum(-1)` instead of a
    matmul: the same map, rounded like hand-written `(x * w).sum(-1)` code (no fused
    multiply-add), for constructions published that way.
    """

    weights: list[TExpr]
    bias: TExpr | None = None
    reduce: str = "matmul"

    @property
    def in_features(self) -> int:
        return self.weights[0].shape[1]

    @property
    def out_features(self) -> int:
        return self.weights[-1].shape[0]


@dataclass(eq=False)
class Norm:
    """RMSNorm (`x * rsqrt(mean(x^2) + eps) * weight`) or LayerNorm. Weight: None, [d] or []."""

    kind: str = "rms"
    eps: float = RMS_EPS
    weight: TExpr | None = None
    bias: TExpr | None = None


@dataclass(eq=False)
class RoPE:
    """Rotary positions: pair i of each head turns by `position * omegas[i]` radians.

    `omegas` is a TExpr vector of angular frequencies [head_dim/2]: `2*pi/period` or
    `theta**(-2i/head_dim)`. `convention` says which dims pair up: "half" (i, i+hd/2, GPT-NeoX,
    HF Llama/Qwen, computed with cos/sin) or "interleaved" (2i, 2i+1, RoFormer / Meta Llama,
    computed as complex multiplication by `torch.polar`, as Meta's reference code does; the
    two round differently in the last float32 bit).
    """

    omegas: TExpr
    convention: str = "half"


@dataclass(eq=False)
class Attention:
    """Multi-head / grouped-query causal self-attention.

    scores = (q . k) * scale (or / scale when `scale_op == "div"`, as code that writes
    `/ math.sqrt(d)` does; or (scale * q) . k when `scale_op == "mul_q"`, as MLX's and
    other fused attention kernels' reference paths do) + alibi_slope[h] * (j - i) +
    bias[h, i, j]; causal mask;
    softmax or softmax1 (`exp(x) / (1 + sum exp(x))`, evaluated literally, no max shift).
    """

    n_heads: int
    n_kv_heads: int
    head_dim: int
    q: Linear
    k: Linear
    v: Linear
    o: Linear
    scale: sympy.Expr
    q_norm: Norm | None = None
    k_norm: Norm | None = None
    rope: RoPE | None = None
    alibi: TExpr | None = None  # [n_heads] slopes
    bias: TExpr | None = None  # [n_heads, T, T] fixed additive bias (entries may be -oo)
    softmax: str = "softmax"
    causal: bool = True
    scale_op: str = "mul"
    v_head_dim: int | None = None  # value/output width per head when it differs from q/k's

    @property
    def vd(self) -> int:
        return self.v_head_dim or self.head_dim


@dataclass(eq=False)
class MLP:
    """`down(act(up(x)))`, or gated `down(act(gate(x)) * up(x))` (SwiGLU / ReGLU)."""

    up: Linear
    down: Linear
    act: str = "relu"
    gate: Linear | None = None


@dataclass(eq=False)
class Block:
    """One residual branch: `h = h + layer(norm(h))` (norm None: the identity)."""

    layer: Attention | MLP
    norm: Norm | None = None
    name: str = ""


@dataclass(eq=False)
class ModelSpec:
    """A whole model as data (see the module docstring); equal specs have equal JSON."""

    name: str
    vocab: list[str]
    d_model: int
    slots: list[tuple[str, int]]  # named residual subspaces, in declaration order
    format: PromptFormat
    params: list[ParamDecl]
    embed: TExpr  # [vocab, d_model]
    blocks: list[Block]
    unembed: Linear  # d_model -> vocab logits
    pos: TExpr | None = None  # [max_len, d_model] added to the embedding
    final_norm: Norm | None = None
    dtype: str = "float32"  # the arithmetic the construction is correct in
    meta: dict = field(default_factory=dict)

    def param(self, name: str) -> ParamDecl:
        for p in self.params:
            if p.name == name:
                return p
        raise SpecError(f"unknown parameter {name!r}")

    def all_exprs(self):
        """Every weight expression of the spec, with a label saying where it sits."""
        yield "embed", self.embed
        if self.pos is not None:
            yield "pos", self.pos
        for i, b in enumerate(self.blocks):
            yield from _exprs_of(b.norm, f"blocks.{i}.norm")
            yield from _exprs_of(b.layer, f"blocks.{i}.{type(b.layer).__name__.lower()}")
        yield from _exprs_of(self.final_norm, "final_norm")
        yield from _exprs_of(self.unembed, "unembed")

    def __eq__(self, other) -> bool:
        return isinstance(other, ModelSpec) and spec_to_json(self) == spec_to_json(other)


def _exprs_of(obj: Any, where: str):
    if obj is None:
        return
    if isinstance(obj, TExpr):
        yield where, obj
    elif isinstance(obj, list):
        for i, x in enumerate(obj):
            yield from _exprs_of(x, f"{where}.{i}")
    elif hasattr(obj, "__dataclass_fields__"):
        for f in fields(obj):
            yield from _exprs_of(getattr(obj, f.name), f"{where}.{f.name}")


# ----------------------------------------------------------------------------------------
# JSON
# ----------------------------------------------------------------------------------------

_BLOCK_TYPES = {"Attention": Attention, "MLP": MLP, "Linear": Linear, "Norm": Norm, "RoPE": RoPE}


def _obj_to_json(x: Any) -> Any:
    if x is None or isinstance(x, (bool, int, float, str)):
        return x
    if isinstance(x, TExpr):
        return {"texpr": texpr_to_json(x)}
    if isinstance(x, sympy.Basic):
        return {"scalar": scalar_to_json(x)}
    if isinstance(x, (list, tuple)):
        return [_obj_to_json(v) for v in x]
    if type(x).__name__ in _BLOCK_TYPES:
        return {"type": type(x).__name__, **{f.name: _obj_to_json(getattr(x, f.name)) for f in fields(x)}}
    raise SpecError(f"cannot serialise {type(x).__name__}")


def _obj_from_json(x: Any) -> Any:
    if x is None or isinstance(x, (bool, int, float, str)):
        return x
    if isinstance(x, list):
        return [_obj_from_json(v) for v in x]
    if isinstance(x, dict):
        if "texpr" in x:
            return texpr_from_json(x["texpr"])
        if "scalar" in x:
            return scalar_from_json(x["scalar"])
        t = x.get("type")
        if t not in _BLOCK_TYPES:
            raise SpecError(f"unknown block type {t!r} in spec")
        cls = _BLOCK_TYPES[t]
        names = {f.name for f in fields(cls)}
        kwargs = {k: _obj_from_json(v) for k, v in x.items() if k != "type"}
        if set(kwargs) - names:
            raise SpecError(f"unknown fields {sorted(set(kwargs) - names)} for {t}")
        return cls(**kwargs)
    raise SpecError(f"malformed spec value {x!r}")


def spec_to_json(spec: ModelSpec) -> dict:
    return {
        "spec_version": SPEC_VERSION,
        "name": spec.name,
        "vocab": list(spec.vocab),
        "d_model": spec.d_model,
        "slots": [[n, w] for n, w in spec.slots],
        "format": spec.format.to_json(),
        "params": [{"name": p.name, "shape": list(p.shape),
                    "values": None if p.values is None else [scalar_to_json(v) for v in p.values],
                    "trainable": p.trainable, "init": p.init, "note": p.note} for p in spec.params],
        "embed": _obj_to_json(spec.embed),
        "pos": _obj_to_json(spec.pos),
        "blocks": [{"name": b.name, "norm": _obj_to_json(b.norm), "layer": _obj_to_json(b.layer)}
                   for b in spec.blocks],
        "final_norm": _obj_to_json(spec.final_norm),
        "unembed": _obj_to_json(spec.unembed),
        "dtype": spec.dtype,
        "meta": spec.meta,
    }


def spec_from_json(d: dict) -> ModelSpec:
    if not isinstance(d, dict) or d.get("spec_version") != SPEC_VERSION:
        raise SpecError(f"spec version {d.get('spec_version') if isinstance(d, dict) else '?'} "
                        f"is not supported (this adder reads version {SPEC_VERSION})")
    try:
        params = [ParamDecl(name=p["name"], shape=tuple(p["shape"]),
                            values=None if p["values"] is None else tuple(scalar_from_json(v) for v in p["values"]),
                            trainable=p["trainable"], init=p["init"], note=p.get("note", ""))
                  for p in d["params"]]
        return ModelSpec(
            name=d["name"], vocab=list(d["vocab"]), d_model=int(d["d_model"]),
            slots=[(n, int(w)) for n, w in d["slots"]], format=PromptFormat.from_json(d["format"]),
            params=params, embed=_obj_from_json(d["embed"]), pos=_obj_from_json(d["pos"]),
            blocks=[Block(name=b["name"], norm=_obj_from_json(b["norm"]), layer=_obj_from_json(b["layer"]))
                    for b in d["blocks"]],
            final_norm=_obj_from_json(d["final_norm"]), unembed=_obj_from_json(d["unembed"]),
            dtype=d["dtype"], meta=dict(d.get("meta", {})),
        )
    except (KeyError, TypeError, ValueError) as e:
        raise SpecError(f"malformed spec: {type(e).__name__}: {e}") from None


def spec_to_text(spec: ModelSpec) -> str:
    return json.dumps(spec_to_json(spec), separators=(",", ":"))


def spec_from_text(text: str) -> ModelSpec:
    try:
        return spec_from_json(json.loads(text))
    except json.JSONDecodeError as e:
        raise SpecError(f"spec is not valid JSON ({e})") from None
