"""fblissjr's 33-parameter one-layer adder: carry read by attention as a base-10 prefix sum.

The idea. Prompt `a0..a9 SEP b0..b9 SEP` (least significant first), answer digits least
significant first; residual d_model 3, three heads of width 1, Q = K = 0, so each head's
routing is a fixed additive score table (a buffer, not parameters). At the position that
emits sum digit k:

* head 0 scores a_k and b_k with 0 and the first SEP with 80, so the softmax puts weight
  1/(2 + e^80) on each digit; O multiplies by e^80 to give (a_k + b_k)(1 - ~e^-80) — the
  "e^80 anchor": the SEP's value is 0 and only fixes the normaliser;
* head 1 scores every earlier pair (a_j, b_j), j < k, with -(k - j) ln 10 (ALiBi with slope
  ln 10 in closed form) and SEP with 80, so after the e^80 gain it reads the prefix sum
  S_k = sum_j (a_j + b_j) 10^(j - k), whose integer part is the carry into digit k;
* head 2 attends to itself with V = -x0 and cancels the residual copy of the token just fed
  in, so coordinate 0 holds a_k + b_k whatever digit was emitted before.

A ReLU MLP of four units makes two exact steps from hinge pairs: relu(x - t + 1e-11) -
relu(x - t + 0.5e-11) is 0.5e-11 for x > t - 0.5e-11 and 0 below t - 1e-11, so with gains
+-2e11 "S_k >= 1" adds the carry and with +-2e12 "a_k + b_k + S_k >= 10" subtracts 10.
Coordinate 0 then holds the digit x, and a parabolic head logit_c = 2 c x - c^2 peaks at
c = x (SEP's bias -2e12 keeps it out). Float64 throughout.

Count. The original counts the *distinct values* in its parameter tensors (33, the value
0 included), not its tensor sizes. Here that rule is written as tying: `value(x)` declares
one learned scalar per distinct value (on first use) and every weight is a `place` of those
scalars, so equal entries are one parameter and `adder info` counts 33. The 34 x 34 x 3
score table is a registered buffer in the original and a hard-coded constant here.

Why float64 suffices: the anchor costs a relative error of about (sum of the other
weights) e^-80 ~ 1e-34 on the attention reads, far inside the 0.5e-11 hinge width, and the
sums themselves (<= 18, S_k < 2) are exact to ~1e-15.

Source: Kiguli/AdderBoard submissions/hand_coded/fblissjr_33p.py (PyTorch, float64).
Written here from its description; outputs compared with the original's.
"""

from sympy import Rational, exp, log, oo

from ..compiler.builder import Construction, linear
from ..compiler.expr import const, place, stack
from ..compiler.formats import PromptFormat
from .registry import register

SEP = 10                       # separator token id
ANCHOR = 80                    # score of the SEP anchor: softmax denominator ~ e^80
GAIN = exp(ANCHOR)             # O's gain, undoes the anchor's normaliser
DECADE = log(10)               # ALiBi slope of the prefix-sum head: one decade per digit
EPS1, EPS2 = Rational(1, 10**11), Rational(1, 2 * 10**11)   # the two hinge offsets (as published: 1e-11, 0.5e-11)
STEP = 1 / (EPS1 - EPS2)       # 2e11: hinge-pair difference -> exact 1
PROMPT_LEN, OUT = 22, 11
MAX_SEQ = 34                   # the original's score table size


def score_table():
    """[3, 34, 34] fixed attention scores (-inf = not attended)."""
    M = [[[-oo] * MAX_SEQ for _ in range(MAX_SEQ)] for _ in range(3)]
    for q in range(MAX_SEQ):
        if q < PROMPT_LEN - 1:            # prompt positions: every head attends to itself
            for h in range(3):
                M[h][q][q] = 0
            continue
        k = q - (PROMPT_LEN - 1)          # the sum digit this position emits
        M[2][q][q] = 0                    # head 2: self (residual cancellation)
        if k < 10:                        # head 0: the pair a_k, b_k
            M[0][q][k] = M[0][q][11 + k] = 0
        M[0][q][SEP] = ANCHOR
        for j in range(min(k, 10)):       # head 1: earlier pairs, 10^-(k-j)
            M[1][q][j] = M[1][q][11 + j] = -(k - j) * DECADE
        M[1][q][SEP] = ANCHOR
    return const(M)


@register("fblissjr33", claimed_params=33, author="fblissjr",
          source="https://github.com/Kiguli/AdderBoard/blob/main/submissions/hand_coded/fblissjr_33p.py",
          summary="1L d=3, fixed score table: e^80-anchored pair sum + ALiBi base-10 prefix-sum carry, hinge-pair steps, parabolic head")
def build():
    c = Construction(
        "fblissjr33", vocab=[str(d) for d in range(10)] + ["SEP"], dtype="float64",
        fmt=PromptFormat(prompt=(("a", "lsb"), SEP, ("b", "lsb"), SEP), out_order="lsb"),
        slots=[("sum", 1), ("carry", 1), ("unused", 1)], layers=1, heads=3,
        positions="fixed score table (ALiBi ln 10 + e^80 anchor)",
        description="fblissjr 33p: carry as an ALiBi prefix sum in attention, e^80 anchoring, float64.",
    )
    values = {}

    def value(x):
        """The learned scalar holding value x (declared on first use: equal values are tied)."""
        if x not in values:
            values[x] = c.param(f"value{len(values)}", x, note=f"= {x}")
        return values[x]

    def table(rows):
        return place((len(rows), len(rows[0])), {(i, j): value(x) for i, r in enumerate(rows) for j, x in enumerate(r)})

    digits = list(range(10))
    c.embed(table([[d, 0, 0] for d in digits] + [[0, 0, 0]]))
    zero3 = table([[0, 0, 0]] * 3)
    c.attention(heads=3, head_dim=1, scale=1, bias=score_table(), q=zero3, k=zero3,
                v=table([[1, 0, 0], [1, 0, 0], [-1, 0, 0]]),
                o=table([[GAIN, 0, 1], [0, GAIN, 0], [0, 0, 0]]))
    up_bias = [-1 + EPS1, -1 + EPS2, -10 + EPS1, -10 + EPS2]
    up = linear(table([[0, 1, 0], [0, 1, 0], [1, 1, 0], [1, 1, 0]]),
                bias=stack([value(x) for x in up_bias]))
    c.mlp(up=up, act="relu", down=table([[STEP, -STEP, -10 * STEP, 10 * STEP], [0] * 4, [0] * 4]))
    head_bias = [value(-d * d) for d in digits] + [value(-10 * STEP)]
    c.unembed(linear(table([[2 * d, 0, 0] for d in digits] + [[0, 0, 0]]), bias=stack(head_bias)))
    return c.build()
