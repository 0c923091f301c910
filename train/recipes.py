"""Training recipes: a learned spec (free tensors in the DSL) plus its hyperparameters.

A recipe is registered by name; `adder train --list` shows them. The spec is an ordinary
`ModelSpec`, so what trains is the same module the compiler builds from constructions,
and the checkpoint is read by `adder info`, `adder verify` and `adder compare`.
"""

from __future__ import annotations

import difflib
from dataclasses import asdict, dataclass, field
from typing import Callable

import sympy

from ..compiler.dsl import Construction, linear, rms, rotation
from ..compiler.errors import AdderError
from ..compiler.expr import cat, const, cos, sin, stack, zeros
from ..compiler.formats import PromptFormat
from ..compiler.spec import ModelSpec


@dataclass(frozen=True)
class Hyper:
    """Hyperparameters; every field is recorded in the checkpoint."""

    steps: int = 60_000
    batch: int = 256
    lr: float = 0.02
    min_lr_ratio: float = 0.1  # cosine decays to lr * min_lr_ratio
    warmup: int = 1_000
    weight_decay: float = 0.01
    clip: float = 1.0
    curriculum: str = "1-3:2000,1-6:5000,1-10:rest"  # digits of the operands, by phase
    carry_mix: float = 0.8  # share of carry-heavy examples ...
    carry_fade: tuple[int, int] = (15_000, 45_000)  # ... fading linearly to 0 over these steps
    eval_every: int = 2_000
    eval_pairs: int = 4_000
    early_stop_evals: int = 3  # stop after this many consecutive evals at 100% held-out exact match
    decay: str = "all"  # weight decay on "all" parameters (as MicroAdder's AdamW) or only "matrices"
    carry_sampler: str = "classes"  # carry-heavy examples: "classes" (generate/propagate/kill per digit) or "families"

    def to_json(self) -> dict:
        d = asdict(self)
        d["carry_fade"] = list(self.carry_fade)
        return d

    @classmethod
    def from_json(cls, d: dict) -> "Hyper":
        """The hyperparameters recorded in a checkpoint (unknown keys are refused)."""
        known = {f for f in cls.__dataclass_fields__}
        if set(d) - known:
            raise AdderError(f"unknown hyperparameters {sorted(set(d) - known)} in checkpoint")
        return cls(**{**d, **({"carry_fade": tuple(d["carry_fade"])} if "carry_fade" in d else {})})


@dataclass(frozen=True)
class Recipe:
    name: str
    build: Callable[[], ModelSpec]
    hyper: Hyper
    summary: str
    params: int
    notes: str = ""


RECIPES: dict[str, Recipe] = {}


def recipe(name: str, *, hyper: Hyper, summary: str, params: int, notes: str = ""):
    def deco(fn):
        RECIPES[name] = Recipe(name, fn, hyper, summary, params, notes)
        return fn

    return deco


def get_recipe(name: str) -> Recipe:
    if name not in RECIPES:
        close = difflib.get_close_matches(name, RECIPES, n=2)
        raise AdderError(f"unknown recipe {name!r}" + (f"; did you mean {', '.join(close)}?" if close else "")
                         + f" Recipes: {', '.join(sorted(RECIPES))} (adder train --list)")
    return RECIPES[name]


# ------------------------------------------------------------------------------ micro57
SPIRAL_AMP, SPIRAL_SLOPE = sympy.Rational(7, 2), sympy.Rational(3, 20)


@recipe("micro57", params=57, hyper=Hyper(),
        summary="MicroAdder 57p: d=5 (2 token + 3 position), circular token arc, tied Q/K + phase, "
                "triple-duty head (V, fc2, output), rank-1 out_proj, one shared RMSNorm",
        notes="After evindor/MicroAdder (seed 777 reached 100% there). Written from its description.")
def micro57() -> ModelSpec:
    """MicroAdder's 57-parameter layout, with free (trainable) tensors.

    Residual: `tok` (2 dims, a circular arc of radius A through the ten digits) and `pos`
    (3 dims: a frozen spiral shared by a_i, b_i and the sum digit i, plus learned positions
    for '=' and for the top sum digit). Q and K read `pos` only, through one shared 3->4
    map, Q turned by a learned phase; V reads `tok` through the transpose of the output
    head, which also serves as the MLP's second layer. Format (22-token prompt):
    a0..a9 0 b0..b9 0, then 11 sum digits, least significant first.
    """
    c = Construction("micro57", vocab=[str(d) for d in range(10)], dtype="float32",
                     fmt=PromptFormat(prompt=(("a", "lsb"), 0, ("b", "lsb"), 0), out_order="lsb"),
                     slots=[("tok", 2), ("pos", 3)], layers=1, heads=1, positions="frozen spiral + 6 learned",
                     author="evindor (layout; trained here by adder.train)", source="https://github.com/evindor/MicroAdder",
                     claimed_params=57,
                     description="micro57: MicroAdder-style learned 57p (tied Q/K+phase, triple-duty head)")
    # token embedding: 3 parameters
    A = c.param("tok.A", 2.5)
    start = c.param("tok.start", -1.2)
    stride = c.param("tok.stride", 0.29)
    ang = start + const(list(range(10))) * stride
    tok = stack([A * cos(ang), A * sin(ang)], axis=1)  # [10, 2]
    # positions: a frozen spiral for digit i (shared by a_i, b_i, s_i) + '=' and the top digit
    spiral = const([[SPIRAL_AMP * sympy.cos(2 * sympy.pi * i / 10), SPIRAL_AMP * sympy.sin(2 * sympy.pi * i / 10),
                     SPIRAL_SLOPE * i] for i in range(10)])
    eq = c.free("pos.equals", (1, 3), init="normal")
    top = c.free("pos.top_digit", (1, 3), init="normal")
    pos3 = cat([spiral, zeros(1, 3), spiral, eq, spiral, top, zeros(1, 3)], axis=0)  # [34, 3]
    c.embed(cat([tok, zeros(10, 3)], axis=1), pos=cat([zeros(34, 2), pos3], axis=1))

    norm_w = c.free("norm.weight", (5,), init="ones", note="one RMSNorm weight shared by all three norms")
    norm = rms(1e-5, weight=norm_w)
    qk = c.free("attn.qk", (4, 3), init="xavier", note="shared by Q and K; reads `pos`")
    phase = c.free("attn.q_phase", (), init="zeros")
    head = c.free("head", (2, 5), init="xavier", note="triple duty: V (transposed), MLP fc2, output head")
    out_a = c.free("attn.out_a", (5, 1), init="linear")
    out_b = c.free("attn.out_b", (1, 5), init="zeros")
    fc1 = c.free("mlp.fc1", (2, 5), init="xavier")

    W_qk = cat([zeros(4, 2), qk], axis=1)  # [4, 5]
    R = rotation(phase)
    R4 = cat([cat([R, zeros(2, 2)], axis=1), cat([zeros(2, 2), R], axis=1)], axis=0)
    c.attention(norm=norm, head_dim=4, v_head_dim=5, divisor=2, q=[W_qk, R4], k=W_qk,
                v=cat([head.T, zeros(5, 3)], axis=1), o=[out_a.T, out_b.T])
    c.mlp(norm=norm, up=fc1, down=head.T, act="gelu")
    c.unembed([head, tok], final_norm=norm)  # logits = head(norm(h)) . tok_table
    return c.build()
