"""The Qwen branch of the RoPE-period-19, d_model 2 family: zcbtrak 6p, kswain98 8p/4p/2p, Lokimorty 10p/12p,
Kiguli's 7p (ReLU carry) and jnros's 1p.

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
* `kswain98_8p` (float32, PyTorch): lokimorty10 with the query direction learned as one
  angle phi (Q reads [cos phi, -sin phi]) and the embedding as one scale c, [c - d^2 / c, -d];
  V, the tied gate (a, slope; second offset a - slope / 1000, the 1000 hard-coded), the
  carry scalar and the final norm (2) stay learned — 8.
* `kswain98_4p` (float32, PyTorch): learns c, V, the gate offset g and the carry gain;
  the gate slope 128 c, the second offset g - 128 c / c and the final norm
  [0.1 c / sqrt 2, -c / (50 sqrt 2)] are derived from c, the query angle hard-coded — 4.
* `kswain98_2p` (float32, PyTorch): kswain98_4p with V = -22 c / sqrt 2 derived from c too
  and the carry gain 100/256 hard-coded: two scalars, c and g.
  The board's "kswain98 8p" entry links Kiguli/AdderBoard's kswain98_8p.py, which is this
  2-parameter file (submission_2p.py); the 8-parameter model the entry describes is
  submission_8p.py, registered above as kswain98_8p.
* `jnros1` (float32, PyTorch; AdderBoard issue #71): kswain98_2p with the gate offset tied to
  the embedding scale too, g = -12.032 c (= GATE_A at c = 1000): one scalar, c.
* `kiguli7` (float32, PyTorch; AdderBoard issue #85): the circuit with ReLU in place of SiLU,
  so the two gates are a two-hinge step (relu(g0) - relu(g1) is exactly 0 below the first
  hinge and exactly the slope gap above the second) instead of a soft one. It learns the
  embedding's vertex C and curvature eps ([C - eps d^2, -d]), the query angle phi, V, the
  gate offset and slope (second offset a - slope / C, with the learned C) and the carry
  gain; the final norm [0.1 C / sqrt 2, -C / (50 sqrt 2)] is derived from C — 7.

The kswain98 8p/4p files write the MLP out entry by entry, so those two members keep that
order (`order="elementwise"`) and their logits are bit-identical to the originals';
kswain98_2p predates the option and keeps one matmul per projection (identical outputs,
logits within ~3e-7 of the largest).

Sources: Kiguli/AdderBoard submissions/hand_coded/ Lokimorty_12p.py, Lokimorty_10p.py,
zcbtrak_6p.py and kswain98_8p.py (= github.com/kswain98/AdderBoard submission_2p.py),
github.com/kswain98/AdderBoard submission_8p.py and submission_4p.py, Kiguli/AdderBoard
submission_7p_relu.py and jnros/AdderBoard submissions/submission_1p.py.
Written here from their mathematics; each member's outputs were compared with its original.
"""

from sympy import Rational, sqrt

from ..compiler.builder import Construction, linear, rms, rope
from ..compiler.expr import const, place, stack
from ..compiler.formats import PromptFormat
from .param40 import ALPHA, AMPLITUDE, C, DIGIT_SCALE, NORM, PERIOD, PHI
from .parts import reading_query
from .registry import register

ATTN_SCALE = AMPLITUDE / 2     # 1/sqrt(head_dim) * QK_NORM_SCALE^2, with QK_NORM_SCALE^2 = AMPLITUDE/sqrt(2)
NORM_W = (50 * sqrt(2), -10 * sqrt(2))   # final RMSNorm weights (0.1/Q)/sqrt 2 and -DIGIT_SCALE/50
V_GAIN = -22 * DIGIT_SCALE     # value weight: -22 C / sqrt 2
GATE_A = ALPHA * -94 / NORM    # first hinge offset (on the normalised constant coordinate)
GATE_SLOPE = ALPHA * DIGIT_SCALE   # = 128 C: hinge slope on the digit coordinate
CARRY = (100 / ALPHA) / NORM   # = 100/256: carry gain (up x down)
GATE_A_PER_C = GATE_A / C      # = -12.032: the gate offset as a multiple of the embedding scale
DIGITS = list(range(10))


