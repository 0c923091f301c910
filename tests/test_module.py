"""AdderModel: counts read from the module, dtype/device choice, tying, keep_last, decoding."""

import pytest
import torch

from adder.compiler import compile_spec, ledger
from adder.compiler.decode import add, generate, teacher_forced
from adder.compiler.errors import SpecError
from adder.constructions import build_spec

from conftest import CORE, as_tensors, official_cases, official_correct

# what the module must count (wonderfall27 is listed as 27p but stores 26 learned values: see its docstring)
COUNTED = {"param40": 40, "tinyadder36": 36, "qwen87": 87, "zcbtrak6": 6, "lokimorty10": 10, "wonderfall27": 26}


@pytest.mark.parametrize("name", CORE)
def test_adderboard_count_is_the_sum_of_parameters(compiled, name):
    m = compiled(name)
    led = ledger(m)
    assert led.adderboard == sum(p.numel() for p in m.parameters()) == COUNTED[name]
    assert led.strict >= led.adderboard
    assert sum(r.scalars for r in led.rows) == led.adderboard


def test_frozen_but_counted_parameters_do_not_train(compiled):
    m = compiled("qwen87")
    frozen = sum(p.numel() for p in m.parameters() if not p.requires_grad)
    assert frozen == 16 and sum(p.numel() for p in m.parameters() if p.requires_grad) == 71


def test_tied_weights_are_one_parameter_and_get_gradient_from_both_uses():
    m = compile_spec(build_spec("param40")).train()
    fmt = m.spec.format
    a, b = as_tensors([(123, 456), (9_999_999_999, 1)])
    tokens = torch.cat([fmt.encode(a, b), fmt.answer(a, b)[:, :-1]], 1)
    m(tokens).sum().backward()
    w_qk = m.param("attn.w_qk")
    assert w_qk.grad is not None and w_qk.grad.abs().sum() > 0
    # the embedding is tied to the head: the head's use alone reaches it
    emb = m.param("embed")
    assert emb.grad is not None and emb.grad.abs().sum() > 0


def test_parameters_are_reached_by_their_declared_names(compiled):
    m = compiled("param40")
    named = dict(m.named_spec_params())
    assert list(named) == [p.name for p in m.spec.params]  # declaration order
    assert sum(p.numel() for p in named.values()) == sum(p.numel() for p in m.parameters())
    assert m.param("attn.w_qk") is named["attn.w_qk"]
    with pytest.raises(SpecError, match="no parameter 'attn.w_kq'.*Did you mean attn.w_qk"):
        m.param("attn.w_kq")


@pytest.mark.parametrize("name", CORE)
def test_keep_last_equals_slicing_the_full_output(compiled, name):
    m = compiled(name)
    fmt = m.spec.format
    a, b = as_tensors(official_cases(20)[:30])
    tokens = torch.cat([fmt.encode(a, b), fmt.answer(a, b)[:, :-1]], 1)
    with torch.no_grad():
        full, last = m(tokens)[:, -fmt.out_digits:], m(tokens, keep_last=fmt.out_digits)
    assert torch.equal(full.argmax(-1), last.argmax(-1))
    if name != "tinyadder36":
        assert torch.equal(full, last)
    # tinyadder36 cancels 1e17-sized terms: a matmul over fewer query rows may sum in another
    # order and move its logits by ~1e-4 relative; the decisions (argmax) must not move.


def test_dtype_is_chosen_at_compile_time(compiled):
    m64 = compiled("param40", "float64")
    assert m64.dtype == torch.float64
    fmt = m64.spec.format
    out = m64(fmt.encode(torch.tensor([5]), torch.tensor([7])))
    assert out.dtype == torch.float64
    assert add(m64, 5, 7) == [12]


@pytest.mark.parametrize("name", CORE)
def test_official_sample_through_the_generic_decoder(compiled, name):
    """A 300-case sample of the official suite through greedy decoding (full run: slow test)."""
    m = compiled(name)
    pairs = official_cases(290)
    got = add(m, [a for a, _ in pairs], [b for _, b in pairs])
    assert got == [a + b for a, b in pairs]


@pytest.mark.slow
@pytest.mark.parametrize("name", CORE)
def test_full_official_suite(compiled, name):
    assert official_correct(compiled(name)) == 10_010


def test_teacher_forcing_agrees_with_greedy_decoding_on_a_broken_model():
    """Break the carry hinge: teacher-forced verdicts must match what greedy decoding outputs."""
    m = compile_spec(build_spec("param40"))
    with torch.no_grad():
        m.param("mlp.w1")[0, 0] *= 1.03
    pairs = [(9_999_999_999, 1), (5, 5), (1234, 8766), (0, 0), (4_999_999_999, 5_000_000_001)] + official_cases(100)
    a, b = as_tensors(pairs)
    tf = teacher_forced(m, a, b)
    greedy = add(m, a, b)
    assert [g == x + y for g, (x, y) in zip(greedy, pairs)] == tf.correct.tolist()
    assert not tf.correct.all()  # the mutant really is broken
    assert ((tf.margin > 0).all(1) == tf.correct).all() | (tf.margin == 0).any(1).any()


