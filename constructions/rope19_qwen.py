"""The Qwen branch of the RoPE-period-19, d_model 2 family: zcbtrak 6p, kswain98 2p, Lokimorty 10p/12p.

The idea is param40's (see param40.py): operands least-significant digit first, nine zeros
apart, so a_i and b_i share a rotary phase with period 19 and one head aimed ~10.3
positions back reads their pair sum plus a tenth of the previous pair. This branch is
Qwen-shaped: one parameterless RMSNorm shared by both sublayers, unit RMSNorm on Q and K
(QK-norm) with the score scale carrying the attention amplitude, K = [x0, 0], V = [v x1, 0],
O writes the head's first coordinate onto `digit`, and a SwiGLU whose two gates sit a hinge
apart (SiLU as a soft step on "previous pair sum >= 10"), read by an up projection of the
constant coordinate and differenced by the down projection.

One builder, `member`, writes the circuit; the members differ only in what is learned,
what is tied and what is hard-coded:

* `lokimorty12` (float32, MLX): learns the query direction (2), the embedding's vertex and
  curvature (2), V (1), both gate offsets and their shared slope (3), the up and down
  scalars (2) and the final RMSNorm weights (2) — 12.
* `lokimorty10` (float32, MLX): ties the second gate offset to the first one hinge lower
  (a - slope / C) and merges up and down into one carry scalar — 10.
* `zcbtrak6` (float64, numpy): lokimorty10 with the query direction [cos PHI, -sin PHI]
  hard-coded (a routing angle, like a RoPE base) and the final norm weights [50 sqrt 2,
  -10 sqrt 2] folded into the tied output table — 6. `adder info` counts those in the
  strict total: exactly the grey zone the board argues about.
* `kswain98_2p` (float32, PyTorch): everything hangs off two scalars, the embedding scale
  c (vertex c, curvature 1/c, V = -22 c / sqrt 2, gate slope 128 c, final norm
  [0.1 c / sqrt 2, -c / (50 sqrt 2)]) and the carry gate offset g; the query angle and the
  carry gain 100/256 are hard-coded. The board lists this entry as "kswain98 8p", but the
  file it links (submission_2p.py) is this 2-parameter model, so that is what is
  registered, under its real count.

Sources: Kiguli/AdderBoard submissions/hand_coded/ Lokimorty_12p.py, Lokimorty_10p.py,
zcbtrak_6p.py and kswain98_8p.py (= github.com/kswain98/AdderBoard submission_2p.py).
Written here from their mathematics; each member's outputs were compared with its original.
"""

from sympy import Rational, cos, sin, sqrt

from ..compiler.dsl import Construction, rms, rope
from ..compiler.expr import const, place, stack
from ..compiler.formats import PromptFormat
from .param40 import ALPHA, AMPLITUDE, C, DIGIT_SCALE, NORM, PERIOD, PHI
from .registry import register

ATTN_SCALE = AMPLITUDE / 2     # 1/sqrt(head_dim) * QK_NORM_SCALE^2, with QK_NORM_SCALE^2 = AMPLITUDE/sqrt(2)
NORM_W = (50 * sqrt(2), -10 * sqrt(2))   # final RMSNorm weights (0.1/Q)/sqrt 2 and -DIGIT_SCALE/50
V_GAIN = -22 * DIGIT_SCALE     # value weight: -22 C / sqrt 2
GATE_A = ALPHA * -94 / NORM    # first hinge offset (on the normalised constant coordinate)
GATE_SLOPE = ALPHA * DIGIT_SCALE   # = 128 C: hinge slope on the digit coordinate
CARRY = (100 / ALPHA) / NORM   # = 100/256: carry gain (up x down)
DIGITS = list(range(10))


