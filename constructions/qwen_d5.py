"""The Qwen3 d_model 5 family: bingbangboom-lab 87p and 148p, xangma 177p and 197p.

The idea. A stock Qwen3 block (pre-RMSNorm, GQA attention with QK-norm and RoPE, SwiGLU
MLP) squeezed to d_model 5. Token d embeds as [100, d, 0, 0, 0]. Queries and keys are
rank-1 maps of the constant coordinate only, so after QK-norm (scale 16) every head is a
fixed unit vector times 16 and RoPE at one radian per position turns the score into a
function of distance alone: attention routes by position, never by content.

With the prompt `[0] a0..a9 [0 0] b0..b9 [0]`, the query that predicts digit i sits on the
previous answer digit o_{i-1}. Layer 0's two query heads fetch the *previous* pair a_{i-1},
b_{i-1} and add their digits (V copies `digit`) into `prev_sum`; the carry into digit i is
then a linear test, prev_sum > o_{i-1}, which the sparse SwiGLU — gate weights ~6e4, so
SiLU acts as a hard step — writes onto `carry`. Layer 1's heads fetch a_i and b_i into
`pair_sum`, and its SwiGLU turns pair_sum + carry into the digit signal on `prev_sum`.
(`adder compare` measures exactly this: see docs/compare.md.) The head is rank 2
(`lm_head = A @ B`, a rank-2 SVD of a fitted 10x5 matrix) or, in the 197p, that matrix.

One network, four parameterisations. xangma built it first (MLX, on mlx_lm's Qwen3,
after N8Programs' script) and published two steps of a compression ladder; bingbangboom-lab
ported it to PyTorch and compressed the accounting further. Every member computes the
same function from the same fitted numbers; they differ in what is a parameter, what is
shared, and whose arithmetic rounds it. `member` writes the circuit once:

* every projection rank-1 (`proj="rank1"`): q, k, v, o, up and down are each `u v^T`
  with their own u and v, evaluated as `sum(x * v) * u`; the embedding factored as
  `A[10x2] @ B[2x5]` with A = [1, d] and B = [100 e_const, e_digit]; layer 0's gate
  reads only const, digit and prev_sum (a 2x3 block); no norm weights (RMSNorm scale 1,
  QK-norm scale 16, hard-coded).
  - `xangma197` (MLX): full 10x5 head. 30 embed + 2 x 48 rank-1 factors + 6 + 15 gates
    + 50 head = 197.
  - `xangma177` (MLX): the rank-2 head, 20 + 10 = 30 instead of 50: 177.
* `qwen148` (`proj="shared"`, PyTorch): xangma177 with the rank-1 factors shared where
  they coincide: one input vector e_const for every Q and K, one e_digit for both V's,
  one [1, 0, 1, 0] summing the two heads for both O's (14), and two frozen-but-counted
  vectors, V's output [1, 0] and up's broadcast [1, 1, 1] (5). Per layer q_u 4, k_u 2,
  o_u 5, up_v 5, down_u 5, down_v 3 plus the gates (6, 15): 69. With embed 30 and head
  30: 143 trainable + 5 frozen = 148.
* `qwen87` (`proj="sparse"`, PyTorch): every structural 0/1 and the constant 100 become
  frozen-but-counted scalars or hard-coded sparsity: 71 trainable + 16 frozen = 87 (the
  frozen ones: embedding constant 100, per layer the V copy scale, two O weights, Q- and
  K-norm scales 16; the MLP down weights).

All are correct in float32, the arithmetic they were published in. Several weights are
given to 8 significant digits and the gate is ~6e4, so margins are thin: each member keeps
its original's order of operations (`x @ v.T @ u.T` or `(x * v).sum(-1) * u`, division by
sqrt 2, interleaved RoPE as complex multiplication for the PyTorch members, MLX's
cos/sin RoPE, scaled-query attention and `x * sigmoid(x)` for the MLX ones).

Sources: bingbangboom-lab 87_torch
https://gist.github.com/bingbangboom-lab/ec367a6078e9ac2c5748dbbb78eae2a1 and 148_torch
https://gist.github.com/bingbangboom-lab/3594f00a1aa0b668e70a92c396d0f0d1 (PyTorch);
xangma https://gist.github.com/xangma/1c2a1b2f9ca871b1f15646eed60d10ab (177p) and
https://gist.github.com/xangma/c538a7a9d415f16e61f7bb26ae5cf6b0 (197p) (MLX).
Written here from their mathematics; each member's outputs were compared with its original
(2,000 random pairs, the 110 pairs (10^k - 1, 10^j), the official 10,010: identical; logits
bit-identical to the PyTorch originals and to a float32 transliteration of the MLX ones).
"""

