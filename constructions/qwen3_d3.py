"""The Qwen3 d_model 3 family: prasannakotyal 116p, Wonderfall 121p / 130p / 139p.

The idea. A stock one-layer Qwen3 block (pre-RMSNorm, four query heads sharing one key/value
head, QK-norm, RoPE, SwiGLU, tied embedding) whose attention routes by position alone.
Operands go in least significant digit first, `[0] a0..a9 [0 0] b0..b9 [0]`, so the token
that predicts sum digit s_i sits at position 23 + i, with a_i 22 and b_i 10 positions back
(a_{i-1}, b_{i-1}: 23 and 11). Every token embeds as [C - q d^2, d, eps d] with C = 1000,
so after the parameterless input RMSNorm the `const` coordinate is ~sqrt 3 for every token.
Q and K read only that coordinate: K = [x_const, 0] and head h's query is
x_const [cos o_h, -sin o_h]. QK-norm (weight 256) makes both vectors 256 sqrt 2 long, RoPE
at theta 10^4 turns them by one radian per position, and the score of key j seen from
query p is 256^2 sqrt 2 cos(p - j - o_h) ~ 9.3e4 cos(...): maximal exactly at j = p - o_h;
within the 34 positions the best rival sits 19 further (cos 19 = 0.989), ~1e3 lower, so
each head reads exactly one token (its softmax is one-hot in float32).
V copies the digit (DIGIT_SCALE undoes the norm: V ~ d), and O writes
`digit` <- s_{i-1} - a_{i-1} - b_{i-1} =: x (the current token is the previous answer digit)
and `z` <- a_i + b_i =: s. x is c_{i-1} - 10 c_i in {0, 1, -10, -9}, so the carry into
column i is c = [x <= -9]. The SwiGLU computes the wrap w = [s + c >= 10] through
m = 20 s - 2 x - 189 (|m| >= 9 on every case) as a pair of SiLU hinges ALPHA (m + 1),
ALPHA m (SiLU(ALPHA (m + 1)) - SiLU(ALPHA m) ~ ALPHA w), each times the `const` up
projection and divided back by ALPHA sqrt 3 in the down projection: z <- s - 10 w. The
tied head then scores digit d as ~ C' + eps (d z_eff - d^2 / 2) (final norm weights
[1/sqrt 3, ., DIGIT_SCALE] restore the scales), a downward parabola peaking at
round(z_eff). The members differ in how the carry c reaches z_eff:

* `decode` (116p, 121p): through the final norm: its `digit` weight -0.1 eps DIGIT_SCALE
  adds -0.1 x to z_eff, which is c to within 0.1 (x = 0, 1 -> 0, -0.1; x = -10, -9 -> 1,
  0.9), inside the +-0.5 rounding margin.
* `linear` (130p): a third, always-on SwiGLU unit (gate ALPHA, SiLU(ALPHA) = ALPHA /
  (1 + e^-ALPHA) divided out in down) adds 0.05 - 0.1 x (c to within 0.05) to z; the
  final `digit` weight is 0.
* `hinge` (139p): a second hinge pair on m_c = -x - 8 adds the exact carry [x <= -9]
  (same SiLU pair construction); the final `digit` weight is 0.

Constants. C = 1000; NORM = sqrt 3 (RMS of ~[C, 0, 0] is C / sqrt 3); DIGIT_SCALE = C / NORM;
eps = 1/2000 and q = eps / 2 (decode slope and curvature); QK-norm weight 256; ALPHA = 20;
query offsets o = (23, 11, 22, 10) radians (prev a, prev b, cur a, cur b); carry slope
-1/10.

Count. Every entry of every Qwen3 tensor is a parameter, zeros included, as in the
originals: embedding 30, input/post-attention norms 3 + 3, Q 8x3, K 2x3, V 2x3, O 3x8,
q/k norms 2 + 2, gate/up U x 3 each, down 3 x U, final norm 3, i.e. 103 + 9 U: U = 2 -> 121
(Wonderfall 121p), U = 3 -> 130, U = 4 -> 139. prasannakotyal's 116p is the 121p model with
the post-attention norm tied to the input norm and the K norm tied to the Q norm (-5).
All four are float32 and 100% on the official 10,010 cases.

Precision. The decode gap between the right digit and its neighbour is eps (1/2 - |z_eff -
round(z_eff)|): 2e-4 (decode), 2.25e-4 (linear), 2.5e-4 (hinge) in float64, on logits of
~1000 whose float32 spacing is 6.1e-5. In float32 that is 2-3 ulps (`adder verify` reports
a worst margin of 1.2e-4 on the official, carry and chain suites): correct, but by a
couple of roundings.

Credit: prasannakotyal (metadata name "nino"), PyTorch,
https://gist.github.com/prasannakotyal/467d4c54564beba34d9d7edbd41c33dc ; Wonderfall,
MLX (mlx_lm qwen3), https://gist.github.com/Wonderfall/7d6f49aa6703352f94d3d80b4cd31e15 (121p),
https://gist.github.com/Wonderfall/066df10de455cdc090900944bdc646cd (130p),
https://gist.github.com/Wonderfall/191bea43ff7f9316ac178b6c185d7165 (139p).
Written here from their mathematics; each member's outputs were compared with its original.
"""

