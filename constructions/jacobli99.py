"""jacobli99's one-layer adders (28p and 93p): five query heads, one shared key/value head, RoPE at one radian.

The idea. Prompt `[0] a0..a9 [0 0] b0..b9 [0]` (least significant first, 24 tokens), answer
least significant first, d_model 2. A digit d embeds as [C - (eps/2) d^2, d]: a large
constant with a tiny parabola on coordinate 0 (`const`), the digit itself on coordinate 1
(`digit`). Every head's query and the one shared key read only `const`, so attention routes
by position alone: RoPE turns position p by p radians, head h's query is pre-turned by its
offset o_h, and its score against position s is ~ QK^2 C^2 cos(t - o_h - s) / sqrt 2, which
is exactly maximal at s = t - o_h. Integers never come back to a multiple of 2 pi, so the
best competitor within the 35-token window is 25 positions away (cos 25 = 0.9912); with
QK = 256 the gap is ~4e8 in the score and every softmax is exactly one-hot in float32.
The shared value copies `digit`. At the position t = 23 + k that emits sum digit s_k the
five heads fetch (offsets 0, 23, 11, 22, 10): the token itself (s_{k-1}, the previous answer
digit, or the final 0 of the prompt when k = 0), a_{k-1}, b_{k-1}, a_k and b_k (zeros where
the index runs off the operand). O writes

    const += s_{k-1} - a_{k-1} - b_{k-1} = c_{k-1} - 10 c_k   =: u in {0, 1, -9, -10}
    digit += a_k + b_k - s_{k-1}        (cancelling the residual copy of the token)

so `const` now says whether a carry c_k went into digit k and `digit` holds a_k + b_k.
A four-unit ReLU MLP of two hinge pairs finishes: with z = C - const = -u + (eps/2) s_{k-1}^2,
relu(z - 8) - relu(z - 9) is exactly c_k (z is near 0 or -1 without a carry, near 9 or 10
with one) and is added to `digit`; relu(2z + 20 digit - 188) - relu(2z + 20 digit - 189) is exactly
[a_k + b_k + c_k >= 10] (2z + 20 digit = 20 (a_k + b_k + c_k) - 2 c_{k-1} + ~0, i.e. <= 180 or
>= 198) and subtracts 10. `digit` is then s_k. Decoding is the tied table read back with
the output scale [1/C, eps]: logit(d) = (const/C)(C - (eps/2) d^2) + eps digit d, a downward
parabola in d peaking at `digit` (the factor const/C = 1 + u/C moves the peak by < 1%).

Constants. C = 1000 (the constant level), eps = 5e-4 (parabola curvature; the logit gap
between neighbouring digits is eps/2 = 2.5e-4, four float32 ulps at 1000; after rounding
the verifier's worst margin is 1.2e-4), QK = 256 (score sharpness, above), the five
offsets are the distances to the five tokens read, the hinge positions 8/9 and 188/189 sit
between the values they separate, the MLP gains are 1 (carry) and 10 (wrap). Correct in
float32, the arithmetic the originals run in.

Two members, one circuit:

* `jacobli99_28p`: everything derived from shared scalars: the ten digit values (embedding
  and decode), C, eps, QK, the six non-zero O weights, three MLP input weights (-1 for both
  carry units, -2 and 20 for both wrap units), two MLP output gains (1, 10) = 24, and the four
  hinge positions 8, 9, 188, 189 of the bias [C - 8, C - 9, 2C - 188, 2C - 189], which the
  published file computes from hard-coded numbers and its author counts ("4 that I forgot
  to count") = 28. The head offsets are a buffer in the original and hard-coded here
  (`adder info` lists them in the strict count); its causal-mask buffer -1e4 is our
  module's causal mask (see the 93p note). The query directions are cos/sin of the
  offsets evaluated in the model's arithmetic, as in the original.
* `jacobli99_93p`: the same weights stored as dense tensors: embedding 20 (tied with the
  decode) + output scale 2 + Q 20 + K 4 + V 4 + O 20 + W1 8 + b1 4 + W2 8 + b2 2 = 92.
  The board's 93rd is the causal-mask fill value -1e4, which the original keeps in an
  `nn.Parameter` and adds to future scores. Our attention is causal by construction (-inf),
  so that value has no counterpart and `adder info` counts 92. (Against scores of ~4.6e10 the
  original's -1e4 hides nothing: its prompt positions do see later tokens, which greedy
  decoding never reads; at every answer position the exact target wins either way. With
  the mask swapped for that -1e4 bias, our module's logits equal the original's everywhere.)

Source: https://gist.github.com/SeuperHakkerJa/da3050739bea97aabd86ee0d7d5ef689 (28p) and
https://gist.github.com/SeuperHakkerJa/9d615964d2284a9a699b5a24cf19e69d (93p), PyTorch,
float32, by jacobli99 (GitHub SeuperHakkerJa). Written here from their mathematics. Each
member was compared with its original on 2,110 pairs (2,000 random, (10^k - 1, 10^j)) and the
official 10,010: identical answers, and bit-identical logits at every answer position.
"""