import numpy as np
from sympy import sqrt

from ..compiler.builder import Construction, linear, rms, rope
from ..compiler.expr import cat, const, ones, reshape, stack, zeros
from ..compiler.formats import PromptFormat
from .registry import register

# The fitted 10x5 output matrix of the original; the head is its rank-2 truncated SVD.
LM_HEAD = np.array([
    [5.5779090e00, 3.1322198e00, -4.0438358e02, 6.2589108e01, 9.9358273e-01],
    [5.0814748e00, 2.4687927e00, -3.1444955e02, 4.8671352e01, 7.7272820e-01],
    [3.6916721e00, 1.7657869e00, -2.2455742e02, 3.4757641e01, 5.5075526e-01],
    [1.4084998e00, 1.0232025e00, -1.3470717e02, 2.0847967e01, 3.2766387e-01],
    [-1.7680415e00, 2.4103954e-01, -4.4898785e01, 6.9423370e00, 1.0345399e-01],
    [-5.8379521e00, -5.8070201e-01, 4.4867714e01, -6.9592528e00, -1.2187435e-01],
    [-1.0801232e01, -1.4420221e00, 1.3459233e02, -2.0856800e01, -3.4832114e-01],
    [-1.6657881e01, -2.3429208e00, 2.2427509e02, -3.4750309e01, -5.7588643e-01],
    [-2.3407900e01, -3.2833982e00, 3.1391595e02, -4.8639774e01, -8.0457014e-01],
    [-3.1051287e01, -4.2634540e00, 4.0351492e02, -6.2525200e01, -1.0343723e-00],
], dtype=np.float32)

# Fitted weights, as published (float32 values).
L0_Q = [0.98502123, 0.17243294, 0.96630472, -0.25740093]
L0_K = [-0.31672141, -0.94851863]
L0_GATE = [[-3.3532020e-01, -1.3412670e03, 6.0353305e04],
           [-1.3743691e01, -1.3418693e03, 6.0353277e04]]
L0_UP = [1.4898191e-02, 6.6922739e-04, 2.9977213e-05]
L1_Q = [-0.25507239, 0.96692199, 0.17478994, 0.98460573]
L1_K = [0.32702553, -0.94501549]
L1_GATE = [[-4.3951669e-01, 5.6323919e00, 4.9838150e-01, 1.3435575e03, 6.0357680e04],
           [-1.2112466e02, 3.2923722e-01, -5.0313854e00, 1.3449166e03, 6.0357438e04],
           [-1.3453412e02, -2.6000220e-01, -5.6458039e00, 1.3450677e03, 6.0357410e04]]
L1_UP = [1.4899401e-02, 6.5471046e-04, 6.8268733e-04, -1.6779384e-04, 2.9817384e-05]

QK_NORM_SCALE = 16
D = 5


def _f32(x) -> list:
    """Published values are float32: keep exactly the float32 numbers the original loads."""
    return np.asarray(x, dtype=np.float32).astype(np.float64).tolist()


def _lowrank_head(rank: int = 2):
    u, s, vt = np.linalg.svd(LM_HEAD, full_matrices=False)
    a = (u[:, :rank] * s[:rank]).astype(np.float32)
    b = vt[:rank, :].astype(np.float32)
    return _f32(a), _f32(b)