from sympy import Rational, exp, sqrt

from ..compiler.builder import Construction, rms, rope
from ..compiler.formats import PromptFormat
from .parts import reading_query
from .registry import register

C = 1000                         # embedding constant on `const`
NORM = sqrt(3)                   # normalised `const` coordinate: RMS of ~[C, 0, 0] is C / sqrt 3
DIGIT_SCALE = C / NORM           # normalised digit d reads d / DIGIT_SCALE; V and final norm undo it
EPS = Rational(1, 2000)          # decode slope: e(d)[z] = EPS d
QUAD = EPS / 2                   # decode curvature: e(d)[const] = C - QUAD d^2
QK_NORM = 256                    # QK-norm weight: score amplitude 256^2 sqrt 2
ALPHA = 20                       # SiLU hinge sharpness
OFFSETS = (23, 11, 22, 10)       # query offsets (radians = positions): a_{i-1}, b_{i-1}, a_i, b_i
CARRY_SLOPE = Rational(-1, 10)   # decode-time carry surrogate -0.1 x
SILU_ALPHA = ALPHA / (1 + exp(-ALPHA))   # SiLU(ALPHA): the always-on unit's gate value
SLOTS = [("const", 1), ("digit", 1), ("z", 1)]
HIDDEN = {"decode": 2, "linear": 3, "hinge": 4}


def _dense(n_out: int, entries: dict) -> list:
    """A dense [n_out, 3] value list, entries keyed (row, slot)."""
    names = [n for n, _ in SLOTS]
    m = [[0] * len(SLOTS) for _ in range(n_out)]
    for (r, slot), v in entries.items():
        m[r][names.index(slot)] = v
    return m


