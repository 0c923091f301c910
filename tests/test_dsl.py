"""The DSL's construction-time checks and the IR's JSON round trip."""

import json

import pytest

from adder.compiler.builder import Construction, rms
from adder.compiler.errors import SpecError
from adder.compiler.expr import param, zeros
from adder.compiler.formats import PromptFormat
from adder.compiler.spec import spec_from_json, spec_to_json
from adder.compiler.validate import find_problems

from conftest import CORE

FMT = PromptFormat(prompt=(0, ("a", "lsb"), 0, ("b", "lsb")))


def tiny(**over):
    """A one-block model with slots `const`, `digit`, `carry`; `over` replaces the MLP's matrices."""
    c = Construction("tiny", vocab=[str(d) for d in range(10)], fmt=FMT,
                     slots=[("const", 1), ("digit", 1), ("carry", 1)])
    e = c.param("embed", [[1, d, 0] for d in range(10)])
    w = c.param("w", 2.0)
    c.embed(e)
    up = over.get("up", c.matrix(2, "residual", {(0, "digit"): w}))
    down = over.get("down", c.matrix("residual", 2, {("carry", 0): 1}))
    c.mlp(up=up, down=down, norm=rms())
    c.unembed(over.get("head", c.matrix(10, "residual", {(i, "digit"): 1 for i in range(10)})))
    return c


def test_a_valid_construction_builds():
    spec = tiny().build()
    assert [n for n, _ in spec.slots] == ["const", "digit", "carry"]
    assert spec.d_model == 3


def test_reading_a_slot_before_it_is_written_is_an_error():
    c = tiny()
    with pytest.raises(SpecError, match="reads residual slot 'carry' before anything writes it"):
        c2 = tiny(up=c.matrix(2, "residual", {(0, "carry"): 1}))
        c2.build()


def test_unknown_symbol_unknown_slot_and_unused_parameter():
    with pytest.raises(SpecError, match="unknown symbol 'ghost'"):
        tiny(up=param("ghost", (2, 3))).build()
    with pytest.raises(SpecError, match="unknown residual slot 'nope'"):
        tiny().matrix(2, "residual", {(0, "nope"): 1})
    c = tiny()
    c.param("unused", 1.0)
    with pytest.raises(SpecError, match="never used"):
        c.build()


def test_projection_shape_mismatch_names_the_place():
    with pytest.raises(SpecError, match="up: weight 0 has shape"):
        tiny(up=zeros(2, 4)).build()
    with pytest.raises(SpecError, match="unembed: maps to 9 features, expected 10"):
        tiny(head=zeros(9, 3)).build()


def test_validation_reports_every_problem_on_one_line():
    c = tiny(head=zeros(9, 3))  # a head of the wrong width ...
    c.param("unused", 1.0)      # ... and a parameter nothing uses
    with pytest.raises(SpecError) as e:
        c.build()
    msg = str(e.value)
    assert msg.startswith("spec 'tiny' has 2 problems: (1) ") and "; (2) " in msg and "\n" not in msg
    assert "unembed: maps to 9 features, expected 10" in msg and "never used" in msg and "'unused'" in msg


def test_every_unknown_symbol_is_reported_not_only_the_first():
    with pytest.raises(SpecError, match=r"problems: \(1\) .*unknown symbol 'ghost'.*; \(2\) .*unknown symbol 'phantom'"):
        tiny(up=param("ghost", (2, 3)), down=param("phantom", (3, 2))).build()
    assert find_problems(tiny().build()) == []


def test_tying_is_reuse_of_one_parameter():
    with pytest.raises(SpecError, match="declared twice"):
        c = tiny()
        c.param("w", 1.0)


@pytest.mark.parametrize("name", CORE)
def test_spec_json_round_trip(name):
    from adder.constructions import build_spec

    spec = build_spec(name)
    text = json.dumps(spec_to_json(spec))  # plain JSON, no pickle
    back = spec_from_json(json.loads(text))
    assert back == spec
    assert spec_to_json(back) == spec_to_json(spec)


def test_malformed_spec_json_is_a_spec_error():
    from adder.constructions import build_spec

    d = spec_to_json(build_spec("param40"))
    d["spec_version"] = 99
    with pytest.raises(SpecError, match="version 99"):
        spec_from_json(d)
    d = spec_to_json(build_spec("param40"))
    d["blocks"][0]["layer"]["type"] = "Exec"
    with pytest.raises(SpecError, match="unknown block type"):
        spec_from_json(d)


def test_scale_at_is_checked_and_survives_the_json_round_trip():
    def attn(c, **kw):
        c.attention(q=c.matrix(2, "residual", {(0, "const"): 1, (1, "digit"): 1}), k=c.matrix(2, "residual", {(0, "const"): 1}),
                    v=c.matrix(2, "residual", {(0, "digit"): 1}), o=c.matrix("residual", 2, {("carry", 0): 1}),
                    head_dim=2, **kw)

    c = tiny()
    with pytest.raises(SpecError, match="scale_at must be"):
        attn(c, scale_at="k")
    with pytest.raises(SpecError, match="needs scale="):
        attn(c, divisor=2, scale_at="q")
    c = tiny()
    attn(c, scale=0.5, scale_at="q")
    spec = c.build()
    assert spec.blocks[-1].layer.scale_op == "mul_q"
    back = spec_from_json(json.loads(json.dumps(spec_to_json(spec))))
    assert back == spec and back.blocks[-1].layer.scale_op == "mul_q"
