"""Every operation kind a spec can name, walked through every place that implements it.

compiler/ops.py holds each kind (activation, norm, softmax variant, rotary convention) once:
its torch forward, its high-precision forward, its exported form, the library functions a
proof assumes. For each kind, a small random-weight model that uses it must give: the same
logits in float64 and in 50-digit arithmetic (verify/exact.py), bit-identical logits from its
exported file (compiler/codegen.py), and either prover bounds that contain its float32 margins
(verify/prove) or a named reason why it has no rule. Removing any one place of any one kind
fails this file.
"""

import dataclasses
import importlib.util

import numpy as np
import pytest
import torch

from adder.compiler import compile_spec
from adder.compiler.builder import Construction, rms, rope
from adder.compiler.formats import PromptFormat
from adder.compiler.ops import FAMILIES
from adder.compiler.spec import ACTIVATIONS, NORM_KINDS, ROPE_CONVENTIONS, SOFTMAX_KINDS, Norm
from adder.compiler.submission import write_submission
from adder.verify import checker
from adder.verify.exact import ExactModel
from adder.verify.prove import libm
from adder.verify.prove.automaton import path_of
from adder.verify.prove.inner import bound_inner
from adder.verify.prove.layers import Ctx
from adder.verify.prove.layout import StepLayout
from adder.verify.prove.pipeline import bound_cases
from adder.verify.prove.split import root_cases
from adder.verify.prove.support import NO_RULE, RULES, unsupported
from adder.verify.prove.weights import ModelWeights

KINDS = [(family, kind) for family, ops in FAMILIES.items() for kind in ops]
FMT = PromptFormat(prompt=(0, ("a", "lsb"), 0, ("b", "lsb"), 0), out_order="lsb")
RNG = np.random.default_rng(0)


def test_the_table_holds_exactly_the_kinds_a_spec_can_name():
    spec_kinds = {"activation": ACTIVATIONS, "norm": NORM_KINDS, "softmax": SOFTMAX_KINDS, "rotary": ROPE_CONVENTIONS}
    assert {f: set(ops) for f, ops in FAMILIES.items()} == {f: set(k) for f, k in spec_kinds.items()}
    for family, kind in KINDS:
        op = FAMILIES[family][kind]
        assert op.name == kind and op.title and op.export and callable(op.torch) and callable(op.exact)
        assert set(op.library) <= set(libm.CHECKS), f"{family} {kind}: no library check for {op.library}"
        has_rule, why = kind in RULES[family], NO_RULE.get((family, kind))
        assert has_rule != bool(why), f"{family} {kind}: a bound rule or a reason why not, exactly one"


def model_using(family: str, kind: str, dtype: str):
    """A one-layer random-weight model (RMSNorm, RoPE half, softmax, a ReLU MLP) with `kind` in
    place of its default of `family`."""
    c = Construction(f"{family}-{kind}", vocab=[str(d) for d in range(10)], slots=[("x", 4)], fmt=FMT)
    c.embed(c.free("embed", [10, 4]))
    c.attention(norm=rms(1e-6), heads=1, head_dim=2, q=c.free("q", [2, 4]), k=c.free("k", [2, 4]),
                v=c.free("v", [2, 4]), o=c.free("o", [4, 2]), rope=rope(theta=10000))
    c.mlp(norm=rms(1e-6), up=c.free("up", [3, 4]), down=c.free("down", [4, 3]), act="relu")
    c.unembed(c.free("head", [10, 4]), final_norm=rms(1e-6))
    spec = c.build()
    att, mlp = spec.blocks[0], spec.blocks[1]
    if family == "activation":
        mlp.layer = dataclasses.replace(mlp.layer, act=kind)
    elif family == "norm":
        att.norm = Norm(kind=kind, eps=1e-6)
    elif family == "softmax":
        att.layer = dataclasses.replace(att.layer, softmax=kind)
    else:
        att.layer = dataclasses.replace(att.layer, rope=dataclasses.replace(att.layer.rope, convention=kind))
    return compile_spec(spec, dtype=dtype, seed=5)


def tokens(n: int, k: int = 11):
    a = torch.tensor(RNG.integers(0, 10**10, n))
    b = torch.tensor(RNG.integers(0, 10**10, n))
    return a, b, torch.cat([FMT.encode(a, b), FMT.answer(a, b)[:, :k - 1]], 1)


@pytest.mark.parametrize("family,kind", KINDS)
def test_torch_and_high_precision_forwards_agree(family, kind):
    model = model_using(family, kind, "float64")
    _, _, toks = tokens(3)
    with torch.no_grad():
        got = model(toks).numpy()
    exact = ExactModel(model)
    for row, want in zip(toks.tolist(), got):
        ref = np.array(exact.logits(row), dtype=np.float64)
        assert np.abs(ref - want).max() <= 1e-9 * (1 + np.abs(ref).max()), (family, kind)


@pytest.mark.parametrize("family,kind", KINDS)
def test_the_exported_file_computes_the_same_logits_bit_for_bit(family, kind, tmp_path):
    model = model_using(family, kind, "float32")
    path = write_submission(model, tmp_path / "m.py")
    spec = importlib.util.spec_from_file_location(f"exported_{family}_{kind}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    exported, _ = module.build_model()
    _, _, toks = tokens(64)
    with torch.no_grad():
        assert torch.equal(exported(toks), model(toks)), (family, kind)


@pytest.mark.parametrize("family,kind", KINDS)
def test_the_prover_bounds_contain_float32_margins_or_say_why_not(family, kind):
    """Step 0, every root case bounded once; sampled inputs' float32 margins lie above their case's bound."""
    model = model_using(family, kind, "float32")
    missing = unsupported(model.spec)
    if kind not in RULES[family]:
        assert missing and any(NO_RULE[(family, kind)] in m for m in missing)
        return
    assert not missing
    mw = ModelWeights(model)
    ctx = Ctx(mw, mw.arithmetic)
    layout = StepLayout(FMT, 10, 0)
    roots = root_cases(layout)
    with np.errstate(all="ignore"):
        bounds = bound_cases(layout, roots.cases, roots.query_token, roots.target, ctx, bound_inner(layout, ctx))
    a, b, toks = tokens(200, k=1)
    with torch.no_grad():
        logits = model(toks)[:, -1].double().numpy()
    for i in range(len(a)):
        pairs, carries = path_of(int(a[i]), int(b[i]))
        root = int(np.flatnonzero(roots.cases.contains(pairs, carries))[0])
        y = int(roots.target[root])
        margin = logits[i, y] - np.delete(logits[i], y).max()
        assert bounds.worst[root] <= margin, (family, kind, int(a[i]), int(b[i]))
    # the library functions the rules met are the ones the table declares (what libm then checks)
    declared = {fn for f, k in uses_kinds(model.spec) for fn in FAMILIES[f][k].library}
    assert set(ctx.ranges) == declared, (family, kind, sorted(ctx.ranges), sorted(declared))


def uses_kinds(spec) -> set[tuple[str, str]]:
    """(family, kind) of every operation a spec names."""
    from adder.verify.prove.support import uses

    return {(f, k) for f, k, _ in uses(spec)}


@pytest.mark.parametrize("family,kind", KINDS)
def test_the_independent_checker_has_a_rule_or_names_the_kind(family, kind):
    named = checker.unsupported(model_using(family, kind, "float32").spec)
    assert not named or any(kind in reason for reason in named), (family, kind, named)