def test_encoding_places_digits_where_the_format_says():
    fmt = build_spec("param40").format
    t = fmt.encode(torch.tensor([1234567890]), torch.tensor([9876543210]))[0].tolist()
    assert len(t) == 31 and t[0] == 0 and t[30] == 0
    assert t[1:11] == [0, 9, 8, 7, 6, 5, 4, 3, 2, 1]  # a, least significant first
    assert t[11:20] == [0] * 9
    assert t[20:30] == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]  # b_i is 19 positions after a_i
    ans = fmt.answer(torch.tensor([1234567890]), torch.tensor([9876543210]))[0].tolist()
    assert fmt.decode(torch.tensor([ans])) == [1234567890 + 9876543210]
    fmt36 = build_spec("tinyadder36").format
    t = fmt36.encode(torch.tensor([12]), torch.tensor([3]))[0].tolist()
    assert t == [11] + [0] * 8 + [1, 2] + [13] + [0] * 9 + [3] + [10]


def test_generate_is_generic_greedy(compiled):
    m = compiled("qwen87")
    fmt = m.spec.format
    prompt = fmt.encode(torch.tensor([77]), torch.tensor([23]))
    out = generate(m, prompt, fmt.out_digits)
    seq = prompt
    for _ in range(fmt.out_digits):  # the same loop, written out
        with torch.no_grad():
            seq = torch.cat([seq, m(seq)[:, -1:].argmax(-1)], 1)
    assert torch.equal(out, seq[:, prompt.shape[1]:])


def test_scale_at_q_scales_the_queries_before_the_dot_product():
    """scale_at="q" computes softmax((s q) . k) (MLX's order), bit for bit; "scores" (s (q . k))
    is the same map up to rounding."""
    from adder.compiler.builder import Construction
    from adder.compiler.formats import PromptFormat

    def build(scale_at):
        c = Construction("att", vocab=[str(d) for d in range(10)], fmt=PromptFormat(prompt=(0, ("a", "lsb"), 0, ("b", "lsb"))),
                         slots=[("const", 1), ("digit", 1), ("out", 1)])
        c.embed(c.param("embed", [[1, d / 7, 0] for d in range(10)]))
        c.attention(q=c.param("q", [[0.3, 1.1, 0], [-0.7, 0.9, 0]]), k=c.param("k", [[1.3, -0.2, 0], [0.4, 0.6, 0]]),
                    v=c.param("v", [[0, 1, 0], [1, 0, 0]]), o=c.param("o", [[0, 0], [0, 0], [1, 1]]),
                    head_dim=2, scale=0.7071067811865476, scale_at=scale_at)
        c.unembed(c.param("head", [[0, 1, d / 3] for d in range(10)]))
        return compile_spec(c.build())

    mq, ms = build("q"), build("scores")
    tokens = torch.randint(0, 10, (64, 21), generator=torch.Generator().manual_seed(0))
    W = {k: p.detach() for k, p in mq.named_spec_params()}
    x = W["embed"][tokens]
    s = torch.tensor(0.7071067811865476, dtype=torch.float32)
    q, k, v = x @ W["q"].T, x @ W["k"].T, x @ W["v"].T
    scores = (s * q) @ k.transpose(-1, -2)
    scores = scores.masked_fill(torch.ones(21, 21, dtype=torch.bool).triu(1), float("-inf"))
    h = x + (torch.softmax(scores, -1) @ v) @ W["o"].T
    with torch.no_grad():
        assert torch.equal(mq(tokens), h @ W["head"].T)
        assert torch.allclose(mq(tokens), ms(tokens), rtol=1e-5, atol=1e-5)


def test_silu_mlx_is_silu_evaluated_as_mlx_does():
    from adder.compiler.module import ACTIVATIONS

    x = torch.cat([torch.randn(20000) * s for s in (0.1, 3, 30, 300)] + [torch.tensor([0.0, -0.0, 100.0, -100.0, 1e30, -1e30])])
    y = 1 / (1 + torch.exp(x.abs()))
    assert torch.equal(ACTIVATIONS["silu_mlx"](x), x * torch.where(x < 0, y, 1 - y))  # MLX: x * sigmoid(x), split at 0
    assert torch.allclose(ACTIVATIONS["silu_mlx"](x), torch.nn.functional.silu(x), rtol=1e-6, atol=1e-30)
    xg = x.clone().requires_grad_(True)
    ACTIVATIONS["silu_mlx"](xg).sum().backward()
    assert torch.isfinite(xg.grad).all()  # no inf * 0 where e^|x| overflows