from sympy import Rational, sqrt

from ..compiler.builder import Construction, linear, rope
from ..compiler.expr import cat, const, place, reshape, stack, zeros
from ..compiler.formats import PromptFormat
from .parts import parabolic_table, reading_query
from .registry import register

C = 1000                        # the constant level on `const`
EPS = Rational(1, 2000)         # parabola curvature of the tied table (published as 5e-4)
QK = 256                        # query/key gain: score ~ QK^2 C^2 cos(.) / sqrt 2 ~ 4.6e10
OFFSETS = (0, 23, 11, 22, 10)   # per head, how far back it reads: self, a_{k-1}, b_{k-1}, a_k, b_k
O_SIGNS = ((0, 0, +1), (0, 1, -1), (0, 2, -1),   # (row, head, weight): const += self - a_{k-1} - b_{k-1}
           (1, 0, -1), (1, 3, +1), (1, 4, +1))   #                      digit += -self + a_k + b_k
W1_CARRY, W1_WRAP, W1_DIGIT = -1, -2, 20        # MLP input weights on (const, digit)
HINGES = (8, 9, 188, 189)       # hinge positions: bias = [C, C, 2C, 2C] - HINGES
LEVEL = (1, 1, 2, 2)            # multiples of C in that bias (2C: the wrap units read 2 const)
GAIN_CARRY, GAIN_WRAP = 1, 10   # MLP output gains on `digit`: +carry, -10 * wrap
DIGITS = list(range(10))
HEADS, HEAD_DIM = len(OFFSETS), 2


def _o_dense() -> list:
    """O as a [2, 10] table: each head's first coordinate (its value) into `const` / `digit`."""
    o = [[0] * (HEADS * HEAD_DIM) for _ in range(2)]
    for row, head, w in O_SIGNS:
        o[row][HEAD_DIM * head] = w
    return o


