"""lichengliu03's 50-parameter TinyAdder: sinusoidal positions of period 11, a parabolic head.

The idea. Prompt `a9..a0 + b9..b0 =` (most significant first, `+` and `=` both token 0),
answer least significant first; d_model 4 = [digit, sin, cos, accum]. The embedding is
value x direction (digit_values[d] * embed_dir = [d, 0, 0, 0]); a fixed positional table
writes amp(p) [sin(p theta), cos(p theta)] with theta = 2 pi / 11 and amp = 100 on the 22
prompt positions, 1 on answer positions. Period 11 makes a_i and b_i (11 apart) share a
phase. One key K = K_proj x reads the (sin, cos) pair; each of two query heads is the same
pair reflected-and-turned, Q_h = [[-cos t_h, sin t_h], [sin t_h, cos t_h]] K, so it peaks
t_h / theta positions back: head 0 (t = 8 theta) on the current pair a_k, b_k, head 1
(t = 9 theta) on the previous pair. With amplitude 100 the softmax is nearly hard and
splits evenly over the two operand positions. Both heads read the scalar value
embed_dir . x (the digit), and O writes head 0's average times 2 (= a_k + b_k) to `accum`
and head 1's (a_{k-1} + b_{k-1}) onto the sin coordinate. At an answer position the digit
coordinate holds the digit emitted just before, d_{k-1} = (a_{k-1} + b_{k-1} + c_{k-1}) mod 10,
so diff = (a_{k-1} + b_{k-1}) - d_{k-1} = 10 c_k - c_{k-1} (plus the position's own
unit-amplitude sin term) is large exactly when the previous column carried.
A four-unit ReLU MLP writes carry (relu(diff - 0.5) - relu(diff - 1.5)) and wrap
(-10 when the column total passes 9.5, from a hinge pair on 1000 accum - 10 diff) along
`accum_dir`, and the head reads z = accum_dir . x with logits lin d z + quad d^2 =
2 d z - d^2, a parabola peaking at z.

The carry is read from the model's own previous output digit (teacher forcing feeds the
right one, greedy decoding its own), exactly as in the original.

Count: digit_values 10 + embed_dir 4 + K_proj 8 + q_angles 2 + o_dir 8 + carry_dir 4 +
wrap_dir 4 + carry_bias 2 + wrap_bias 2 + accum_dir 4 (tied: MLP output and head input)
+ head lin 1 + quad 1 = 50; the positional table is hard-coded (0 parameters, as published).
Float32, like the PyTorch original; the positional table is evaluated from the same float32
operations (sin of p * theta, times amp).

Source: Kiguli/AdderBoard submissions/hand_coded/lichengliu03_50p.py (author lliu22).
Written here from its mathematics; outputs compared with the original's.
"""

from sympy import pi, sqrt

from ..compiler.builder import Construction, linear
from ..compiler.expr import const, cos, sin, stack
from ..compiler.formats import PromptFormat
from .parts import parabolic_head
from .registry import register

THETA = 2 * pi / 11            # positional angle per position: a_i and b_i are 11 apart
PROMPT_LEN = 22                # positions 0..21 carry the loud (x100) positional signal
AMP_PROMPT, AMP_ANSWER = 100, 1
N_POS = 33                     # table rows: 22 prompt + 11 answer positions
HEAD_ANGLES = (8 * THETA, 9 * THETA)   # current pair / previous pair
O_GAIN = 2                     # average of a pair -> its sum
CARRY_BIAS = (-0.5, -1.5)      # carry = relu(diff - 0.5) - relu(diff - 1.5)
WRAP_BIAS = (-9045, -9055)     # wrap = relu(wi - 9055) - relu(wi - 9045): 0 or -10
HEAD_LIN, HEAD_QUAD = 2, -1    # logits 2 d z - d^2


def positional_table():
    """[33, 4]: amp(p) [0, sin(p theta), cos(p theta), 0], evaluated in the model's dtype."""
    p = const(list(range(N_POS)))
    amp = const([AMP_PROMPT if i < PROMPT_LEN else AMP_ANSWER for i in range(N_POS)])
    ang = p * const(THETA)
    zero = const([0] * N_POS)
    return stack([zero, amp * sin(ang), amp * cos(ang), zero], axis=1)


@register("lichengliu50", claimed_params=50, author="lichengliu03 (lliu22)",
          source="https://github.com/Kiguli/AdderBoard/blob/main/submissions/hand_coded/lichengliu03_50p.py",
          summary="1L d=4 2 heads: sinusoidal PE period 11 (amp 100 on the prompt), reflected-rotation queries, "
                  "scalar V, carry/wrap hinge pairs, parabolic head")
def build():
    c = Construction(
        "lichengliu50", vocab=[str(d) for d in range(10)], dtype="float32",
        fmt=PromptFormat(prompt=(("a", "msb"), 0, ("b", "msb"), 0), out_order="lsb"),
        slots=[("digit", 1), ("pe", 2), ("accum", 1)], layers=1, heads=2,
        positions="sinusoidal, period 11 (x100 on the prompt)",
        description="lichengliu03 TinyAdder-50p: sinusoidal PE period 11, rotation queries, parabolic head.",
    )
    dv = c.param("digit_values", [[d] for d in range(10)], note="token value")
    e = c.param("embed_dir", [1, 0, 0, 0], note="embedding direction, also V's read-out")
    k_proj = c.param("attn.K_proj", [[0, 1, 0, 0], [0, 0, 1, 0]], note="reads the (sin, cos) pair; Q and K")
    t = c.param("attn.q_angles", list(HEAD_ANGLES))
    o_dir = c.param("attn.o_dir", [[0, 0, 0, O_GAIN], [0, O_GAIN, 0, 0]], note="head 0 -> accum, head 1 -> sin")
    carry_dir = c.param("mlp.carry_dir", [-1, 1, 0, 0], note="diff = prev pair sum - previous output digit")
    wrap_dir = c.param("mlp.wrap_dir", [-10, 10, 0, 1000])
    carry_b = c.param("mlp.carry_bias", list(CARRY_BIAS))
    wrap_b = c.param("mlp.wrap_bias", list(WRAP_BIAS))
    accum = c.param("accum_dir", [0, 0, 0, 1], note="MLP output and head input (tied)")
    lin = c.param("head.lin", HEAD_LIN)
    quad = c.param("head.quad", HEAD_QUAD)

    c.embed(dv * e, pos=positional_table())                      # [10, 1] * [4] -> [10, 4]
    ch, sh = cos(t), sin(t)
    refl = stack([stack([-ch[h], sh[h]]) if r == 0 else stack([sh[h], ch[h]]) for h in range(2) for r in range(2)])  # [4, 2]
    c.attention(heads=2, kv_heads=1, head_dim=2, v_head_dim=1, divisor=sqrt(2),
                q=[k_proj, refl], k=k_proj, v=linear(stack([e]), reduce="sum"), o=o_dir.T)
    up = linear(stack([carry_dir, carry_dir, wrap_dir, wrap_dir]), reduce="sum",
                bias=stack([carry_b[0], carry_b[1], wrap_b[1], wrap_b[0]]))
    c.mlp(up=up, act="relu", down=[const([[1, -1, 1, -1]]), stack([accum], axis=1)])
    c.unembed(parabolic_head(stack([accum]), lin, quad, reduce="sum"))
    return c.build()
