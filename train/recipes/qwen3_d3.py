"""Qwen3-style d_model 3 (staghado's minimal-ten-digit-addition-transformer and its tied descendants).

One Qwen3 decoder layer at the smallest width that trains: d_model 3, one query head and one
KV head of width 4, QK-norm, RoPE with theta 3 and SwiGLU, embedding tied to the head. The
insight of the original: with head_dim 4 RoPE has two frequencies, 1 and theta^-1/2; at the
usual theta = 10^4 the slow one turns 0.34 rad over the 35 positions and positions blur, at
theta = 3 it turns ~20 rad and every position is distinct. RoPE here is the *half*
convention (pairs (i, i + 2), MLX's `traditional=False`, HF Qwen3), the one the published
weights were trained with: loaded into this spec, the published 122p weights (best_122.npz)
add 10,005 of the official 10,010 (99.95%, the figure their author reports); with the
interleaved convention the same weights add 1.

Format: `0 a0..a9 0 0 b0..b9 0` (24 tokens), 11 sum digits, least significant first.

Tying options (each a flag of `qwen3_d3`), from the 122p base down:
* `tie_kv` — K and V one projection (-12);
* `o_is_qt` — the output projection is Q's transpose (-12);
* `share_norms` — one weight for the three residual norms and one for q/k norms (-10);
* `arc_embed` — digits on a circular arc in two dims (radius, start, stride) plus a learned
  third column, in place of a free 10x3 table (-17);
* `ffn` — SwiGLU width (3 in the base; 2 saves 9);
* `heads` — query heads sharing the one KV head (the original's larger models use 2: +24).
"""

from __future__ import annotations

import math

from ...compiler.dsl import Construction, rms, rope
from ...compiler.expr import const, cos, sin, stack
from ...compiler.formats import PromptFormat
from ...compiler.spec import ModelSpec
from .hyper import Hyper
from .registry import recipe

D, HEAD_DIM, THETA = 3, 4, 3
SOURCE = "https://github.com/staghado/minimal-ten-digit-addition-transformer"
#: MLX initialisers: nn.Embedding draws N(0, 1/d); nn.Linear U(+-1/sqrt(fan_in)) (our "linear").
EMBED_INIT = f"normal:{1 / math.sqrt(D):.17g}"
HYPER = Hyper(steps=45_000, batch=128, lr=0.01, min_lr_ratio=0.1, warmup=0, weight_decay=0.01, clip=1.0,
              curriculum="1-10:rest", carry_mix=0.0, carry_fade=(0, 1), decay="all")


def qwen3_d3(name: str, *, ffn: int = 3, heads: int = 1, tie_kv: bool = False, o_is_qt: bool = False,
             share_norms: bool = False, arc_embed: bool = False) -> ModelSpec:
    c = Construction(name, vocab=[str(d) for d in range(10)], dtype="float32",
                     fmt=PromptFormat(prompt=(0, ("a", "lsb"), 0, 0, ("b", "lsb"), 0), out_order="lsb"),
                     slots=[("h", D)], layers=1, heads=heads, positions="RoPE theta 3 (half rotation)",
                     author="staghado (layout; trained here by adder.train)", source=SOURCE)
    if arc_embed:
        A, start, stride = c.param("embed.A", 1), c.param("embed.start", 0), c.param("embed.stride", 0.6)
        ang = start + const(list(range(10))) * stride
        E = stack([A * cos(ang), A * sin(ang), c.free("embed.z", (10,), init=EMBED_INIT)], axis=1)
    else:
        E = c.free("embed", (10, D), init=EMBED_INIT)
    c.embed(E)

    def norm(key, width):
        return rms(1e-6, weight=c.free(key, (width,), init="ones"))

    shared = norm("norm", D) if share_norms else None
    q = c.free("attn.q", (heads * HEAD_DIM, D), init="linear")
    k = c.free("attn.k", (HEAD_DIM, D), init="linear")
    v = k if tie_kv else c.free("attn.v", (HEAD_DIM, D), init="linear")
    o = q.T if o_is_qt else c.free("attn.o", (D, heads * HEAD_DIM), init="linear")
    qn = norm("attn.qk_norm" if share_norms else "attn.q_norm", HEAD_DIM)
    kn = qn if share_norms else norm("attn.k_norm", HEAD_DIM)
    c.attention(norm=shared or norm("attn.norm", D), q=q, k=k, v=v, o=o, heads=heads, kv_heads=1, head_dim=HEAD_DIM,
                q_norm=qn, k_norm=kn, rope=rope(theta=THETA, head_dim=HEAD_DIM, convention="half"))
    c.mlp(norm=shared or norm("mlp.norm", D), act="silu", gate=c.free("mlp.gate", (ffn, D), init="linear"),
          up=c.free("mlp.up", (ffn, D), init="linear"), down=c.free("mlp.down", (D, ffn), init="linear"))
    c.unembed(E, final_norm=shared or norm("final_norm", D))
    return c.build()


@recipe("qwen3-d3", params=122, hyper=HYPER,
        summary="Qwen3 d=3, 1 query + 1 KV head of width 4, QK-norm, RoPE theta 3 (half), SwiGLU 3, tied embedding",
        notes="After staghado (MLX). Its author reports about 4/10 seeds succeeding: expect a sweep.")
def qwen3_d3_base() -> ModelSpec:
    return qwen3_d3("qwen3-d3")


@recipe("qwen3-d3-tied", params=71, hyper=HYPER,
        summary="qwen3-d3 with K=V, O=Q^T, shared norms, circular-arc embedding, SwiGLU 3",
        notes="All tying options of the family on; fewer seeds are expected to succeed.")
def qwen3_d3_tied() -> ModelSpec:
    return qwen3_d3("qwen3-d3-tied", tie_kv=True, o_is_qt=True, share_norms=True, arc_embed=True)


@recipe("qwen3-d3-2h", params=137, hyper=HYPER,
        summary="Qwen3 d=3 with 2 query heads on 1 KV head, SwiGLU 2 (the original trainer's 137p default)",
        notes="staghado's train.py defaults; its author notes chaotic, seed-sensitive dynamics at this size.")
def qwen3_d3_2h() -> ModelSpec:
    return qwen3_d3("qwen3-d3-2h", heads=2, ffn=2)
