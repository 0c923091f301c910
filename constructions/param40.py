"""param_40 — Wonderfall's 40-parameter adder: one layer, d_model 2, RoPE of period 19.

The idea. Write the operands least-significant digit first with nine zeros between them,
`[0] a0..a9 [0]*9 b0..b9 [0]`, so that a_i and b_i sit exactly 19 positions apart. With a
rotary period of 19 they then have the *same* rotary phase, and one head whose query is
its key turned by a fixed angle PHI = omega*(10 + 0.3) looks back ~10 positions and lands
on both a_i and b_i at once: its softmax splits between the pair (and, ln 10 lower, their
neighbours a_{i-1}, b_{i-1}), so the value read is ~ -(a_i + b_i) plus a tenth of the
previous pair's sum — exactly what decides the carry. A two-hinge ReLU MLP turns "previous
pair sum >= 10" (a threshold between 9 and 10 on that tenth) into +1 on the digit
coordinate, and the tied embedding e(d) = [C - q d^2, -d] decodes by inner product: for a
residual ~ [C, -s] the logit of digit d is a downward parabola in d peaking at s mod 10,
once the final RMSNorm weights rescale the two coordinates.

Residual slots: `const` (the constant C ~ 1000 every token carries) and `digit` (-d).
Correct in float32 (the published MLX model ran in float32); 100% on the official cases.
Source: https://gist.github.com/Wonderfall/373460ba8cec6cd143c8b0e9ebcd1294 (MLX). Written
here from its constants; the parameter layout (20 embedding + 4 W_qk + 1 phase + 4 W_vo +
1 v scale + 4 + 4 MLP + 2 final norm = 40) follows the original.
"""

from sympy import Rational, cos, log, pi, sqrt

from ..compiler.builder import Construction, rms, rope, rotation
from ..compiler.expr import eye, place, stack
from ..compiler.formats import PromptFormat
from .parts import parabolic_table
from .registry import register

# --- the constants and where they come from ---
C = 1000                       # embedding constant on the `const` coordinate
Q = Rational(1, 1000)          # parabola curvature of the tied embedding: e(d) = [C - Q d^2, -d]
CURVATURE = Rational(1, 10)    # decode curvature the final norm restores: w0 = (CURVATURE / Q) / sqrt(2)
NORM = sqrt(2)                 # RMS of [C, ~0] is C / sqrt(2): parameterless RMSNorm maps C to sqrt(2)
DIGIT_SCALE = C / NORM         # the digit coordinate after the first norm is -d / DIGIT_SCALE
PERIOD = 19                    # distance between a_i and b_i in the prompt
OMEGA = 2 * pi / PERIOD        # rotary angular frequency
EPS = Rational(3, 10)          # the query aims 0.3 positions past the pair (10 + EPS back)
PHI = OMEGA * (10 + EPS)       # fixed rotation of Q relative to K
# the attention logit gap between the target pair and its neighbours is ln(10):
AMPLITUDE = log(10) / (cos(OMEGA * EPS) - cos(OMEGA * (1 - EPS)))
QK_SCALE = sqrt(AMPLITUDE / sqrt(2))   # W_qk entry; the 1/sqrt(head_dim) score scale takes the other sqrt(2)
ALPHA = 256 / NORM             # carry-hinge sharpness
V_SCALE = -22 * DIGIT_SCALE    # value gain: turns -d/DIGIT_SCALE back into ~ -22 d


@register("param40", claimed_params=40, author="Wonderfall",
          source="https://gist.github.com/Wonderfall/373460ba8cec6cd143c8b0e9ebcd1294",
          summary="1L d=2 RoPE-19, tied Q/K + phase, tied V/O, two-hinge ReLU carry, parabolic tied embedding")
def build():
    c = Construction(
        "param40", vocab=[str(d) for d in range(10)], dtype="float32",
        fmt=PromptFormat(prompt=(0, ("a", "lsb"), *[0] * 9, ("b", "lsb"), 0), out_order="lsb"),
        slots=[("const", 1), ("digit", 1)],
        layers=1, heads=1, positions="RoPE period 19",
        description="Wonderfall's param_40: tied Q/K with a phase, tied V/O, two-hinge ReLU carry MLP.",
    )
    E = c.param("embed", parabolic_table(C, Q, -1), note="parabolic tied embedding [C - Q d^2, -d]")
    w_qk = c.param("attn.w_qk", [[QK_SCALE, 0], [0, 0]], note="shared by Q and K")
    phase = c.param("attn.q_phase", -PHI, note="Q = K turned by -PHI")
    w_vo = c.param("attn.w_vo", [[0, 1], [0, 0]], note="V reads `digit`; O is its transpose")
    v_scale = c.param("attn.v_scale", V_SCALE)
    w1 = c.param("mlp.w1", [[ALPHA * -94 / NORM, ALPHA * DIGIT_SCALE],
                            [ALPHA * -95 / NORM, ALPHA * DIGIT_SCALE]], note="two hinges one unit apart")
    w2 = c.param("mlp.w2", [[0, 0], [-100 / ALPHA, 100 / ALPHA]], note="hinge difference -> +1 on `digit`")
    final_w = c.param("final_norm.weight", [(CURVATURE / Q) / NORM, -(DIGIT_SCALE / 50)])

    c.embed(E)
    c.attention(norm=rms(1e-6), head_dim=2, rope=rope(period=PERIOD),
                k=w_qk, q=[w_qk, rotation(phase)],       # q = R(phase) (W_qk x), in that order
                v=[w_vo, v_scale * eye(2)], o=w_vo.T)    # v = v_scale * (W_vo x); o = W_vo^T
    c.mlp(norm=rms(1e-6), up=w1, down=w2, act="relu")
    c.unembed(E, final_norm=rms(1e-6, weight=final_w))   # tied: logits = norm(h) @ E^T
    return c.build()


