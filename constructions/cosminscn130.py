"""cosminscn's 130-parameter NanoGPT adder: the period-11 sinusoidal circuit stored densely.

The first of cosminscn's two hand-coded NanoGPTs (the board's 130p entry); `cosminscn66` is
the same circuit with its projections slimmed down, and lichengliu50 descends from both. The
idea, in short (cosminscn66.py and lichengliu50.py tell it in full): prompt `a9..a0 + b9..b0 =`
most significant first (`+`, `=` are token 0), answer least significant first; d_model 4 =
[digit, sin, cos, accum]; a fixed positional table amp(p) [sin, cos](2 pi p / 11), amp 100 on
the 22 prompt positions and 1 on the answer, so that a_i and b_i (11 apart) share a phase.

Here every projection is an ordinary NanoGPT tensor:

* embedding rank one, A[d] B = [d, 0, 0, 0] (10 + 4);
* `c_attn` [12, 4], the fused Q, K, V of two heads of width 2 (48, zeros included): K copies
  (sin, cos) into each head; head h's query is that pair reflected and turned by 8 theta
  (head 0: the current pair a_k, b_k) or 9 theta (head 1: the previous pair), times 100,
  which makes the softmax nearly hard; V copies the digit into each head's first coordinate;
  the score scale is NanoGPT's 1 / sqrt(head_dim);
* `c_proj` [4, 4] (16): 2 x head 0 -> `accum` (a_k + b_k), 2 x head 1 -> the sin coordinate
  (a_{k-1} + b_{k-1});
* the MLP: a full `c_fc` [4, 4] with bias (16 + 4), ReLU, and a rank-one output u v^T (4 + 4):
  a carry hinge pair on 100 (sin - digit) at 0.5 / 1.5 (with the previously emitted digit on
  `digit`, that difference is 10 c_k - c_{k-1}) and a wrap hinge pair on 1000 accum + 10 (sin -
  digit) at 9045 / 9055, written as +0.01 carry - wrap onto `accum`. (The published file notes
  that its first version put the wrap hinges at 9005 / 9015, five units above the largest
  no-wrap value, and false carries followed; 9045 / 9055 is the fixed version, as in 66p.)
* the head: rank one with bias, logit_d = u_d (v . x) + bias_d = 2 d accum - d^2, a parabola
  peaking at `accum` (10 + 4 + 10).

Count: 14 + 48 + 16 + 20 + 8 + 24 = 130; no layer norms (identity), no biases elsewhere, the
positional table computed, not stored (0 parameters, as published). Float32, as the PyTorch
original runs.

Source: https://gist.github.com/cosminscn/89c110dbae76ea0c873d67607e466f5b (PyTorch NanoGPT;
copied as Kiguli/AdderBoard submissions/hand_coded/cosminscn_130p.py). Written here from its
mathematics; outputs compared with the original's.
"""

from sympy import cos, sin

from ..compiler.builder import Construction, linear
from ..compiler.expr import matmul
from ..compiler.formats import PromptFormat
from .cosminscn66 import FC, FC_OUT, HEAD_ANGLES, O_GAIN, Q_SCALE
from .lichengliu50 import HEAD_LIN, HEAD_QUAD, positional_table
from .registry import register

D_MODEL, N_HEADS, HEAD_DIM = 4, 2, 2
DIGIT, SIN, COS, ACCUM = range(D_MODEL)   # residual coordinates


def unit(i: int) -> list[int]:
    """Row vector e_i of the residual stream."""
    return [1 if j == i else 0 for j in range(D_MODEL)]


def query_rows(angle) -> list[list]:
    """One head's query: the (sin, cos) pair reflected and turned by `angle`, times Q_SCALE."""
    row0 = [0, -cos(angle) * Q_SCALE, sin(angle) * Q_SCALE, 0]
    row1 = [0, sin(angle) * Q_SCALE, cos(angle) * Q_SCALE, 0]
    return [row0, row1]


C_ATTN = ([row for angle in HEAD_ANGLES for row in query_rows(angle)]   # Q: heads 0, 1
          + [unit(SIN), unit(COS)] * N_HEADS                             # K: (sin, cos) per head
          + [unit(DIGIT), [0] * D_MODEL] * N_HEADS)                      # V: the digit per head
# O: output coordinate <- (concatenated head output coordinate, gain)
C_PROJ = [[O_GAIN if (i, j) in ((ACCUM, 0), (SIN, HEAD_DIM)) else 0 for j in range(D_MODEL)]
          for i in range(D_MODEL)]


@register("cosminscn130", claimed_params=130, author="cosminscn",
          source="https://gist.github.com/cosminscn/89c110dbae76ea0c873d67607e466f5b",
          summary="1L d=4 2 heads NanoGPT: sinusoidal PE period 11, dense fused QKV and c_proj, ReLU hinge MLP "
                  "with rank-1 output, rank-1 parabolic head with bias")
def build():
    c = Construction(
        "cosminscn130", vocab=[str(d) for d in range(10)], dtype="float32",
        fmt=PromptFormat(prompt=(("a", "msb"), 0, ("b", "msb"), 0), out_order="lsb"),
        slots=[("digit", 1), ("sin", 1), ("cos", 1), ("accum", 1)], layers=1, heads=N_HEADS,
        positions="sinusoidal, period 11 (x100 on the prompt)",
        description="cosminscn 130p: NanoGPT with period-11 sinusoidal PE, dense QKV, hinge MLP, parabolic head.",
    )
    A = c.param("wte.A", [[d] for d in range(10)], note="token value")
    B = c.param("wte.B", [unit(DIGIT)], note="embedding direction")
    qkv = c.param("attn.c_attn.weight", C_ATTN, note="fused Q, K, V (rows 0-3, 4-7, 8-11)")
    o = c.param("attn.c_proj.weight", C_PROJ, note="head 0 -> accum, head 1 -> sin")
    fw = c.param("mlp.c_fc.weight", [w for w, _ in FC], note="carry and wrap hinge pairs")
    fb = c.param("mlp.c_fc.bias", [b for _, b in FC])
    pu = c.param("mlp.c_proj.u", [[x] for x in unit(ACCUM)])
    pv = c.param("mlp.c_proj.v", [FC_OUT], note="+0.01 carry - wrap")
    hu = c.param("lm_head.u", [[HEAD_LIN * d] for d in range(10)], note="2 d")
    hv = c.param("lm_head.v", [unit(ACCUM)], note="reads accum")
    hb = c.param("lm_head.bias", [HEAD_QUAD * d * d for d in range(10)], note="-d^2")

    c.embed(matmul(A, B), pos=positional_table())   # rank-one [10, 1] @ [1, 4]
    width = N_HEADS * HEAD_DIM
    c.attention(heads=N_HEADS, head_dim=HEAD_DIM,
                q=qkv[0:width], k=qkv[width:2 * width], v=qkv[2 * width:3 * width], o=o)
    c.mlp(up=linear(fw, bias=fb), act="relu", down=[pv, pu])
    c.unembed(linear([hv, hu], bias=hb))
    return c.build()
