"""MicroAdder (evindor): d_model 5 = 2 token dims + 3 position dims, one layer, LSB-first.

The token embedding is a circular arc of three numbers (radius A, start angle, stride), so
digits sit on a circle the attention and head can read linearly. Positions are a spiral
shared by a_i, b_i and sum digit i (`[amp cos(2 pi i/10 + phase), amp sin(...), slope i +
offset]`), plus learned vectors for '=' and for the top sum digit. Q and K read only the
position dims through one shared map, Q turned by a learned phase (pairs (0,1), (2,3), an
odd last dim untouched); V reads the token dims through the transpose of the output head;
the output projection is rank 1; one RMSNorm weight serves all three norms.

Variants (MicroAdder's own switches):
* 57p — the MLP's second layer is the output head again ("triple duty"), frozen spiral;
* 67p — a separate fc2 (+10);
* 74p — a separate fc2, a 5-dim Q/K (+3) and a learned spiral (+4), trained longer with a
  later carry-mix fade and adaptive weight decay.
"""

from __future__ import annotations

import sympy

from ...compiler.builder import Construction, block_diag, rms, rotation
from ...compiler.expr import cat, const, cos, eye, sin, stack, zeros
from ...compiler.formats import PromptFormat
from ...compiler.spec import ModelSpec
from .hyper import Hyper
from .registry import recipe

#: The 57p's frozen spiral (MicroAdder's `--spiral-init-amp 3.5 --spiral-init-slope 0.15`).
SPIRAL_AMP, SPIRAL_SLOPE = sympy.Rational(7, 2), sympy.Rational(3, 20)
#: Where a learned spiral starts (MicroAdder's 74p trainer, both its research and its clean code):
#: a unit circle rising 1/9 per digit. Until 2026-12-03 `micro74` started from the 57p's frozen
#: 3.5 / 0.15, whose circle makes the first attention scores (they read positions only) ~12x larger.
LEARNED_SPIRAL_AMP, LEARNED_SPIRAL_SLOPE = 1, sympy.Rational(1, 9)
SOURCE = "https://github.com/evindor/MicroAdder"
#: MicroAdder's adaptive decay: x0.1 once held-out exact >= 2% (token accuracy >= 70%), x0.01 from 20%.
MICRO_WD_DROPS = ((0.02, 0.7, 0.1), (0.2, 0.7, 0.01))


