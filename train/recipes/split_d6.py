"""Split-subspace d_model 6 (Jack Cai's 242p / 260p "spiral addition transformer").

The residual is a token half and a position half, concatenated: 3 token dims (digits
initialised on a spiral `(cos 2 pi d/10, sin 2 pi d/10, d/9)`, the four specials at fixed
points) and 3 position dims (digit place i initialised on the same spiral, the top sum digit
and the three delimiters at fixed points). Attention is split by subspace: Q and K read only
the position half, V only the token half, two heads of width 3. Positions are shared three ways: a_i,
b_i and sum digit i use one vector ("shared XYZ"), plus vectors for '+', '=', the end and
the top sum digit. The head is tied through a 6 -> 3 projection onto the token table, and
the MLP has just 2 units (with biases), which weight decay 0.01 makes enough.

Format: `a0..a9 + b0..b9 =` (least significant first, vocab 14), then 11 sum digits, least
significant first, and an end-of-sequence target after them. 242p uses RMSNorm; 260p LayerNorm
(+6 bias per norm).

Trained as the original trains it (`train_spos_wd.py`, `data.py`, `model.py` of SOURCE):
operands of k digits each, k uniform in 1..10 (`operands="lengths"`), AdamW at a constant
1e-3 with decay 0.01, no gradient clipping, Xavier-uniform matrices. Its biases start at
nn.Linear's default; ours at 0.
"""

from __future__ import annotations

import sympy

from ...compiler.builder import Construction, layernorm, linear, rms
from ...compiler.expr import cat, zeros
from ...compiler.formats import PromptFormat
from ...compiler.spec import ModelSpec
from .hyper import Hyper
from .registry import recipe

VOCAB = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "+", "=", "<eos>", "<pad>"]
PLUS, EQUALS = 10, 11
SOURCE = "https://github.com/JackCai1206/smallest-addition-transformer"
EOS = VOCAB.index("<eos>")
#: Constant lr 1e-3, AdamW decay 0.01, batch 512, no clipping; the original grokked after
#: ~1,000 epochs of 50K samples (~100K steps) on one CPU.
HYPER = Hyper(steps=100_000, batch=512, lr=1e-3, min_lr_ratio=1.0, warmup=0, weight_decay=0.01, clip=0.0,
              curriculum="1-10:rest", carry_mix=0.0, carry_fade=(0, 1), decay="all", operands="lengths",
              eos_token=EOS)


def spiral(i: int) -> list:
    """Point i of ten on the spiral: once around the circle while rising from 0 to 1."""
    return [sympy.cos(2 * sympy.pi * i / 10), sympy.sin(2 * sympy.pi * i / 10), sympy.Rational(i, 9)]


#: Fixed points off the spiral: '+', '=', then the end (and, for tokens, the pad).
OFF_SPIRAL = [[2, 0, -1], [0, 2, -1], [-2, 0, -1], [0, -2, -1]]


def spiral_tokens():
    """Initial token table: digit d at spiral(d), the specials at fixed points off it."""
    return [spiral(d) for d in range(10)] + OFF_SPIRAL


def split_d6(name: str, *, norm: str) -> ModelSpec:
    c = Construction(name, vocab=VOCAB, dtype="float32",
                     fmt=PromptFormat(prompt=(("a", "lsb"), PLUS, ("b", "lsb"), EQUALS), out_order="lsb"),
                     slots=[("tok", 3), ("pos", 3)], layers=1, heads=2, positions="learned, shared by a_i, b_i, s_i",
                     author="Jack Cai (layout; trained here by adder.train)", source=SOURCE)
    tok = c.param("embed", spiral_tokens(), note="spiral-initialised, trained")
    digit = c.param("pos.digit", [spiral(i) for i in range(10)], note="digit place i at spiral(i), trained")
    top = c.param("pos.top_digit", [[0, 0, sympy.Rational(3, 2)]], note="above the spiral, trained")
    special = c.param("pos.special", OFF_SPIRAL[:3], note="'+', '=', end; trained")
    pos3 = cat([digit, special[0:1], digit, special[1:2], digit, top, special[2:3]], axis=0)  # [34, 3]
    c.embed(cat([tok, zeros(len(VOCAB), 3)], axis=1), pos=cat([zeros(34, 3), pos3], axis=1))

    def make_norm(key):
        w = c.free(f"{key}.weight", (6,), init="ones")
        return rms(1e-5, weight=w) if norm == "rms" else layernorm(1e-5, weight=w, bias=c.free(f"{key}.bias", (6,), init="zeros"))

    def reads(half, w):  # a [6, 3] projection applied to one half of the residual
        return cat([w, zeros(6, 3)], axis=1) if half == "tok" else cat([zeros(6, 3), w], axis=1)

    c.attention(norm=make_norm("attn.norm"), heads=2, head_dim=3, divisor=sympy.sqrt(3),
                q=reads("pos", c.free("attn.q", (6, 3), init="xavier")),
                k=reads("pos", c.free("attn.k", (6, 3), init="xavier")),
                v=reads("tok", c.free("attn.v", (6, 3), init="xavier")),
                o=c.free("attn.o", (6, 6), init="xavier"))
    c.mlp(norm=make_norm("mlp.norm"), act="gelu",
          up=linear(c.free("mlp.up", (2, 6), init="xavier"), bias=c.free("mlp.up_bias", (2,), init="zeros")),
          down=linear(c.free("mlp.down", (6, 2), init="xavier"), bias=c.free("mlp.down_bias", (6,), init="zeros")))
    c.unembed([c.free("head", (3, 6), init="xavier"), tok], final_norm=make_norm("final_norm"))
    return c.build()


@recipe("split-d6", params=242, hyper=HYPER,
        summary="Split subspaces d=6 (3 token + 3 position), Q/K from positions, V from tokens, 2 heads, "
                "shared XYZ positions, tied 6->3 head, FFN 2, RMSNorm",
        notes="Jack Cai's 242p: 99.07% official after ~1,000 epochs; the 260p LayerNorm twin grokked in ~500.")
def split_242() -> ModelSpec:
    return split_d6("split-d6", norm="rms")


@recipe("split-d6-260", params=260, hyper=HYPER,
        summary="split-d6 with LayerNorm (260p)", notes="Jack Cai's 260p.")
def split_260() -> ModelSpec:
    return split_d6("split-d6-260", norm="layer")
