"""zcbtrak6 — zcbtrak's 6-parameter member of the RoPE-period-19, d_model 2 family.

The idea is param40's (see param40.py): operands least-significant digit first, nine zeros
apart, so a_i and b_i share a rotary phase with period 19 and one head aimed ~10.3
positions back reads their pair sum plus a tenth of the previous pair. This member is the
Qwen-style branch of the family (Lokimorty's 10p, from which it descends): unit RMSNorm on
Q and K (QK-norm) with the score scale carrying the attention amplitude, a SwiGLU whose two
gates are one tied pair of weights a hinge apart (SiLU as a soft step on "previous pair sum
>= 10"), and one shared scalar for the carry's up and down projections. It goes from 10 to 6
learned values by hard-coding what the family fixes anyway: the query direction
[cos PHI, -sin PHI] (a routing angle, like a RoPE base) and the final RMSNorm weights
[50 sqrt 2, -10 sqrt 2], folded into the tied output table. `adder info zcbtrak6` counts
those as hard-coded values in the strict count — exactly the grey zone the board argues
about.

Correct in float64 (the original is pure numpy, float64). Source:
Kiguli/AdderBoard submissions/hand_coded/zcbtrak_6p.py.
"""

import sympy
from sympy import Rational, cos, log, pi, sin, sqrt

from ..compiler.dsl import Construction, rms, rope
from ..compiler.expr import const, place, stack
from ..compiler.formats import PromptFormat
from .param40 import ALPHA, AMPLITUDE, C, DIGIT_SCALE, NORM, OMEGA, PERIOD, PHI
from .registry import register

ATTN_SCALE = AMPLITUDE / 2     # 1/sqrt(head_dim) * QK_NORM_SCALE^2, with QK_NORM_SCALE^2 = AMPLITUDE/sqrt(2)
NORM_W = (50 * sqrt(2), -10 * sqrt(2))   # final RMSNorm weights, folded into the output table


@register("zcbtrak6", claimed_params=6, author="zcbtrak",
          source="https://github.com/Kiguli/AdderBoard/blob/main/submissions/hand_coded/zcbtrak_6p.py",
          summary="RoPE-19 d=2 family, Qwen branch: fixed Q angle, QK-norm, tied SwiGLU carry gate, folded norm")
def build():
    c = Construction(
        "zcbtrak6", vocab=[str(d) for d in range(10)], dtype="float64",
        fmt=PromptFormat(prompt=(0, ("a", "lsb"), *[0] * 9, ("b", "lsb"), 0), out_order="lsb"),
        slots=[("const", 1), ("digit", 1)], layers=1, heads=1, positions="RoPE period 19",
        description="zcbtrak 6p: RoPE-19 d=2 Qwen branch with a hard-coded query angle and folded final norm.",
    )
    w0 = c.param("embed.w0", C, note="parabola vertex")
    w1 = c.param("embed.w1", Rational(1, 1000), note="parabola curvature")
    v = c.param("attn.v", -22 * DIGIT_SCALE)
    gate_a = c.param("mlp.gate_a", ALPHA * -94 / NORM, note="hinge position")
    gate_c = c.param("mlp.gate_c", ALPHA * DIGIT_SCALE, note="slope; the second hinge sits gate_c/C lower")
    carry = c.param("mlp.carry", (100 / ALPHA) / NORM, note="shared up/down carry scalar")

    d = list(range(10))
    E = stack([w0 - w1 * const([x * x for x in d]), const([-x for x in d])], axis=1)  # [10, 2]
    c.embed(E)
    c.attention(norm=rms(1e-6), head_dim=2, rope=rope(period=PERIOD), scale=ATTN_SCALE,
                q=const([[cos(PHI), 0], [-sin(PHI), 0]]),  # fixed routing angle: Q = x0 [cos, -sin]
                k=const([[1, 0], [0, 0]]), q_norm=rms(1e-6), k_norm=rms(1e-6),
                v=place((2, 2), {(0, 1): v}), o=const([[0, 0], [1, 0]]))
    gate = stack([stack([gate_a, gate_c]), stack([gate_a - gate_c / C, gate_c])])
    c.mlp(norm=rms(1e-6), act="silu", gate=gate, up=const([[1, 0], [1, 0]]),
          down=place((2, 2), {(1, 0): -carry, (1, 1): carry}))
    c.unembed(E * const(list(NORM_W)), final_norm=rms(1e-6))  # logits = unit_norm(h) @ (w * E)^T
    return c.build()
