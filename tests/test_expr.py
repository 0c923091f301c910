"""Exact scalars and tensor expressions: JSON round trips, whitelist, construction-time shape checks."""

import math

import pytest
import sympy
import torch
from sympy import E, Rational, exp, log, pi, sqrt

from adder.compiler.errors import SpecError
from adder.compiler.builder import rotation
from adder.compiler.evaluate import TORCH, evaluate, exact_tensor
from adder.compiler.expr import const, param, place, texpr_from_json, texpr_to_json
from adder.compiler.scalars import scalar_from_json, scalar_to_float, scalar_to_json


@pytest.mark.parametrize("x", [Rational(3, 10), 2 * pi / 19, log(10), exp(80), sqrt(2) / 2, -sympy.oo,
                               sympy.Float(0.1, 17), 2 * pi / 19 * (10 + Rational(3, 10)), E ** -40 / 10,
                               sympy.Integer(10) ** 10 + Rational(1, 10**11)])
def test_scalar_round_trip_is_exact(x):
    back = scalar_from_json(scalar_to_json(x))
    assert sympy.simplify(back - x) == 0 if x.is_finite else back == x


def test_extreme_constants_survive_to_float():
    assert scalar_to_float(exp(80)) == math.exp(80)
    assert scalar_to_float(sympy.Integer(10) ** 10 + Rational(1, 10**11)) == 1e10 + 1e-11
    assert scalar_to_float(sympy.Float(0.1, 17)) == 0.1
    assert scalar_to_float(-sympy.oo) == -math.inf


def test_scalar_whitelist_refuses_unknown_operations():
    with pytest.raises(SpecError, match="whitelist"):
        scalar_from_json({"o": "__import__", "a": [{"i": "1"}]})
    with pytest.raises(SpecError):
        scalar_to_json(sympy.gamma(sympy.Rational(1, 3)))
    with pytest.raises(SpecError, match="whitelist"):
        texpr_from_json({"op": "eval", "shape": []})


def test_shape_mismatch_is_caught_when_the_expression_is_built():
    a, b = param("a", (2, 3)), param("b", (2, 3))
    with pytest.raises(SpecError, match="matmul shape mismatch"):
        _ = a @ b
    with pytest.raises(SpecError, match="do not broadcast"):
        _ = a + param("c", (3, 2))
    with pytest.raises(SpecError, match="outside shape"):
        place((2, 2), {(2, 0): 1})


def test_tensor_expression_round_trip_and_evaluation():
    w = param("w", (2, 2))
    phase = param("phase", ())
    e = rotation(phase) @ w.T * 3 + const([[1, 0], [0, Rational(1, 2)]])
    back = texpr_from_json(texpr_to_json(e))
    env = {"w": torch.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=torch.float64), "phase": torch.tensor(0.3, dtype=torch.float64)}

    def leaf(n):
        if n.op == "param":
            return env[n.attrs["name"]]
        return exact_tensor(n.attrs["values"], n.shape)

    c, s = math.cos(0.3), math.sin(0.3)
    expected = torch.tensor([[c, -s], [s, c]], dtype=torch.float64) @ env["w"].T * 3 + torch.tensor([[1, 0], [0, 0.5]], dtype=torch.float64)
    for tree in (e, back):
        assert torch.allclose(evaluate(tree, leaf, TORCH), expected)
