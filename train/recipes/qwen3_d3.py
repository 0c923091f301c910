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

Tying options (each a keyword of `qwen3_d3`), from the 122p base down:
* `tie_kv` — K and V one projection (-12); `v_is_q` — V is Q's projection (-12);
* `k` — "q": K is Q's projection (-12); "q rotated": Q's turned by one learned angle (-11);
* `o_is_qt` — the output projection is Q's transpose (-12);
* `norms="shared"` — one weight for the three residual norms (-6); `share_qk_norm` — one for
  the q/k norms (-4);
* `embed` — "arc+z": digits on a circular arc in two dims (radius, start, stride) plus a
  learned third column, in place of a free 10x3 table (-17); "arc": the third column zero (-27);
* `down_rotated_up_t` — the MLP's down projection is up's transpose after a learned turn of
  the hidden pairs (-5 at SwiGLU width 2); `down_up_t` — up's transpose itself, no turn (-6);
* `ffn` — SwiGLU width (3 in the base; 2 saves 9);
* `heads` — query heads sharing the one KV head (the original's larger models use 2: +24);
* ties read off a trained 44p (`qwen3_arc.py`, ours): `mirror_k_norm` — K's norm weight is Q's
  with the second entry of every RoPE pair negated, a reflection of each pair (-4); `down_arc` —
  the MLP writes the arc plane only, down's third row zero (-2 at width 2);
* exact symmetries fixed (the module computes the same function): `unit_down` — with `down_arc`,
  each column of down a unit vector (an angle), each hidden unit's scale carried by its row of
  up (-ffn); `pin_norm_z` — the shared residual norm's third weight is 1 (neither the attention,
  which reads the arc plane, nor the head, whose third column is zero, sees that dimension:
  its scale is carried by the MLP's third input column) (-1);
* `slack` — each of those ties plus a learned difference (`<name>_slack`, starting at 0):
  the layout between a trained untied model and the tied one (`train/bridge.py`);
* `rope_convention` — "interleaved" (pairs (2i, 2i + 1)) for the PyTorch reimplementations of
  the family (qwen3_arc.py), whose published weights were trained with it;
* `d` — the residual width (3 here; dimopep's 140p is this layout at d = 4, `qwen3-d4`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from ...compiler.builder import Construction, block_diag, rms, rope, rotation
from ...compiler.expr import cat, const, cos, sin, stack, zeros
from ...compiler.formats import PromptFormat
from ...compiler.spec import ModelSpec
from .hyper import Hyper
from .registry import recipe

D, HEAD_DIM, THETA = 3, 4, 3
SOURCE = "https://github.com/staghado/minimal-ten-digit-addition-transformer"
DIMOPEP = "https://gist.github.com/dimopep/27158a2b0ed983e32ee8f39af6e5a134"


def embed_init(d: int) -> str:
    """MLX's nn.Embedding draws N(0, 1/d) (its nn.Linear U(+-1/sqrt(fan_in)) is our "linear")."""
    return f"normal:{1 / math.sqrt(d):.17g}"


EMBED_INIT = embed_init(D)
#: torch's AdamW, cosine to lr/10: the PyTorch reimplementations of the family (qwen3_arc.py).
HYPER = Hyper(steps=45_000, batch=128, lr=0.01, min_lr_ratio=0.1, warmup=0, weight_decay=0.01, clip=1.0,
              curriculum="1-10:rest", carry_mix=0.0, carry_fade=(0, 1), decay="all")
#: The original's train.py as it runs: MLX's `optim.AdamW(learning_rate=0.01)` keeps MLX's defaults,
#: so no bias correction (its first ~1,000 updates are 1.3-6.5x torch's; optim.py), and a constant
#: lr (no schedule). One step here from the original's initial weights on its batch matches MLX's
#: to 3e-8; over seeds the share leaving the early plateau barely moves (docs/train.md).
MLX_HYPER = replace(HYPER, optimizer="adamw-mlx", min_lr_ratio=1.0)


#: Where K comes from: its own projection, Q's projection itself, or Q's turned by a learned angle
#: (every pair of K's 4 dims, the published "K = rotation(Q)").
K_SOURCES = ("own", "q", "q rotated")
#: Token embedding: a free table, a circular arc plus a learned third column, or an arc with a zero third column.
EMBEDS = ("table", "arc+z", "arc")
#: What the attention reads of the stream under the zero-third-column arc: its first two dims.
ARC_DIMS = const([[1, 0, 0], [0, 1, 0], [0, 0, 0]])
#: Residual norms: one weight each (attention, MLP, final), or one shared by all three.
NORMS = ("separate", "shared")


@dataclass(frozen=True)
class Inits:
    """Where training starts: the projections' initialiser (`compiler.inits`), the arc's
    (radius, start, stride) and the learned angles' value. The defaults are MLX's layers
    (staghado's trainer); `TBUKIC_INITS` the PyTorch reimplementation's (qwen3_arc.py)."""

    linear: str = "linear"
    arc: tuple[float, float, float] = (1, 0, 0.6)
    angle: float = 0.0


def qwen3_d3(name: str, *, ffn: int = 3, heads: int = 1, k: str = "own", tie_kv: bool = False, v_is_q: bool = False,
             o_is_qt: bool = False, norms: str = "separate", share_qk_norm: bool = False, embed: str = "table",
             down_rotated_up_t: bool = False, down_up_t: bool = False, rope_convention: str = "half",
             mirror_k_norm: bool = False, down_arc: bool = False,
             unit_down: bool = False, pin_norm_z: bool = False, slack: bool = False, author: str = "staghado",
             source: str = SOURCE, inits: Inits = Inits(), d: int = D) -> ModelSpec:
    """The family's layout; every option ties or drops a published tensor (the module docstring).
    `rope_convention`: "half" as MLX and HF, "interleaved" as the PyTorch reimplementations."""
    assert k in K_SOURCES and embed in EMBEDS and norms in NORMS and not (tie_kv and v_is_q)
    assert not (down_up_t and down_rotated_up_t) and not (mirror_k_norm and share_qk_norm)
    assert embed == "arc" or not (down_arc or pin_norm_z)
    assert (down_arc or not unit_down) and (norms == "shared" or not pin_norm_z) and (embed == "table" or d == 3)
    c = Construction(name, vocab=[str(d) for d in range(10)], dtype="float32",
                     fmt=PromptFormat(prompt=(0, ("a", "lsb"), 0, 0, ("b", "lsb"), 0), out_order="lsb"),
                     slots=[("h", d)], layers=1, heads=heads,
                     positions=f"RoPE theta 3 ({'half' if rope_convention == 'half' else rope_convention} rotation)",
                     author=f"{author} (layout; trained here by adder.train)", source=source)
    if embed == "table":
        E = c.free("embed", (10, d), init=embed_init(d))
    else:
        A, start, stride = (c.param(f"embed.{n}", v) for n, v in zip(("A", "start", "stride"), inits.arc))
        ang = start + const(list(range(10))) * stride
        z = c.free("embed.z", (10,), init=EMBED_INIT) if embed == "arc+z" else zeros(10)
        E = stack([A * cos(ang), A * sin(ang), z], axis=1)
    c.embed(E)

    def norm(key, width):
        return rms(1e-6, weight=c.free(key, (width,), init="ones"))

    def angle(key):  # a learned turn, starting at inits.angle
        return c.param(key, inits.angle) if inits.angle else c.free(key, (), init="zeros")

    def tied(key, expr):  # a tie, with its learned difference in the bridge layout
        return expr + c.free(f"{key}_slack", expr.shape, init="zeros") if slack else expr

    def reads(*chain):  # the zero arc column is unwritten before attention: say so (same numbers)
        return [ARC_DIMS, *chain] if embed == "arc" else chain[0] if len(chain) == 1 else list(chain)

    if pin_norm_z:  # the third weight 1: its scale lives in the MLP's third input column instead
        shared = rms(1e-6, weight=tied("norm", cat([c.free("norm_arc", (2,), init="ones"), const([1])])))
    else:
        shared = norm("norm", D) if norms == "shared" else None
    q = c.free("attn.q", (heads * HEAD_DIM, d), init=inits.linear)
    if k == "own":
        k_proj = reads(c.free("attn.k", (HEAD_DIM, d), init=inits.linear))
    elif k == "q":
        k_proj = reads(q)
    else:
        turn = rotation(angle("attn.k_angle"))
        k_proj = reads(q, block_diag(*[turn] * (HEAD_DIM // 2)))
    v = k_proj if tie_kv else reads(q) if v_is_q else c.free("attn.v", (HEAD_DIM, d), init=inits.linear)
    o = q.T if o_is_qt else c.free("attn.o", (d, heads * HEAD_DIM), init=inits.linear)
    qn = norm("attn.qk_norm" if share_qk_norm else "attn.q_norm", HEAD_DIM)
    if mirror_k_norm:
        kn = rms(1e-6, weight=tied("attn.k_norm", qn.weight * const([1, -1] * (HEAD_DIM // 2))))
    else:
        kn = qn if share_qk_norm else norm("attn.k_norm", HEAD_DIM)
    c.attention(norm=shared or norm("attn.norm", d), q=reads(q), k=k_proj, v=v, o=o, heads=heads, kv_heads=1,
                head_dim=HEAD_DIM, q_norm=qn, k_norm=kn,
                rope=rope(theta=THETA, head_dim=HEAD_DIM, convention=rope_convention))
    mlp_norm = shared or norm("mlp.norm", d)
    gate, up = c.free("mlp.gate", (ffn, d), init=inits.linear), c.free("mlp.up", (ffn, d), init=inits.linear)
    if down_rotated_up_t:  # down(x) = up^T R(angle) x: every pair of the hidden turned, then up's transpose
        down = [block_diag(*[rotation(angle("mlp.down_angle"))] * (ffn // 2)), up.T]
    elif down_up_t:  # down(x) = up^T x
        down = up.T
    elif down_arc:  # the arc plane's two rows; the third (read only by the final norm's scale: the head ignores it) zero
        if unit_down:  # unit columns: each hidden unit's scale lives in its row of up instead
            turn = c.free("mlp.down_angle", (ffn,), init="normal:1")
            arc = stack([cos(turn), sin(turn)])
        else:
            arc = c.free("mlp.down_arc", (2, ffn), init=inits.linear)
        down = tied("mlp.down", cat([arc, zeros(1, ffn)], axis=0))
    else:
        down = c.free("mlp.down", (d, ffn), init=inits.linear)
    c.mlp(norm=mlp_norm, act="silu", gate=gate, up=up, down=down)
    c.unembed(E, final_norm=shared or norm("final_norm", d))
    return c.build()


@recipe("qwen3-d3", params=122, hyper=MLX_HYPER,
        summary="Qwen3 d=3, 1 query + 1 KV head of width 4, QK-norm, RoPE theta 3 (half), SwiGLU 3, tied embedding",
        notes="After staghado (MLX). Its author reports about 4/10 seeds succeeding: expect a sweep.")
def qwen3_d3_base() -> ModelSpec:
    return qwen3_d3("qwen3-d3")


@recipe("qwen3-d3-tied", params=71, hyper=MLX_HYPER,
        summary="qwen3-d3 with K=V, O=Q^T, shared norms, circular-arc embedding, SwiGLU 3",
        notes="All tying options of the family on; fewer seeds are expected to succeed.")
def qwen3_d3_tied() -> ModelSpec:
    return qwen3_d3("qwen3-d3-tied", tie_kv=True, o_is_qt=True, norms="shared", share_qk_norm=True, embed="arc+z")


@recipe("qwen3-d3-2h", params=137, hyper=MLX_HYPER,
        summary="Qwen3 d=3 with 2 query heads on 1 KV head, SwiGLU 2 (the original trainer's 137p default)",
        notes="staghado's train.py defaults; its author notes chaotic, seed-sensitive dynamics at this size.")
def qwen3_d3_2h() -> ModelSpec:
    return qwen3_d3("qwen3-d3-2h", heads=2, ffn=2)


@recipe("qwen3-d4", params=140, hyper=replace(HYPER, steps=20_000),
        summary="Qwen3 d=4, 1 head of width 4, K=V, O=Q^T, QK-norm, RoPE theta 3 (interleaved), SwiGLU 4 (dimopep 140p)",
        notes="Recipe for importing the published weights (`adder import`); trained here with qwen3-d3's "
              "hyperparameters for 20K steps, the step count its submission gives.")
def qwen3_d4() -> ModelSpec:
    return qwen3_d3("qwen3-d4", d=4, ffn=4, tie_kv=True, o_is_qt=True, rope_convention="interleaved",
                    author="dimopep", source=DIMOPEP)
