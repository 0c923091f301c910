"""Low-rank d_model 7 (yinglunz's 456p and 512p, after gpt-acc-jax's 777p).

One layer, one head of width 7, a GELU MLP of width 14, the token table tied to the head,
and every other matrix factorised W = A B through rank 3 (the attention output through rank 2
at 456p): learned positions are a 33x3 table times a 3x7 basis, Q/K/V share their first
factor. At 456p K and V are one projection ("shareA_tieKV") and the norms are RMSNorm; the
512p uses LayerNorm and separate second factors for Q, K and V. rezabyt's 311p is the 456p's
layout at d = 4 with an MLP of width 8 and a rank-3 attention output (`lowrank-d4`).

Format: `a9..a0 + b9..b0 =` (most significant first, vocab 14: digits, '+', '=', pad, eos),
then the 11 sum digits least significant first, and (in training, as the published trainer
does) the end token after them.

Factors are drawn as the original draws them in spirit: Glorot (uniform here, normal
there: the same variance) for the low-rank pairs, N(0, 0.02) for the token table and the
position factors. Published seeds do not transfer across hardware: treat them as hints.
"""

from __future__ import annotations

import sympy

from ...compiler.builder import Construction, layernorm, rms
from ...compiler.formats import PromptFormat
from ...compiler.spec import ModelSpec
from .hyper import Hyper
from .registry import recipe

D, FF, SEQ, VOCAB = 7, 14, 33, ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "+", "=", "<pad>", "<eos>"]
PLUS, EQUALS = 10, 11
SOURCE = "https://github.com/yinglunz/A-456-Parameter-Transformer-Solves-10-Digit-Addition"
REZABYT = "https://github.com/rezabyt/digit-addition-311p"
#: The original's train.py: AdamW at 0.02, 1,350 warmup steps, cosine to 0.1x, decay 0.01 on every
#: tensor, batch 512, clip 1.0; a phase's pairs draw k digits, then both operands below 10^k; the
#: loss counts the end token after the 11 sum digits.
HYPER = Hyper(steps=54_000, batch=512, lr=0.02, min_lr_ratio=0.1, warmup=1_350, weight_decay=0.01, clip=1.0,
              curriculum="1-3:2000,1-6:5000,1-10:rest", carry_mix=0.0, carry_fade=(0, 1), decay="all",
              operands="bounds", eos_token=VOCAB.index("<eos>"))


def lowrank_d7(name: str, *, tie_kv: bool, out_rank: int, norm: str, d: int = D, ff: int = FF,
               author: str = "yinglunz", source: str = SOURCE) -> ModelSpec:
    c = Construction(name, vocab=VOCAB, dtype="float32",
                     fmt=PromptFormat(prompt=(("a", "msb"), PLUS, ("b", "msb"), EQUALS), out_order="lsb"),
                     slots=[("h", d)], layers=1, heads=1, positions="learned, rank 3",
                     author=f"{author} (layout; trained here by adder.train)", source=source)

    def low_rank(key, n_out, n_in, rank):
        """[first, second]: x -> second(first(x)), as a chain of two Glorot-initialised factors."""
        return [c.free(f"{key}.a", (rank, n_in), init="xavier"), c.free(f"{key}.b", (n_out, rank), init="xavier")]

    def make_norm(key):
        if norm == "rms":
            return rms(1e-8, weight=c.free(f"{key}.weight", (d,), init="ones"))
        return layernorm(1e-5, weight=c.free(f"{key}.weight", (d,), init="ones"), bias=c.free(f"{key}.bias", (d,), init="zeros"))

    E = c.free("embed", (len(VOCAB), d), init="normal")
    pos = c.free("pos.a", (SEQ, 3), init="normal") @ c.free("pos.b", (3, d), init="normal")
    c.embed(E, pos=pos)
    shared = c.free("attn.qkv_a", (3, d), init="xavier")
    bq = c.free("attn.q_b", (d, 3), init="xavier")
    bk = c.free("attn.kv_b" if tie_kv else "attn.k_b", (d, 3), init="xavier")
    bv = bk if tie_kv else c.free("attn.v_b", (d, 3), init="xavier")
    c.attention(norm=make_norm("attn.norm"), head_dim=d, divisor=sympy.sqrt(d),
                q=[shared, bq], k=[shared, bk], v=[shared, bv], o=low_rank("attn.o", d, d, out_rank))
    c.mlp(norm=make_norm("mlp.norm"), act="gelu", up=low_rank("mlp.up", ff, d, 3), down=low_rank("mlp.down", d, ff, 3))
    c.unembed(E, final_norm=make_norm("final_norm"))
    return c.build()


@recipe("lowrank-d7", params=456, hyper=HYPER,
        summary="Low-rank d=7 456p: rank-3 positions/QKV/FFN, rank-2 attention output, shared-A tied K=V, RMSNorm, tied embedding",
        notes="yinglunz: 2 of 5 seeds grokked within 54K steps (GPU); seeds do not transfer across hardware.")
def lowrank_456() -> ModelSpec:
    return lowrank_d7("lowrank-d7", tie_kv=True, out_rank=2, norm="rms")


@recipe("lowrank-d7-512", params=512, hyper=HYPER,
        summary="Low-rank d=7 512p: rank-3 positions/QKV/out/FFN, LayerNorm, tied embedding",
        notes="yinglunz's 512p (seed 42 there; it failed to reproduce on other hardware).")
def lowrank_512() -> ModelSpec:
    return lowrank_d7("lowrank-d7-512", tie_kv=False, out_rank=3, norm="layer")


@recipe("lowrank-d4", params=311, hyper=HYPER,
        summary="Low-rank d=4 311p: the 456p's layout at d=4, MLP width 8, rank-3 attention output (rezabyt 311p)",
        notes="Recipe for importing the published weights (`adder import`); trained here as lowrank-d7 is.")
def lowrank_311() -> ModelSpec:
    return lowrank_d7("lowrank-d4", tie_kv=True, out_rank=3, norm="rms", d=4, ff=8, author="rezabyt", source=REZABYT)
