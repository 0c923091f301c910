"""The Qwen branch of the RoPE-period-19, d_model 2 family: Lokimorty's 10p and zcbtrak's 6p.

The idea is param40's (see param40.py): operands least-significant digit first, nine zeros
apart, so a_i and b_i share a rotary phase with period 19 and one head aimed ~10.3
positions back reads their pair sum plus a tenth of the previous pair. This branch is
Qwen-shaped: one parameterless RMSNorm shared by both sublayers, unit RMSNorm on Q and K
(QK-norm) with the score scale carrying the attention amplitude, K = [x0, 0], V = [v x1, 0],
O writes the head's first coordinate onto `digit`, and a SwiGLU whose two gates are one tied
pair of weights a hinge apart (SiLU as a soft step on "previous pair sum >= 10") with one
shared scalar for the carry's up and down projections.

The members differ only in what is learned and what is hard-coded:

* `lokimorty10` (float32, MLX original): learns the query direction (2), the embedding's
  vertex and curvature (2), V (1), the tied gate (2), the carry scalar (1) and the final
  RMSNorm weights (2) — 10.
* `zcbtrak6` (float64, numpy original): hard-codes the query direction [cos PHI, -sin PHI]
  (a routing angle, like a RoPE base) and folds the final norm weights [50 sqrt 2,
  -10 sqrt 2] into the tied output table — 6. `adder info` counts those in the strict total:
  exactly the grey zone the board argues about.

Sources: Kiguli/AdderBoard submissions/hand_coded/Lokimorty_10p.py and zcbtrak_6p.py.
"""

from sympy import Rational, cos, sin, sqrt

from ..compiler.dsl import Construction, rms, rope
from ..compiler.expr import const, place, stack
from ..compiler.formats import PromptFormat
from .param40 import ALPHA, AMPLITUDE, C, DIGIT_SCALE, NORM, PERIOD, PHI
from .registry import register

ATTN_SCALE = AMPLITUDE / 2     # 1/sqrt(head_dim) * QK_NORM_SCALE^2, with QK_NORM_SCALE^2 = AMPLITUDE/sqrt(2)
NORM_W = (50 * sqrt(2), -10 * sqrt(2))   # final RMSNorm weights, folded into the output table


def member(name: str, *, learn_q: bool, fold_norm: bool, dtype: str, description: str):
    c = Construction(
        name, vocab=[str(d) for d in range(10)], dtype=dtype,
        fmt=PromptFormat(prompt=(0, ("a", "lsb"), *[0] * 9, ("b", "lsb"), 0), out_order="lsb"),
        slots=[("const", 1), ("digit", 1)], layers=1, heads=1, positions="RoPE period 19", description=description,
    )
    w0 = c.param("embed.w0", C, note="parabola vertex")
    w1 = c.param("embed.w1", Rational(1, 1000), note="parabola curvature")
    if learn_q:
        q = c.param("attn.q", [cos(PHI), -sin(PHI)], note="query direction (routing angle)")
        W_q = place((2, 2), {(0, 0): q[0], (1, 0): q[1]})
    else:
        W_q = const([[cos(PHI), 0], [-sin(PHI), 0]])  # hard-coded routing angle
    v = c.param("attn.v", -22 * DIGIT_SCALE)
    gate_a = c.param("mlp.gate_a", ALPHA * -94 / NORM, note="hinge position")
    gate_c = c.param("mlp.gate_c", ALPHA * DIGIT_SCALE, note="slope; the second hinge sits gate_c/C lower")
    carry = c.param("mlp.carry", (100 / ALPHA) / NORM, note="shared up/down carry scalar")

    d = list(range(10))
    E = stack([w0 - w1 * const([x * x for x in d]), const([-x for x in d])], axis=1)  # [10, 2]
    c.embed(E)
    c.attention(norm=rms(1e-6), head_dim=2, rope=rope(period=PERIOD), scale=ATTN_SCALE,
                q=W_q, k=const([[1, 0], [0, 0]]), q_norm=rms(1e-6), k_norm=rms(1e-6),
                v=place((2, 2), {(0, 1): v}), o=const([[0, 0], [1, 0]]))
    gate = stack([stack([gate_a, gate_c]), stack([gate_a - gate_c / C, gate_c])])
    c.mlp(norm=rms(1e-6), act="silu", gate=gate, up=const([[1, 0], [1, 0]]),
          down=place((2, 2), {(1, 0): -carry, (1, 1): carry}))
    if fold_norm:
        c.unembed(E * const(list(NORM_W)), final_norm=rms(1e-6))  # logits = unit_norm(h) @ (w * E)^T
    else:
        c.unembed(E, final_norm=rms(1e-6, weight=c.param("final_norm.weight", list(NORM_W))))
    return c.build()


@register("lokimorty10", claimed_params=10, author="Lokimorty",
          source="https://github.com/Kiguli/AdderBoard/blob/main/submissions/hand_coded/Lokimorty_10p.py",
          summary="RoPE-19 d=2 Qwen branch: learned Q angle, QK-norm, tied SwiGLU carry gate, learned final norm")
def lokimorty10():
    return member("lokimorty10", learn_q=True, fold_norm=False, dtype="float32",
                  description="Lokimorty 10p: RoPE-19 d=2, Qwen-shaped, tied gate, shared carry scalar.")


@register("zcbtrak6", claimed_params=6, author="zcbtrak",
          source="https://github.com/Kiguli/AdderBoard/blob/main/submissions/hand_coded/zcbtrak_6p.py",
          summary="RoPE-19 d=2 Qwen branch: fixed Q angle, QK-norm, tied SwiGLU carry gate, folded norm")
def zcbtrak6():
    return member("zcbtrak6", learn_q=False, fold_norm=True, dtype="float64",
                  description="zcbtrak 6p: lokimorty10 with a hard-coded query angle and the final norm folded in.")