def member(name: str, *, q: str = "vector", embed: str = "vertex", v: str = "learned", slope: str = "learned",
           hinge: str = "const", gate: str = "tied", carry: str = "shared", norm: str = "learned",
           act: str = "silu", order: str = "matrix", dtype: str = "float32", description: str = ""):
    """One member of the Qwen branch.

    q: "vector" learns the query direction [cos PHI, -sin PHI] as two entries; "angle" learns
        the angle PHI alone (Q = [cos, -sin] of it); "fixed" hard-codes it.
    embed: "vertex" learns (w0, w1) of [w0 - w1 d^2, -d]; "scale" learns one c with
        [c - d^2 / c, -d]. Either way the learned vertex (w0 or c) may stand in for C below.
    v, slope: "learned" scalars, or "derived" from the embedding scale c (needs embed="scale"):
        V = -22 c / sqrt 2, gate slope 128 c.
    hinge: the tied second gate offset sits slope / C lower, with C = 1000 hard-coded ("const")
        or the learned embedding vertex in its place ("vertex").
    gate: "tied" learns (a, slope), second offset a - slope / C; "free" learns both offsets;
        "derived" ties a to the embedding scale as well, a = -12.032 c (needs embed="scale").
    carry: "shared" one scalar as the down gain (up = 1); "split" up and down scalars;
        "fixed" the hard-coded gain 100/256.
    norm: "learned" final RMSNorm weights; "folded" into the output table; "derived" from the
        learned embedding vertex, [0.1 C / sqrt 2, -C / (50 sqrt 2)].
    act: "silu" (SwiGLU: the gates are soft steps) or "relu" (a two-hinge exact step).
    order: the MLP's order of operations. "matrix": gate and down are one matmul each;
        "elementwise": each gate row as x0 a + x1 slope and the carry as gain * (m1 - m0), as
        code that writes them out entry by entry rounds them (same function, other ULPs).
    """
    c = Construction(
        name, vocab=[str(d) for d in DIGITS], dtype=dtype,
        fmt=PromptFormat(prompt=(0, ("a", "lsb"), *[0] * 9, ("b", "lsb"), 0), out_order="lsb"),
        slots=[("const", 1), ("digit", 1)], layers=1, heads=1, positions="RoPE period 19", description=description,
    )
    if embed != "scale" and "derived" in (v, slope, gate):
        raise ValueError("V, gate slope and gate offset can be derived only from embed='scale'")
    sq = const([x * x for x in DIGITS])
    if embed == "scale":
        s = c.param("embed.c", C, note="embedding scale: vertex c, curvature 1/c")
        E = stack([s - sq / s, const([-x for x in DIGITS])], axis=1)           # [10, 2]
        vertex = s
    else:
        w0 = c.param("embed.w0", C, note="parabola vertex")
        w1 = c.param("embed.w1", Rational(1, 1000), note="parabola curvature")
        E = stack([w0 - w1 * sq, const([-x for x in DIGITS])], axis=1)       # [10, 2]
        vertex = w0
    v_gain = const(V_GAIN / C) * s if v == "derived" else c.param("attn.v", V_GAIN)   # -22 c / sqrt 2
    if q == "vector":
        qv = c.param("attn.q", list(reading_query(PHI)), note="query direction (routing angle)")
        W_q = place((2, 2), {(0, 0): qv[0], (1, 0): qv[1]})
    elif q == "angle":
        phi = c.param("attn.q_angle", PHI, note="routing angle phi: Q reads (cos phi, -sin phi)")
        qx, qy = reading_query(phi)
        W_q = place((2, 2), {(0, 0): qx, (1, 0): qy})
    else:
        W_q = const([[v, 0] for v in reading_query(PHI)])  # hard-coded routing angle
    if gate == "derived":
        gate_a = const(GATE_A_PER_C) * s                                     # g = -12.032 c
    elif embed == "scale":
        gate_a = c.param("mlp.gate_a", GATE_A, note="carry gate offset g")
    else:
        gate_a = c.param("mlp.gate_a", GATE_A, note="hinge position")
    if gate == "free":
        gate_b = c.param("mlp.gate_b", GATE_A - GATE_SLOPE / C, note="second hinge, one unit lower")
        gate_c = c.param("mlp.gate_c", GATE_SLOPE, note="hinge slope on `digit`")
    else:
        if slope == "derived":
            gate_c = const(GATE_SLOPE / C) * s                                # 128 c
        else:
            gate_c = c.param("mlp.gate_c", GATE_SLOPE, note="slope; the second hinge sits gate_c/C lower")
        gate_b = gate_a - gate_c / (vertex if hinge == "vertex" else const(C))
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
                v=place((2, 2), {(0, 1): v_gain}), o=const([[0, 0], [1, 0]]))
    W_gate = stack([stack([gate_a, gate_c]), stack([gate_b, gate_c])])
    if order == "elementwise":  # gate rows as sums of products; down = gain * (m1 - m0)
        c.mlp(norm=rms(1e-6), act=act, gate=linear(W_gate, reduce="sum"), up=W_up,
              down=linear([const([[0, 0], [-1, 1]]), place((2, 2), {(1, 1): down})], reduce="sum"))
    else:
        c.mlp(norm=rms(1e-6), act=act, gate=W_gate, up=W_up, down=place((2, 2), {(1, 0): -down, (1, 1): down}))
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
    return member("zcbtrak6", q="fixed", norm="folded", dtype="float64",
                  description="zcbtrak 6p: lokimorty10 with a hard-coded query angle and the final norm folded in.")