DIGITS = list(range(10))
SLOTS = [("const", 1), ("digit", 1), ("prev_sum", 1), ("carry", 1), ("pair_sum", 1)]
FMT = PromptFormat(prompt=(0, ("a", "lsb"), 0, 0, ("b", "lsb"), 0), out_order="lsb")


def _new(name: str, description: str) -> Construction:
    return Construction(name, vocab=[str(d) for d in DIGITS], dtype="float32", fmt=FMT, slots=SLOTS,
                        layers=2, heads="2q/1kv", positions="RoPE (1 rad/position)", description=description)


def _onehot(c: Construction, slot: str, scale=1) -> list:
    return [scale if i == c.dim(slot) else 0 for i in range(D)]


def _rank1(u, v) -> "linear":
    """`sum(x * v) * u`: the rank-1 map u v^T in the published order of operations."""
    return linear([reshape(v, 1, v.shape[0]), reshape(u, u.shape[0], 1)], reduce="sum")


@register("qwen87", claimed_params=87, author="bingbangboom-lab",
          source="https://gist.github.com/bingbangboom-lab/ec367a6078e9ac2c5748dbbb78eae2a1",
          summary="2L Qwen3 d=5, 2 q heads / 1 kv, QK-norm 16, RoPE 1 rad, position-only attention, SwiGLU, rank-2 head")
def build():
    c = _new("qwen87", "bingbangboom-lab 87_torch: Qwen3-style, rank-1 position-only Q/K, sparse SwiGLU, rank-2 head.")
    base = c.param("embed.base", 100, frozen=True, note="every token's `const` coordinate")
    table = stack([base * ones(10), const(list(range(10))), zeros(10), zeros(10), zeros(10)], axis=1)
    c.embed(table)

    def attention(layer: int, q_u, k_u, out_slot: str):
        p = f"l{layer}.attn"
        q = c.param(f"{p}.q", _f32(q_u), note="rank-1: reads `const` only")
        k = c.param(f"{p}.k", _f32(k_u), note="rank-1: reads `const` only")
        copy = c.param(f"{p}.v_copy", 1, frozen=True)
        o0 = c.param(f"{p}.o0", 1, frozen=True)
        o2 = c.param(f"{p}.o2", 1, frozen=True)
        qn = c.param(f"{p}.q_norm", QK_NORM_SCALE, frozen=True)
        kn = c.param(f"{p}.k_norm", QK_NORM_SCALE, frozen=True)
        c.attention(
            heads=2, kv_heads=1, head_dim=2, divisor=sqrt(2), norm=rms(1e-6),
            q=cat([reshape(q, 4, 1), zeros(4, D - 1)], axis=1),
            k=cat([reshape(k, 2, 1), zeros(2, D - 1)], axis=1),
            v=c.matrix(2, "residual", {(0, "digit"): copy}),
            o=c.matrix("residual", 4, {(out_slot, 0): o0, (out_slot, 2): o2}),  # sum of both heads' first dim
            q_norm=rms(1e-6, weight=qn), k_norm=rms(1e-6, weight=kn),
            rope=rope(omegas=[1], convention="interleaved"), name=f"l{layer}.attn")

    # layer 0
    attention(0, L0_Q, L0_K, "prev_sum")
    g0 = c.param("l0.mlp.gate", _f32(L0_GATE), note="sparse: reads const, digit, prev_sum")
    u0 = c.param("l0.mlp.up", _f32(L0_UP), note="rank-1, broadcast to two units")
    d0 = c.param("l0.mlp.down", [1, -1], frozen=True)
    c.mlp(norm=rms(1e-6), act="silu",
          gate=cat([cat([g0, zeros(2, 2)], axis=1), zeros(1, D)], axis=0),
          up=linear([cat([reshape(u0, 1, 3), zeros(1, 2)], axis=1), const([[1], [1], [0]])], reduce="sum"),
          down=linear(c.matrix("residual", 3, {("carry", 0): d0[0], ("carry", 1): d0[1]}), reduce="sum"),
          name="l0.mlp")

    # layer 1
    attention(1, L1_Q, L1_K, "pair_sum")
    g1 = c.param("l1.mlp.gate", _f32(L1_GATE))
    u1 = c.param("l1.mlp.up", _f32(L1_UP), note="rank-1, broadcast to three units")
    d1 = c.param("l1.mlp.down", [1, -10, 10], frozen=True)
    c.mlp(norm=rms(1e-6), act="silu", gate=g1,
          up=linear([reshape(u1, 1, 5), ones(3, 1)], reduce="sum"),
          down=linear(c.matrix("residual", 3, {("prev_sum", j): d1[j] for j in range(3)}), reduce="sum"),
          name="l1.mlp")

    a, b = _lowrank_head()
    A = c.param("lm_head.A", a)
    B = c.param("lm_head.B", b)
    c.unembed([B, A], final_norm=rms(1e-6))  # logits = (norm(h) @ B^T) @ A^T
    return c.build()


