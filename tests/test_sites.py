"""Named activation sites (`AdderModel.forward(cache=, hooks=)`): every site is reached and
recorded, reading them changes nothing (bit-identical logits for every registered
construction), and a hook's replacement is what the rest of the pass reads."""

import pytest
import torch

from adder.compiler.decode import teacher_forced
from adder.compiler.spec import Attention
from adder.constructions import REGISTRY

from conftest import as_tensors, official_cases

NAMES = sorted(REGISTRY.keys())


def _tokens(model, n=64):
    a, b = as_tensors(official_cases(n)[:n])
    fmt = model.spec.format
    return torch.cat([fmt.encode(a, b), fmt.answer(a, b)[:, :-1]], dim=1)


@pytest.mark.parametrize("name", NAMES)
def test_reading_every_site_changes_nothing(compiled, name):
    model = compiled(name)
    tokens = _tokens(model)
    with torch.no_grad():
        plain = model(tokens)
        cache, seen = {}, []
        hooks = {s: (lambda s: lambda t: (seen.append(s), t)[1])(s) for s in model.sites()}
        watched = model(tokens, cache=cache, hooks=hooks)
    assert torch.equal(plain, watched)
    assert list(cache) == model.sites() == seen  # every site, once, in the order the pass meets them
    B, T = tokens.shape
    for i, block in enumerate(model.spec.blocks):
        assert cache[f"resid.{i}"].shape == (B, T, model.spec.d_model)
        if isinstance(block.layer, Attention):
            pattern = cache[f"blocks.{i}.attn.pattern"]
            assert pattern.shape == (B, block.layer.n_heads, T, T)
            if block.layer.softmax == "softmax":
                assert torch.allclose(pattern.sum(-1).double(), torch.ones(()).double(), atol=1e-5)


def test_a_hook_patches_what_the_rest_of_the_pass_reads(compiled):
    """Zeroing param40's attention output leaves the residual as the embedding made it, and the model
    no longer adds; patching it back with the cached value restores the logits bit for bit."""
    model = compiled("param40")
    tokens = _tokens(model)
    with torch.no_grad():
        cache = {}
        logits = model(tokens, cache=cache)
        ablated = {}
        broken = model(tokens, cache=ablated, hooks={"blocks.0.attn.out": torch.zeros_like})
        assert torch.equal(ablated["resid.1"], ablated["resid.0"])
        assert not torch.equal(broken, logits)
        restored = model(tokens, hooks={"blocks.0.attn.out": lambda t: cache["blocks.0.attn.out"]})
    assert torch.equal(restored, logits)
    a, b = as_tensors(official_cases(64)[:64])
    assert teacher_forced(model, a, b).correct.all()


def test_an_unknown_site_is_refused(compiled):
    model = compiled("param40")
    with pytest.raises(KeyError, match="no activation site 'blocks.0.attn.probs'"):
        model(_tokens(model), hooks={"blocks.0.attn.probs": lambda t: t})