def member(name: str, *, dense: bool, description: str):
    """The circuit; `dense` stores every weight tensor whole (93p), else derived from shared scalars (28p)."""
    c = Construction(
        name, vocab=[str(d) for d in DIGITS], dtype="float32",
        fmt=PromptFormat(prompt=(0, ("a", "lsb"), 0, 0, ("b", "lsb"), 0), out_order="lsb"),
        slots=[("const", 1), ("digit", 1)], layers=1, heads="5q/1kv", positions="RoPE (1 rad/position)",
        description=description,
    )
    if dense:
        E = c.param("embed", parabolic_table(C, EPS / 2, +1), note="tied table [C - (eps/2) d^2, d]")
        scale = c.param("out_scale", [Rational(1, C), EPS], note="decode scale [1/C, eps]")
        W_q = c.param("attn.q", [[v, 0] for o in OFFSETS for v in reading_query(o, QK)],
                      note="per head QK (cos o, -sin o) on `const`")
        W_k = c.param("attn.k", [[QK, 0], [0, 0]], note="shared key: QK * const")
        W_v = c.param("attn.v", [[0, 1], [0, 0]], note="shared value: digit")
        W_o = c.param("attn.o", _o_dense())
        W1 = c.param("mlp.w1", [[W1_CARRY, 0], [W1_CARRY, 0], [W1_WRAP, W1_DIGIT], [W1_WRAP, W1_DIGIT]])
        b1 = c.param("mlp.b1", [lv * C - t for lv, t in zip(LEVEL, HINGES)])
        W2 = c.param("mlp.w2", [[0, 0, 0, 0], [GAIN_CARRY, -GAIN_CARRY, -GAIN_WRAP, GAIN_WRAP]])
        b2 = c.param("mlp.b2", [0, 0])
        up, down = linear(W1, bias=b1), linear(W2, bias=b2)
    else:
        dv = c.param("embed.digits", DIGITS, note="digit values, embedding and decode")
        level = c.param("embed.c", C, note="the constant level C")
        eps = c.param("decode.eps", EPS, note="parabola curvature")
        qk = c.param("attn.qk", QK, note="query/key gain")
        o = c.param("attn.o", [w for _, _, w in O_SIGNS], note="the six non-zero O weights")
        w_carry = c.param("mlp.w1_a", W1_CARRY, note="carry units' weight on const")
        w_wrap = c.param("mlp.w1_b", W1_WRAP, note="wrap units' weight on const")
        w_digit = c.param("mlp.w1_c", W1_DIGIT, note="wrap units' weight on digit")
        g_carry = c.param("mlp.w2_s1", GAIN_CARRY, note="carry gain")
        g_wrap = c.param("mlp.w2_s10", GAIN_WRAP, note="wrap gain")
        hinge = c.param("mlp.hinges", list(HINGES), note="hinge positions below [C, C, 2C, 2C]")
        E = stack([level - (eps / 2) * (dv * dv), dv], axis=1)            # [10, 2]
        scale = stack([1 / level, eps])
        offs = const(list(OFFSETS))
        q_dir = stack(list(reading_query(offs)), axis=1) * qk              # [5, 2], in the model's arithmetic
        W_q = cat([reshape(q_dir, HEADS * HEAD_DIM, 1), zeros(HEADS * HEAD_DIM, 1)], axis=1)
        W_k = place((2, 2), {(0, 0): qk})
        W_v = const([[0, 1], [0, 0]])
        W_o = place((2, HEADS * HEAD_DIM), {(row, HEAD_DIM * head): o[i] for i, (row, head, _) in enumerate(O_SIGNS)})
        W1 = place((4, 2), {(0, 0): w_carry, (1, 0): w_carry, (2, 0): w_wrap, (3, 0): w_wrap,
                            (2, 1): w_digit, (3, 1): w_digit})
        b1 = const(list(LEVEL)) * level - hinge
        W2 = place((2, 4), {(1, 0): g_carry, (1, 1): -g_carry, (1, 2): -g_wrap, (1, 3): g_wrap})
        up, down = linear(W1, bias=b1), linear(W2)

    c.embed(E)
    c.attention(heads=HEADS, kv_heads=1, head_dim=HEAD_DIM, rope=rope(omegas=[1]), divisor=sqrt(2),
                q=W_q, k=W_k, v=W_v, o=W_o)
    c.mlp(up=up, down=down, act="relu")
    D = place((2, 2), {(0, 0): scale[0], (1, 1): scale[1]})
    c.unembed([D, E])              # logits = (h * [1/C, eps]) @ E^T
    return c.build()


@register("jacobli99_28p", claimed_params=28, author="jacobli99",
          source="https://gist.github.com/SeuperHakkerJa/da3050739bea97aabd86ee0d7d5ef689",
          summary="1L d=2, 5 query heads / 1 KV, RoPE 1 rad, position-only routing, two ReLU hinge pairs, "
                  "parabolic tied decode; weights derived from shared scalars")
def jacobli99_28p():
    return member("jacobli99_28p", dense=False,
                  description="jacobli99 28p: 5q/1kv RoPE-1rad digit routing, tied hinge MLP, tied parabolic decode.")


@register("jacobli99_93p", claimed_params=93, author="jacobli99",
          source="https://gist.github.com/SeuperHakkerJa/9d615964d2284a9a699b5a24cf19e69d",
          summary="jacobli99_28p's circuit with every weight tensor stored dense (board 93 counts the mask value)")
def jacobli99_93p():
    return member("jacobli99_93p", dense=True,
                  description="jacobli99 93p: the 28p circuit with dense Q/K/V/O, MLP and tied table.")