# --- the tied descendants: Wonderfall's 27p ("param_26") and yieldthought's 20p ("Spirit-20") ------
VO = 100 / ALPHA  # |w_vo| entry: W_vo now also serves as the MLP's second layer


def tied_member(name: str, *, sparse: bool, description: str):
    """param40's circuit with three more ties, shared by wonderfall27 and yieldthought20.

    The embedding is factorised as [c0 + q0 t^2, k t] over ten learned token values t; the
    MLP's second layer *is* O = W_vo^T, so W_vo = [[0, -c], [0, c]] with c = 100/alpha and the
    value gain rescaled by 1/(2c^2) to keep V unchanged; the first layer keeps only the hinge
    offset a and slope s, [[a, s c0], [a - s, s c0]], reading the embedding constant c0 itself.

    sparse=False (wonderfall27): t = -d, k = 1, W_qk and W_vo stored as full 2x2 matrices.
    sparse=True (yieldthought20): t = +d, k = c0 q0 (= -1, a product of two learned values),
    and only the non-zero entries are stored: W_qk = [[q_scale, 0], [0, 0]], W_vo by c alone.
    """
    c = Construction(
        name, vocab=[str(d) for d in range(10)], dtype="float32",
        fmt=PromptFormat(prompt=(0, ("a", "lsb"), *[0] * 9, ("b", "lsb"), 0), out_order="lsb"),
        slots=[("const", 1), ("digit", 1)], layers=1, heads=1, positions="RoPE period 19", description=description,
    )
    t = c.param("embed.token_values", [d if sparse else -d for d in range(10)])
    c0 = c.param("embed.const0", C)
    q0 = c.param("embed.quad0", -Q)
    E = stack([c0 + q0 * (t * t), (c0 * q0) * t] if sparse else [c0 + q0 * t * t, t], axis=1)
    if sparse:
        qs = c.param("attn.q_scale", QK_SCALE, note="the one non-zero entry of W_qk")
        w_qk = place((2, 2), {(0, 0): qs})
    else:
        w_qk = c.param("attn.w_qk", [[QK_SCALE, 0], [0, 0]])
    phase = c.param("attn.q_phase", -PHI)
    if sparse:
        vo = c.param("attn.vo_scale", VO, note="W_vo = [[0, -vo], [0, vo]], also the MLP's second layer")
        w_vo = place((2, 2), {(0, 1): -vo, (1, 1): vo})
    else:
        w_vo = c.param("attn.w_vo", [[0, -VO], [0, VO]], note="also the MLP's second layer")
    v_scale = c.param("attn.v_scale", V_SCALE / (2 * VO * VO))
    a = c.param("mlp.w1_a", ALPHA * -94 / NORM, note="hinge offset")
    s = c.param("mlp.w1_s", ALPHA / NORM, note="hinge slope; the second hinge sits s lower")
    final_w = c.param("final_norm.weight", [(CURVATURE / Q) / NORM, -(DIGIT_SCALE / 50)])

    c.embed(E)
    c.attention(norm=rms(1e-6), head_dim=2, rope=rope(period=PERIOD), k=w_qk, q=[w_qk, rotation(phase)],
                v=[w_vo, v_scale * eye(2)], o=w_vo.T)
    w1 = stack([stack([a, s * c0]), stack([a - s, s * c0])])
    c.mlp(norm=rms(1e-6), up=w1, down=w_vo.T, act="relu")
    c.unembed(E, final_norm=rms(1e-6, weight=final_w))
    return c.build()


@register("wonderfall27", claimed_params=27, author="Wonderfall",
          source="https://gist.github.com/Wonderfall/bd1a2396eb9f846637f469d90823b48d",
          summary="param40 with a factorised embedding, W_vo reused as the MLP's w2, compressed w1 tied to the embedding constant")
def build_wonderfall27():
    """Wonderfall's param_26 (board entry 27p): `tied_member` with dense W_qk and W_vo.

    Count: the published board entry says 27, the file stores 26 learned values
    (10 token values + 2 embedding scalars + 4 W_qk + 1 phase + 4 W_vo + 1 v scale + 2 MLP
    + 2 final norm); 26 is what the module counts. Correct in float32 (MLX original).
    """
    return tied_member("wonderfall27", sparse=False,
                       description="Wonderfall param_26: param40 with factorised embedding and W_vo cross-tied as MLP w2.")


@register("yieldthought20", claimed_params=20, author="yieldthought",
          source="https://gist.github.com/yieldthought/a48b8d690d31039fadddd2bf297cae99",
          summary="wonderfall27 storing only the non-zero scalars: sparse Q/K and V/O, (c0 q0) t digit column")
def build_yieldthought20():
    """yieldthought's Spirit-20: `tied_member` with the fixed zeros and signs of W_qk and W_vo
    no longer stored (4 + 4 entries become 1 + 1) and the digit column of the embedding
    written as (c0 q0) t over t = 0..9 instead of storing -d. Count: 10 token values +
    c0, q0 + q_scale, q_phase, vo_scale, v_scale + 2 MLP + 2 final norm = 20. PyTorch
    original, float32.
    """
    return tied_member("yieldthought20", sparse=True,
                       description="yieldthought Spirit-20: wonderfall27 with sparse Q/K and V/O (non-zero scalars only).")