def member(name: str, *, carry: str, tie_norms: bool = False, description: str = ""):
    """One member. carry: "decode" (final-norm surrogate), "linear" (always-on SwiGLU unit)
    or "hinge" (exact carry hinge pair); tie_norms: post-attention norm = input norm and
    K norm = Q norm (prasannakotyal's sharing)."""
    c = Construction(
        name, vocab=[str(d) for d in range(10)], dtype="float32",
        fmt=PromptFormat(prompt=(0, ("a", "lsb"), 0, 0, ("b", "lsb"), 0), out_order="lsb"),
        slots=SLOTS, layers=1, heads="4q/1kv", positions="RoPE theta 1e4 (1 rad/position)",
        description=description,
    )
    U = HIDDEN[carry]
    E = c.param("embed", [[C - QUAD * d**2, d, EPS * d] for d in range(10)],
                note="tied: (C - q d^2, d, eps d)")
    in_norm = c.param("input_norm.weight", [1, 1, 1])
    post_norm = in_norm if tie_norms else c.param("post_attention_norm.weight", [1, 1, 1])
    q_rows = {}
    for h, o in enumerate(OFFSETS):
        q_rows[(2 * h, "const")], q_rows[(2 * h + 1, "const")] = reading_query(o)
    W_q = c.param("attn.q_proj", _dense(8, q_rows), note="head h: x_const (cos o_h, -sin o_h)")
    W_k = c.param("attn.k_proj", _dense(2, {(0, "const"): 1}), note="K = (x_const, 0)")
    W_v = c.param("attn.v_proj", _dense(2, {(0, "digit"): DIGIT_SCALE}), note="V ~ the digit")
    o_vals = [[0] * 8 for _ in range(3)]
    o_vals[1][0] = o_vals[1][2] = -1     # digit <- s_{i-1} - a_{i-1} - b_{i-1} = x
    o_vals[2][4] = o_vals[2][6] = 1      # z <- a_i + b_i = s
    W_o = c.param("attn.o_proj", o_vals)
    qn = c.param("attn.q_norm.weight", [QK_NORM, QK_NORM])
    kn = qn if tie_norms else c.param("attn.k_norm.weight", [QK_NORM, QK_NORM])

    def pair(m_const, m_digit, m_z):     # hinges ALPHA (m + 1), ALPHA m of m = m_const + m_digit x + m_z s
        return [{"const": ALPHA * (m_const + 1) / NORM, "digit": ALPHA * m_digit * DIGIT_SCALE, "z": ALPHA * m_z * DIGIT_SCALE},
                {"const": ALPHA * m_const / NORM, "digit": ALPHA * m_digit * DIGIT_SCALE, "z": ALPHA * m_z * DIGIT_SCALE}]

    unit = 1 / (ALPHA * NORM)            # down gain: a hinge pair's difference back to 0/1
    wrap = pair(-189, -2, 20)            # w = [20 s - 2 x - 189 > 0] = [s + c >= 10]
    if carry == "hinge":
        units = pair(-9, -1, 0) + wrap   # c = [-x - 8 >= 1] = [x <= -9]
        ups = [{"const": 1}] * 4
        downs = [unit, -unit, -10 * unit, 10 * unit]
    else:
        units, ups, downs = wrap, [{"const": 1}] * 2, [-10 * unit, 10 * unit]
        if carry == "linear":            # always-on unit: SiLU(ALPHA) (0.5 - x), scaled to 0.05 - 0.1 x
            units = units + [{"const": ALPHA / NORM}]
            ups = ups + [{"const": Rational(1, 2) / NORM, "digit": -DIGIT_SCALE}]
            downs = downs + [Rational(1, 10) / SILU_ALPHA]
    W_gate = c.param("mlp.gate_proj", _dense(U, {(r, s): v for r, u in enumerate(units) for s, v in u.items()}))
    W_up = c.param("mlp.up_proj", _dense(U, {(r, s): v for r, u in enumerate(ups) for s, v in u.items()}))
    down_vals = [[0] * U for _ in range(3)]
    down_vals[2] = downs                 # everything lands on z
    W_down = c.param("mlp.down_proj", down_vals)
    digit_w = CARRY_SLOPE * DIGIT_SCALE * EPS if carry == "decode" else 0
    final_w = c.param("final_norm.weight", [1 / NORM, digit_w, DIGIT_SCALE],
                      note="const -> ~1, digit -> carry surrogate (decode member), z -> z")

    c.embed(E)
    c.attention(norm=rms(1e-6, weight=in_norm), heads=4, kv_heads=1, head_dim=2,
                q=W_q, k=W_k, v=W_v, o=W_o,
                q_norm=rms(1e-6, weight=qn), k_norm=rms(1e-6, weight=kn),
                rope=rope(theta=10000, head_dim=2))
    c.mlp(norm=rms(1e-6, weight=post_norm), act="silu", gate=W_gate, up=W_up, down=W_down)
    c.unembed(E, final_norm=rms(1e-6, weight=final_w))
    return c.build()


@register("prasannakotyal116", claimed_params=116, author="prasannakotyal (nino)",
          source="https://gist.github.com/prasannakotyal/467d4c54564beba34d9d7edbd41c33dc",
          summary="1L Qwen3 d=3, 4 q heads / 1 kv, QK-norm 256, RoPE 1 rad, position-only routing, "
                  "SwiGLU wrap pair, carry at decode; shared norms")
def prasannakotyal116():
    return member("prasannakotyal116", carry="decode", tie_norms=True,
                  description="prasannakotyal 116p: Qwen3 d=3, carry surrogate in the final norm, shared RMSNorm weights.")


@register("wonderfall121", claimed_params=121, author="Wonderfall",
          source="https://gist.github.com/Wonderfall/7d6f49aa6703352f94d3d80b4cd31e15",
          summary="1L Qwen3 d=3, 4 q heads / 1 kv, QK-norm 256, RoPE 1 rad, position-only routing, "
                  "SwiGLU wrap pair, carry at decode")
def wonderfall121():
    return member("wonderfall121", carry="decode",
                  description="Wonderfall param_121: Qwen3 d=3 (MLX), carry surrogate in the final norm.")


@register("wonderfall130", claimed_params=130, author="Wonderfall",
          source="https://gist.github.com/Wonderfall/066df10de455cdc090900944bdc646cd",
          summary="1L Qwen3 d=3, 4 q heads / 1 kv, QK-norm 256, SwiGLU wrap pair + always-on linear carry unit")
def wonderfall130():
    return member("wonderfall130", carry="linear",
                  description="Wonderfall param_130: Qwen3 d=3 (MLX), linear carry surrogate as a third SwiGLU unit.")


@register("wonderfall139", claimed_params=139, author="Wonderfall",
          source="https://gist.github.com/Wonderfall/191bea43ff7f9316ac178b6c185d7165",
          summary="1L Qwen3 d=3, 4 q heads / 1 kv, QK-norm 256, SwiGLU wrap pair + exact carry hinge pair")
def wonderfall139():
    return member("wonderfall139", carry="hinge",
                  description="Wonderfall param_139: Qwen3 d=3 (MLX), exact carry as a second SwiGLU hinge pair.")