@register("kswain98_2p", claimed_params=2, author="kswain98",
          source="https://github.com/kswain98/AdderBoard/blob/main/submission_2p.py",
          summary="RoPE-19 d=2 Qwen branch with everything derived from an embedding scale c and a gate offset g "
                  "(board entry '8p' links this 2p file)")
def kswain98_2p():
    return member("kswain98_2p", q="fixed", embed="scale", v="derived", slope="derived", hinge="vertex",
                  carry="fixed", norm="derived",
                  description="kswain98 2p: the Qwen-branch circuit with every weight derived from c and g.")


@register("kswain98_8p", claimed_params=8, author="kswain98",
          source="https://github.com/kswain98/AdderBoard/blob/main/submission_8p.py",
          summary="RoPE-19 d=2 Qwen branch: learned Q angle, one-scalar embedding c, tied SwiGLU carry gate, "
                  "shared carry scalar, learned final norm")
def kswain98_8p():
    return member("kswain98_8p", q="angle", embed="scale", order="elementwise",
                  description="kswain98 8p: lokimorty10 with the query as one angle and the embedding as one scale c.")


@register("kswain98_4p", claimed_params=4, author="kswain98",
          source="https://github.com/kswain98/AdderBoard/blob/main/submission_4p.py",
          summary="RoPE-19 d=2 Qwen branch: kswain98_2p with V and the carry gain learned again")
def kswain98_4p():
    return member("kswain98_4p", q="fixed", embed="scale", slope="derived", hinge="vertex", norm="derived",
                  order="elementwise",
                  description="kswain98 4p: c, V, gate offset g and carry gain learned; the rest derived from c.")


@register("jnros1", claimed_params=1, author="jnros (John Rose)",
          source="https://github.com/jnros/AdderBoard/blob/main/submissions/submission_1p.py",
          summary="RoPE-19 d=2 Qwen branch: kswain98_2p with the gate offset tied to the embedding scale "
                  "(g = -12.032 c): one learned scalar")
def jnros1():
    return member("jnros1", q="fixed", embed="scale", v="derived", slope="derived", hinge="vertex", gate="derived",
                  carry="fixed", norm="derived", order="elementwise",
                  description="jnros 1p: the Qwen-branch circuit with every weight derived from one scale c.")


@register("kiguli7", claimed_params=7, author="Kiguli",
          source="https://github.com/Kiguli/AdderBoard/blob/main/submission_7p_relu.py",
          summary="RoPE-19 d=2 Qwen branch with a two-hinge ReLU carry in place of SwiGLU: learned embedding "
                  "vertex and curvature, Q angle, V, tied gate, carry gain; final norm derived from C")
def kiguli7():
    return member("kiguli7", q="angle", hinge="vertex", norm="derived", act="relu", order="elementwise",
                  description="Kiguli 7p: the Qwen-branch circuit with a two-hinge ReLU carry step.")
