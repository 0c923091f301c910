"""TinyAdder — Alex Litzenberger's 36-parameter two-layer adder (float64, MSB-first).

The idea. Layer 0 reads the number in base 10 with attention: one head has an ALiBi slope
of ln 10, so a key j positions back is weighted 10^-(j) relative to the current one, and
softmax1 (a softmax with an extra 1 in the denominator, so weights need not sum to 1)
lets a tiny, exactly scaled amount of each special token's value through. That head
writes a `count` that is a power of ten tied to the digit's place; a second uniform head
writes a `scale` that tells prompt from answer positions. A gated ReLU FFN multiplies the
place value into the digit (`digit_pos`) and writes ten candidate offsets (d + 0.5) *
place. Layer 1 averages `digit_pos` over the whole prefix with Q = K = 0 (uniform causal
attention), which sums both operands digit-weighted by place and subtracts what has
already been emitted; the result is broadcast onto every residual coordinate. A V-shaped
FFN (|x| from two ReLUs) makes each candidate's distance to that running value, and the
output is the argmin over the ten candidates, written here as logits = -residual[0:10]
(non-digit tokens get -inf).

Known flaw, reproduced: the argmin reads residual coordinates 0..9, which are 5 bookkeeping
coordinates and only the first 5 candidates *before* the FFN adds to them; a public formal
verification effort reports inputs it adds wrongly. Correct (on the official cases) only in
float64: the constants span 1e-17 .. 1e17.

Source: https://gist.github.com/alexlitz/0d5efbccf443fb0e8136b8f5bd85140a (PyTorch).
Count, as published: 13 embedding + 6 L0 attention + 12 L0 FFN + 2 L1 attention + 3 L1 FFN.
"""

from sympy import Rational, exp, log

from ..compiler.builder import Construction, linear
from ..compiler.expr import const, ones, place, zeros
from ..compiler.formats import PromptFormat
from .registry import register

VOCAB = [str(d) for d in range(10)] + ["=", "<bos>", "<eos>", "+"]
EQ_TOK, BOS, PLUS = 10, 11, 13

DIGIT_EMBED = 10               # digit d embeds as 10 d on `digit`
K_DIGIT = -1000                # head-3 key of a digit: exp(-1000) underflows to exactly 0
K_SPECIAL = -40                # head-3 key of a special token
ALIBI_SLOPE = log(10)          # one decade per position
V_UNIT = exp(K_SPECIAL - log(10))     # undoes exp(K_SPECIAL) and one decade
V_SPECIAL = Rational(1, 10) / V_UNIT  # value of a special token on head 3
V_EQ = Rational(-11, 10) / V_UNIT     # extra value of '=' on head 3
DIGIT_SCALE = 10**10           # place-value unit
FINAL_SCALE = 100
DIGIT_OFFSET = Rational(1, 2)  # candidate d sits at (d + 1/2) * place
GATE_SHIFT = 15                # layer-1 value bias
V_SCALE = 10**4                # slope of the V-shaped |x|
SLOTS = [("eq", 1), ("special", 1), ("digit", 1), ("count", 1), ("scale", 1),
         ("cand", 10), ("digit_pos", 1)]


@register("tinyadder36", claimed_params=36, author="Alex Litzenberger",
          source="https://gist.github.com/alexlitz/0d5efbccf443fb0e8136b8f5bd85140a",
          summary="2L d=5->16, ALiBi ln10 + softmax1 base-10 accumulation, uniform attention, V-shaped FFN, argmin")
