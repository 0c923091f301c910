"""cosminscn's 66-parameter NanoGPT adder: the period-11 sinusoidal circuit with lean projections.

The idea (the same circuit as lichengliu50, of which it is the parent line). Prompt
`a9..a0 + b9..b0 =` most significant first (`+`, `=` are token 0), answer least significant
first; d_model 4 = [digit, sin, cos, accum], the embedding rank one (A[d] B = [d, 0, 0, 0]),
and a fixed positional table amp(p) [sin, cos](2 pi p / 11) with amp 100 on the prompt and 1
on the answer, so a_i and b_i (11 apart) share a phase. Two heads of width 2: K copies the
(sin, cos) pair into each head; Q is that pair reflected and turned by 8 theta (head 0: the
current pair a_k, b_k) or 9 theta (head 1: the previous pair), times a scale S = 100, built
from 3 scalars. V is rank one (the digit into the first coordinate of each head); O keeps two
entries, 2 x head 0 -> `accum` (a_k + b_k) and 2 x head 1 -> the sin coordinate (a_{k-1} +
b_{k-1}). The MLP is a full 4 x 4 ReLU layer with bias: two units a hinge pair on
100 (sin - digit) at 0.5 and 1.5 — with the previously emitted digit on `digit`, that
difference is 10 c_k - c_{k-1}, large exactly when the previous column carried — and two a
hinge pair on 1000 accum + 10 (sin - digit) at 9045 / 9055 (the column total passes 9.5);
a rank-one output writes 0.01 (carry hinge) - (wrap hinge) = +1 / -10 onto `accum`. The head
is the parabola logit_d = lin d (dim_w accum) + quad d^2 = 2 d accum - d^2.

Count: embedding 10 + 4, Q 3 (two angles, one scale), K 8, V 4 + 4, O 2, MLP 16 + 4 and
4 + 4, head 3 = 66; the positional table is computed, not stored (0 parameters, as
published). Float32, like the PyTorch original.

Source: Kiguli/AdderBoard submissions/hand_coded/cosminscn_66p.py (PyTorch NanoGPT).
Written here from its mathematics; outputs compared with the original's.
"""

from sympy import Rational, pi

from ..compiler.builder import Construction, linear
from ..compiler.expr import cos, matmul, place, sin
from ..compiler.formats import PromptFormat
from .lichengliu50 import positional_table
from .parts import hinge_pair, parabolic_head
from .registry import register

THETA = 2 * pi / 11
Q_SCALE = 100                  # S: query gain (the positional amplitude's partner)
HEAD_ANGLES = (8 * THETA, 9 * THETA)
O_GAIN = 2                     # a head's average over two operand positions -> their sum
# MLP units: (weights on [digit, sin, cos, accum], bias)
FC = (hinge_pair([-100, 100, 0, 0], 50, 100)        # carry: 100 (sin - digit) between 0.5 and 1.5
      + hinge_pair([-10, 10, 0, 1000], 9045, 10))    # wrap: 1000 accum + 10 (sin - digit) between 9045 and 9055
FC_OUT = [Rational(1, 100), Rational(-1, 100), -1, 1]   # carry (0..1) - wrap (0..10) on `accum`


@register("cosminscn66", claimed_params=66, author="cosminscn",
          source="https://github.com/Kiguli/AdderBoard/blob/main/submissions/hand_coded/cosminscn_66p.py",
          summary="1L d=4 2 heads: sinusoidal PE period 11, rotation Q from 3 scalars, rank-1 V, "
                  "2-entry O, full ReLU MLP, parabolic head")
def build():
    c = Construction(
        "cosminscn66", vocab=[str(d) for d in range(10)], dtype="float32",
        fmt=PromptFormat(prompt=(("a", "msb"), 0, ("b", "msb"), 0), out_order="lsb"),
        slots=[("digit", 1), ("sin", 1), ("cos", 1), ("accum", 1)], layers=1, heads=2,
        positions="sinusoidal, period 11 (x100 on the prompt)",
        description="cosminscn 66p: period-11 sinusoidal PE, rotation Q, rank-1 V, parabolic head.",
    )
    A = c.param("wte.A", [[d] for d in range(10)])
    B = c.param("wte.B", [[1, 0, 0, 0]])
    a0 = c.param("attn.q.angle_h0", HEAD_ANGLES[0], note="head 0: the current pair")
    a1 = c.param("attn.q.angle_h1", HEAD_ANGLES[1], note="head 1: the previous pair")
    S = c.param("attn.q.scale", Q_SCALE)
    kw = c.param("attn.k.weight", [[1, 0], [0, 1], [1, 0], [0, 1]], note="reads (sin, cos) into each head")
    vu = c.param("attn.v.u", [[1], [0], [1], [0]])
    vv = c.param("attn.v.v", [[1, 0, 0, 0]])
    o0 = c.param("attn.o.val0", O_GAIN, note="head 0 -> accum")
    o1 = c.param("attn.o.val1", O_GAIN, note="head 1 -> sin")
    fw = c.param("mlp.fc.weight", [w for w, _ in FC])
    fb = c.param("mlp.fc.bias", [b for _, b in FC])
    pu = c.param("mlp.proj.u", [[0], [0], [0], [1]])
    pv = c.param("mlp.proj.v", [FC_OUT])
    lin = c.param("head.lin", 2)
    quad = c.param("head.quad", -1)
    dim_w = c.param("head.dim_w", 1)

    c.embed(matmul(A, B), pos=positional_table())   # rank-one [10, 1] @ [1, 4]
    W_q = place((4, 4), {(0, 1): -cos(a0) * S, (0, 2): sin(a0) * S, (1, 1): sin(a0) * S, (1, 2): cos(a0) * S,
                         (2, 1): -cos(a1) * S, (2, 2): sin(a1) * S, (3, 1): sin(a1) * S, (3, 2): cos(a1) * S})
    W_k = place((4, 4), {(i, 1 + j): kw[i, j] for i in range(4) for j in range(2)})
    c.attention(heads=2, head_dim=2, q=W_q, k=W_k, v=[vv, vu], o=place((4, 4), {(3, 0): o0, (1, 2): o1}))
    c.mlp(up=linear(fw, bias=fb), act="relu", down=[pv, pu])
    c.unembed(parabolic_head(place((1, 4), {(0, 3): dim_w}), lin, quad))
    return c.build()
