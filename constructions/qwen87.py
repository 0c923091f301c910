"""qwen87 — bingbangboom-lab's 87-parameter two-layer Qwen3-style adder (`87_torch`).

The idea. A stock Qwen3 block (pre-RMSNorm, GQA attention with QK-norm and RoPE, SwiGLU
MLP) squeezed to d_model 5. The embedding has no parameters beyond one constant: token d
embeds as [100, d, 0, 0, 0]. Queries and keys are rank-1 maps of the constant coordinate
only, so after QK-norm (scale 16) every head is a fixed unit vector times 16 and RoPE at
one radian per position turns the score into a function of distance alone: attention
routes by position, never by content.

With the prompt `[0] a0..a9 [0 0] b0..b9 [0]`, the query that predicts digit i sits on the
previous answer digit o_{i-1}. Layer 0's two query heads fetch the *previous* pair a_{i-1},
b_{i-1} and add their digits (V copies `digit`) into `prev_sum`; the carry into digit i is
then a linear test, prev_sum > o_{i-1}, which the sparse SwiGLU — gate weights ~6e4, so
SiLU acts as a hard step — writes onto `carry`. Layer 1's heads fetch a_i and b_i into
`pair_sum`, and its SwiGLU turns pair_sum + carry into the digit signal on `prev_sum`.
(`adder compare` measures exactly this: see docs/compare.md.) The head is rank 2
(`lm_head = A @ B`, a rank-2 SVD of a fitted 10x5 matrix, as in the original).

Count: 71 trainable + 16 frozen-but-counted = 87 (the frozen ones: embedding constant 100,
per layer the V copy scale, two O weights, Q- and K-norm scales 16; the MLP down weights).
Correct in float32, the arithmetic it was published in. Several weights are given to 8
significant digits and the gate is ~6e4, so margins are thin: the projections keep the
original's order of operations (`x @ v.T @ u.T`, `(x * v).sum(-1)`).

Source: https://gist.github.com/bingbangboom-lab/ec367a6078e9ac2c5748dbbb78eae2a1 (PyTorch),
building on xangma's 177p.
"""

import numpy as np
from sympy import sqrt

from ..compiler.dsl import Construction, linear, rms, rope
from ..compiler.expr import cat, const, ones, place, reshape, stack, zeros
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


@register("qwen87", claimed_params=87, author="bingbangboom-lab",
          source="https://gist.github.com/bingbangboom-lab/ec367a6078e9ac2c5748dbbb78eae2a1",
          summary="2L Qwen3 d=5, 2 q heads / 1 kv, QK-norm 16, RoPE 1 rad, position-only attention, SwiGLU, rank-2 head")
def build():
    c = Construction(
        "qwen87", vocab=[str(d) for d in range(10)], dtype="float32",
        fmt=PromptFormat(prompt=(0, ("a", "lsb"), 0, 0, ("b", "lsb"), 0), out_order="lsb"),
        slots=[("const", 1), ("digit", 1), ("prev_sum", 1), ("carry", 1), ("pair_sum", 1)],
        layers=2, heads="2q/1kv", positions="RoPE (1 rad/position)",
        description="bingbangboom-lab 87_torch: Qwen3-style, rank-1 position-only Q/K, sparse SwiGLU, rank-2 head.",
    )
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