def build():
    c = Construction(
        "tinyadder36", vocab=VOCAB, dtype="float64", slots=SLOTS,
        fmt=PromptFormat(prompt=(BOS, ("a", "msb"), PLUS, ("b", "msb"), EQ_TOK), out_order="msb"),
        layers=2, heads="5+1", positions="ALiBi (slope ln 10)",
        description="TinyAdder: ALiBi ln10 + softmax1, gated ReLU candidates, uniform attention, argmin output.",
    )
    d = c.dim
    D = c.d_model

    # embedding: 9 digit values + 4 special flags (13)
    digit_vals = c.param("embed.digits", [DIGIT_EMBED * i for i in range(1, 10)])
    flags = c.param("embed.flags", [1, 1, 1, 1], note="'=' eq, '=' special, <bos> special, '+' special")
    table = {(i, d("digit")): digit_vals[i - 1] for i in range(1, 10)}
    table.update({(EQ_TOK, d("eq")): flags[0], (EQ_TOK, d("special")): flags[1],
                  (BOS, d("special")): flags[2], (PLUS, d("special")): flags[3]})
    c.embed(place((len(VOCAB), D), table))

    # layer 0 attention: 5 heads of dim 1; head 3 accumulates in base 10, head 4 is uniform (6)
    q_bias = c.param("l0.q_bias", 1, note="every query is 1 (broadcast)")
    k_w = c.param("l0.k_w", K_SPECIAL - K_DIGIT)
    k_b = c.param("l0.k_b", K_DIGIT)
    v = c.param("l0.v", [V_SPECIAL, V_EQ, 1], note="head 3: special, eq; head 4: eq")
    c.attention(
        heads=5, head_dim=1, scale=1, softmax="softmax1", alibi=const([0, 0, 0, ALIBI_SLOPE, 0]),
        q=linear(zeros(5, D), bias=place((5,), {(h,): q_bias for h in range(5)})),
        k=linear(c.matrix(5, "residual", {(3, "special"): k_w}), bias=place((5,), {(3,): k_b})),
        v=c.matrix(5, "residual", {
            (3, "special"): v[0], (3, "eq"): v[1], (4, "eq"): v[2]}),
        o=c.matrix("residual", 5, {(h, h): 1 for h in range(5)}),  # head h -> coordinate h
        name="l0.attn")

    # layer 0 FFN: gate = relu(scale) x10 and relu(digit); up = count * (d + 1/2) * place (12)
    g = c.param("l0.gate", 1, note="broadcast gate weight")
    up = c.param("l0.up", [(i + DIGIT_OFFSET) * DIGIT_SCALE * FINAL_SCALE for i in range(10)] + [DIGIT_SCALE])
    gate = {(j, "scale"): g for j in range(10)}
    gate[(10, "digit")] = g
    c.mlp(gate=c.matrix(11, "residual", gate), act="relu",
          up=c.matrix(11, "residual", {(j, "count"): up[j] for j in range(11)}),
          down=c.matrix("residual", 11, {**{(("cand", j), j): 1 for j in range(10)}, ("digit_pos", 10): 1}),
          name="l0.ffn")

    # layer 1 attention: Q = K = 0, uniform over the prefix; the value is broadcast everywhere (2)
    v_w = c.param("l1.v_w", FINAL_SCALE)
    v_b = c.param("l1.v_b", GATE_SHIFT)
    c.attention(heads=1, head_dim=1, scale=1, softmax="softmax1",
                q=zeros(1, D), k=zeros(1, D),
                v=linear(c.matrix(1, "residual", {(0, "digit_pos"): v_w}), bias=place((1,), {(0,): v_b})),
                o=ones(D, 1), name="l1.attn")

    # layer 1 FFN: |x| of each candidate as relu(V x) + relu(-V x), times FINAL_SCALE, onto dims 0..9 (3)
    vp = c.param("l1.v_pos", V_SCALE)
    vn = c.param("l1.v_neg", -V_SCALE)
    f = c.param("l1.out", FINAL_SCALE, note="broadcast output scale")
    c.mlp(act="relu",
          up=c.matrix(20, "residual", {**{(2 * j, ("cand", j)): vp for j in range(10)},
                                       **{(2 * j + 1, ("cand", j)): vn for j in range(10)}}),
          down=c.matrix("residual", 20, {**{(j, 2 * j): f for j in range(10)}, **{(j, 2 * j + 1): f for j in range(10)}}),
          name="l1.ffn")

    # output: argmin over residual[0:10] as logits = -residual[0:10]; non-digits never win
    c.unembed(linear(c.matrix(len(VOCAB), "residual", {(j, j): -1 for j in range(10)}),
                     bias=const([0] * 10 + [float("-inf")] * 4)))
    return c.build()