def member(name: str, *, proj: str, head: str, runtime: str, description: str = ""):
    """A rank-1 member of the family (qwen87 above is the sparse one).

    proj: "rank1" gives every projection its own u and v; "shared" shares Q/K's input
        vector (e_const), V's input (e_digit) and O's input ([1, 0, 1, 0]) across layers and
        projections and freezes V's output [1, 0] and up's broadcast [1, 1, 1].
    head: "rank2" (A @ B, the SVD truncation) or "full" (the fitted 10x5 matrix).
    runtime: "torch" (division by sqrt 2, interleaved RoPE by complex multiplication, SiLU
        as x / (1 + e^-x)) or "mlx" (mlx_lm's Qwen3: queries scaled by 2^-1/2 before q.k,
        RoPE with theta 10000 by cos/sin, SiLU as x * sigmoid(x)).
    """
    if proj not in ("rank1", "shared") or head not in ("rank2", "full") or runtime not in ("torch", "mlx"):
        raise ValueError(f"member {name}: bad options {proj!r}, {head!r}, {runtime!r}")
    c = _new(name, description)
    A = c.param("embed.A", [[1, d] for d in DIGITS])
    B = c.param("embed.B", [_onehot(c, "const", 100), _onehot(c, "digit")])
    c.embed(A @ B)

    e_const, e_digit, both_heads = _onehot(c, "const"), _onehot(c, "digit"), [1, 0, 1, 0]
    if proj == "shared":
        qk_v = c.param("attn.qk_v", e_const, note="Q and K read `const`, both layers")
        v_v = c.param("attn.v_v", e_digit, note="V reads `digit`, both layers")
        o_v = c.param("attn.o_v", both_heads, note="O sums the two heads' first coordinates")
        v_u = c.param("attn.v_u", [1, 0], frozen=True)
        up_u = c.param("mlp.up_u", [1, 1, 1], frozen=True)
    if runtime == "torch":  # scores / sqrt 2; q, k as complex numbers times e^{i pos}
        attn_opts = dict(divisor=sqrt(2), rope=rope(omegas=[1], convention="interleaved"))
        silu = "silu"
    else:  # mlx_lm: (2^-1/2 q) . k; theta 10000 with head_dim 2 is 1 rad/position, by cos/sin
        attn_opts = dict(scale=1 / sqrt(2), scale_at="q", rope=rope(theta=10000, convention="half"))
        silu = "silu_mlx"
    qk_norm = rms(1e-6, weight=QK_NORM_SCALE)

    layers = [(L0_Q, L0_K, "prev_sum", [1, 1, 0], L0_UP + [0, 0], "carry", [1, -1, 0]),
              (L1_Q, L1_K, "pair_sum", [1, 1, 1], L1_UP, "prev_sum", [1, -10, 10])]
    for i, (q_u, k_u, out_slot, up_u_val, up_v_val, down_slot, down_v_val) in enumerate(layers):
        p = f"l{i}.attn"
        q_u, k_u = c.param(f"{p}.q_u", _f32(q_u)), c.param(f"{p}.k_u", _f32(k_u))
        o_u = c.param(f"{p}.o_u", _onehot(c, out_slot))
        if proj == "shared":
            q, k, v, o = _rank1(q_u, qk_v), _rank1(k_u, qk_v), _rank1(v_u, v_v), _rank1(o_u, o_v)
        else:
            q = _rank1(q_u, c.param(f"{p}.q_v", e_const))
            k = _rank1(k_u, c.param(f"{p}.k_v", e_const))
            v = _rank1(c.param(f"{p}.v_u", [1, 0]), c.param(f"{p}.v_v", e_digit))
            o = _rank1(o_u, c.param(f"{p}.o_v", both_heads))
        c.attention(heads=2, kv_heads=1, head_dim=2, norm=rms(1e-6), q=q, k=k, v=v, o=o,
                    q_norm=qk_norm, k_norm=qk_norm, name=p, **attn_opts)

        p = f"l{i}.mlp"
        if i == 0:  # reads const, digit, prev_sum only: a 2x3 block, the third unit's gate is 0
            g = c.param(f"{p}.gate", _f32(L0_GATE), note="sparse: reads const, digit, prev_sum")
            gate = cat([cat([g, zeros(2, 2)], axis=1), zeros(1, D)], axis=0)
        else:
            gate = c.param(f"{p}.gate", _f32(L1_GATE))
        up_u = up_u if proj == "shared" else c.param(f"{p}.up_u", up_u_val)
        up = _rank1(up_u, c.param(f"{p}.up_v", _f32(up_v_val)))
        down = _rank1(c.param(f"{p}.down_u", _onehot(c, down_slot)), c.param(f"{p}.down_v", down_v_val))
        c.mlp(norm=rms(1e-6), act=silu, gate=gate, up=up, down=down, name=p)

    if head == "rank2":
        a, b = _lowrank_head()
        A, B = c.param("lm_head.A", a), c.param("lm_head.B", b)
        c.unembed([B, A], final_norm=rms(1e-6))  # logits = (norm(h) @ B^T) @ A^T
    else:
        c.unembed(c.param("lm_head", _f32(LM_HEAD)), final_norm=rms(1e-6))
    return c.build()