def member(name: str, *, learn_q: bool = True, embed: str = "vertex", gate: str = "tied",
           carry: str = "shared", norm: str = "learned", dtype: str = "float32", description: str = ""):
    """One member of the Qwen branch.

    embed: "vertex" learns (w0, w1) of [w0 - w1 d^2, -d]; "scale" learns one c with
        [c - d^2 / c, -d] and derives V, the gate slope and the final norm from c.
    gate: "tied" learns (a, slope), second offset a - slope / C; "free" learns both offsets.
    carry: "shared" one scalar as the down gain (up = 1); "split" up and down scalars;
        "fixed" the hard-coded gain 100/256.
    norm: "learned" final RMSNorm weights; "folded" into the output table; "derived" from c.
    """
    c = Construction(
        name, vocab=[str(d) for d in DIGITS], dtype=dtype,
        fmt=PromptFormat(prompt=(0, ("a", "lsb"), *[0] * 9, ("b", "lsb"), 0), out_order="lsb"),
        slots=[("const", 1), ("digit", 1)], layers=1, heads=1, positions="RoPE period 19", description=description,
    )
    sq = const([x * x for x in DIGITS])
    if embed == "scale":
        s = c.param("embed.c", C, note="embedding scale: vertex c, curvature 1/c")
        E = stack([s - sq / s, const([-x for x in DIGITS])], axis=1)           # [10, 2]
        v = const(V_GAIN / C) * s                                             # -22 c / sqrt 2
        slope = const(GATE_SLOPE / C) * s                                     # 128 c
        vertex = s
    else:
        w0 = c.param("embed.w0", C, note="parabola vertex")
        w1 = c.param("embed.w1", Rational(1, 1000), note="parabola curvature")
        E = stack([w0 - w1 * sq, const([-x for x in DIGITS])], axis=1)       # [10, 2]
        v = c.param("attn.v", V_GAIN)
        slope = None
        vertex = const(C)
    if learn_q:
        q = c.param("attn.q", [cos(PHI), -sin(PHI)], note="query direction (routing angle)")
        W_q = place((2, 2), {(0, 0): q[0], (1, 0): q[1]})
    else:
        W_q = const([[cos(PHI), 0], [-sin(PHI), 0]])  # hard-coded routing angle
    if embed == "scale":
        gate_a = c.param("mlp.gate_a", GATE_A, note="carry gate offset g")
    else:
        gate_a = c.param("mlp.gate_a", GATE_A, note="hinge position")
    if gate == "free":
        gate_b = c.param("mlp.gate_b", GATE_A - GATE_SLOPE / C, note="second hinge, one unit lower")
        slope = c.param("mlp.gate_c", GATE_SLOPE, note="hinge slope on `digit`")
    else:
        if slope is None:
            slope = c.param("mlp.gate_c", GATE_SLOPE, note="slope; the second hinge sits gate_c/C lower")
        gate_b = gate_a - slope / vertex
    if carry == "split":
        up = c.param("mlp.up", 1 / NORM, note="up gain on the constant coordinate")
        down = c.param("mlp.down", 100 / ALPHA, note="carry down gain")
        W_up = place((2, 2), {(0, 0): up, (1, 0): up})
    else:
        down = c.param("mlp.carry", CARRY, note="shared up/down carry scalar") if carry == "shared" else const(CARRY)
        W_up = const([[1, 0], [1, 0]])

    c.embed(E)
    c.attention(norm=rms(1e-6), head_dim=2, rope=rope(period=PERIOD), scale=ATTN_SCALE,
                q=W_q, k=const([[1, 0], [0, 0]]), q_norm=rms(1e-6), k_norm=rms(1e-6),
                v=place((2, 2), {(0, 1): v}), o=const([[0, 0], [1, 0]]))
    W_gate = stack([stack([gate_a, slope]), stack([gate_b, slope])])
    c.mlp(norm=rms(1e-6), act="silu", gate=W_gate, up=W_up, down=place((2, 2), {(1, 0): -down, (1, 1): down}))
    if norm == "folded":
        c.unembed(E * const(list(NORM_W)), final_norm=rms(1e-6))  # logits = unit_norm(h) @ (w * E)^T
    elif norm == "derived":
        nw = stack([const(Rational(1, 10)) * vertex / const(NORM), vertex / const(-50 * NORM)])
        c.unembed(E, final_norm=rms(1e-6, weight=nw))
    else:
        c.unembed(E, final_norm=rms(1e-6, weight=c.param("final_norm.weight", list(NORM_W))))
    return c.build()


@register("lokimorty12", claimed_params=12, author="Lokimorty",
          source="https://gist.github.com/Lokimorty/cf27201cf6326b04c7328b6abe62248e",
          summary="RoPE-19 d=2 Qwen branch: learned Q angle, QK-norm, free SwiGLU gate pair, split up/down, learned final norm")
def lokimorty12():
    return member("lokimorty12", gate="free", carry="split",
                  description="Lokimorty 12p: RoPE-19 d=2, Qwen-shaped, parametric embedding, structured SwiGLU carry.")


@register("lokimorty10", claimed_params=10, author="Lokimorty",
          source="https://github.com/Kiguli/AdderBoard/blob/main/submissions/hand_coded/Lokimorty_10p.py",
          summary="RoPE-19 d=2 Qwen branch: learned Q angle, QK-norm, tied SwiGLU carry gate, learned final norm")
def lokimorty10():
    return member("lokimorty10", description="Lokimorty 10p: RoPE-19 d=2, Qwen-shaped, tied gate, shared carry scalar.")


@register("zcbtrak6", claimed_params=6, author="zcbtrak",
          source="https://github.com/Kiguli/AdderBoard/blob/main/submissions/hand_coded/zcbtrak_6p.py",
          summary="RoPE-19 d=2 Qwen branch: fixed Q angle, QK-norm, tied SwiGLU carry gate, folded norm")
def zcbtrak6():
    return member("zcbtrak6", learn_q=False, norm="folded", dtype="float64",
                  description="zcbtrak 6p: lokimorty10 with a hard-coded query angle and the final norm folded in.")


@register("kswain98_2p", claimed_params=2, author="kswain98",
          source="https://github.com/kswain98/AdderBoard/blob/main/submission_2p.py",
          summary="RoPE-19 d=2 Qwen branch with everything derived from an embedding scale c and a gate offset g "
                  "(board entry '8p' links this 2p file)")
def kswain98_2p():
    return member("kswain98_2p", learn_q=False, embed="scale", carry="fixed", norm="derived",
                  description="kswain98 2p: the Qwen-branch circuit with every weight derived from c and g.")