def micro_adder(name: str, *, qk_dim: int = 4, tie_fc2: bool = True, learned_spiral: bool = False) -> ModelSpec:
    """MicroAdder's layout with free (trainable) tensors. Format (22-token prompt):
    a0..a9 0 b0..b9 0, then 11 sum digits, least significant first."""
    params = 57 + (0 if tie_fc2 else 10) + (qk_dim - 4) * 3 + (4 if learned_spiral else 0)
    c = Construction(name, vocab=[str(d) for d in range(10)], dtype="float32",
                     fmt=PromptFormat(prompt=(("a", "lsb"), 0, ("b", "lsb"), 0), out_order="lsb"),
                     slots=[("tok", 2), ("pos", 3)], layers=1, heads=1,
                     positions=("learned spiral" if learned_spiral else "frozen spiral") + " + 6 learned",
                     author="evindor (layout; trained here by adder.train)", source=SOURCE,
                     claimed_params=params,
                     description=f"{name}: MicroAdder-style learned {params}p (tied Q/K+phase, "
                                 + ("triple-duty head)" if tie_fc2 else "V/O-tied head, own fc2)"))
    # token embedding: 3 parameters
    A = c.param("tok.A", 2.5)
    start = c.param("tok.start", -1.2)
    stride = c.param("tok.stride", 0.29)
    ang = start + const(list(range(10))) * stride
    tok = stack([A * cos(ang), A * sin(ang)], axis=1)  # [10, 2]
    # positions: a spiral for digit i (shared by a_i, b_i, s_i) + '=' and the top digit
    if learned_spiral:
        amp = c.param("pos.spiral_amp", LEARNED_SPIRAL_AMP)
        phase0 = c.param("pos.spiral_phase", 0)
        slope = c.param("pos.spiral_slope", LEARNED_SPIRAL_SLOPE)
        offset = c.param("pos.spiral_offset", 0)
        idx = const(list(range(10)))
        turn = idx * (2 * sympy.pi / 10) + phase0
        spiral = stack([amp * cos(turn), amp * sin(turn), idx * slope + offset], axis=1)
    else:
        spiral = const([[SPIRAL_AMP * sympy.cos(2 * sympy.pi * i / 10), SPIRAL_AMP * sympy.sin(2 * sympy.pi * i / 10),
                         SPIRAL_SLOPE * i] for i in range(10)])
    eq = c.free("pos.equals", (1, 3), init="normal")
    top = c.free("pos.top_digit", (1, 3), init="normal")
    pos3 = cat([spiral, zeros(1, 3), spiral, eq, spiral, top, zeros(1, 3)], axis=0)  # [34, 3]
    c.embed(cat([tok, zeros(10, 3)], axis=1), pos=cat([zeros(34, 2), pos3], axis=1))

    norm_w = c.free("norm.weight", (5,), init="ones", note="one RMSNorm weight shared by all three norms")
    norm = rms(1e-5, weight=norm_w)
    qk = c.free("attn.qk", (qk_dim, 3), init="xavier", note="shared by Q and K; reads `pos`")
    phase = c.free("attn.q_phase", (), init="zeros")
    head = c.free("head", (2, 5), init="xavier", note="triple duty: V (transposed), MLP fc2, output head" if tie_fc2
                  else "double duty: V (transposed), output head")
    out_a = c.free("attn.out_a", (5, 1), init="linear")
    out_b = c.free("attn.out_b", (1, 5), init="zeros")
    fc1 = c.free("mlp.fc1", (2, 5), init="xavier")
    fc2 = head.T if tie_fc2 else c.free("mlp.fc2", (5, 2), init="xavier")

    W_qk = cat([zeros(qk_dim, 2), qk], axis=1)  # [qk_dim, 5]
    R = rotation(phase)
    Rq = block_diag(*[R] * (qk_dim // 2), *([eye(1)] if qk_dim % 2 else []))  # odd last dim unturned
    c.attention(norm=norm, head_dim=qk_dim, v_head_dim=5, divisor=sympy.sqrt(qk_dim),
                q=[W_qk, Rq], k=W_qk, v=cat([head.T, zeros(5, 3)], axis=1), o=[out_a.T, out_b.T])
    c.mlp(norm=norm, up=fc1, down=fc2, act="gelu")
    c.unembed([head, tok], final_norm=norm)  # logits = head(norm(h)) . tok_table
    return c.build()


@recipe("micro57", params=57, hyper=Hyper(),
        summary="MicroAdder 57p: d=5 (2 token + 3 position), circular token arc, tied Q/K + phase, "
                "triple-duty head (V, fc2, output), rank-1 out_proj, one shared RMSNorm",
        notes="After evindor/MicroAdder (seed 777 reached 100% there). Written from its description.")
def micro57() -> ModelSpec:
    return micro_adder("micro57")


@recipe("micro67", params=67, hyper=Hyper(),
        summary="MicroAdder 67p: micro57 with its own MLP fc2 (V/O-tied head no longer triple duty)",
        notes="MicroAdder's default 67p layout and recipe.")
def micro67() -> ModelSpec:
    return micro_adder("micro67", tie_fc2=False)


@recipe("micro74", params=74,
        hyper=Hyper(steps=120_000, carry_fade=(10_000, 80_000), wd_drops=MICRO_WD_DROPS),
        summary="MicroAdder 74p: own fc2, 5-dim Q/K, learned spiral; 120K steps, carry-mix fade 10K-80K, "
                "adaptive weight decay",
        notes="MicroAdder reports 3/3 seeds grokking at 74p with this recipe.")
def micro74() -> ModelSpec:
    return micro_adder("micro74", qk_dim=5, tie_fc2=False, learned_spiral=True)