@register("qwen148", claimed_params=148, author="bingbangboom-lab",
          source="https://gist.github.com/bingbangboom-lab/3594f00a1aa0b668e70a92c396d0f0d1",
          summary="qwen87's network with rank-1 projections sharing their factors, factored embedding, rank-2 head")
def build_qwen148():
    return member("qwen148", proj="shared", head="rank2", runtime="torch",
                  description="bingbangboom-lab 148_torch: the 87p network, rank-1 factors shared across layers.")


@register("xangma177", claimed_params=177, author="xangma",
          source="https://gist.github.com/xangma/1c2a1b2f9ca871b1f15646eed60d10ab",
          summary="the qwen87 network on mlx_lm's Qwen3: every projection rank-1, factored embedding, rank-2 head")
def build_xangma177():
    return member("xangma177", proj="rank1", head="rank2", runtime="mlx",
                  description="xangma 177p (MLX): rank-1 projections, factored embedding, sparse layer-0 gate, rank-2 head.")


@register("xangma197", claimed_params=197, author="xangma",
          source="https://gist.github.com/xangma/c538a7a9d415f16e61f7bb26ae5cf6b0",
          summary="xangma177 with the full fitted 10x5 output head")
def build_xangma197():
    return member("xangma197", proj="rank1", head="full", runtime="mlx",
                  description="xangma 197p (MLX): rank-1 projections, factored embedding, sparse layer-0 gate, full head.")
