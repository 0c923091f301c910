"""Named parts that several hand-coded constructions build from (as Tracr's `lib.py` names its
building blocks): each written once, with why it works, so a construction file reads as the
circuit it describes. A part returns exactly the weights (or spec pieces) the file would have
written, operation for operation, so the compiled logits stay bit-identical.

* `hinge_pair`: two ReLU units on the same input, `width` apart; their difference
  relu(x - t) - relu(x - t - w) is 0 below t, w above t + w and a ramp between: a step of
  height w when the input moves by at least w across the threshold (the carry and the wrap
  detectors of the sinusoidal-position models, param40's carry).
* `parabolic_table`: the tied embedding rows [C - q d^2, +-d]: a constant level C that every
  token carries, lowered by a small parabola, and the digit itself. Read back through the same
  table (tied unembedding, after a norm that rescales the two coordinates), a residual
  ~ [C, +-s] gives logits C^2 - q C d^2 +- s d, a downward parabola in d peaking at s
  (param40 and its tied descendants, jacobli99's 93p).
* `parabolic_head`: logits lin d z + quad d^2 over the digits d of one read-out z; with
  lin = 2, quad = -1 it is 2 d z - d^2 = z^2 - (z - d)^2, a downward parabola in d that peaks at
  the digit nearest z (the decoders of cosminscn's and lichengliu03's models).
* `reading_query`: the query of a RoPE head that reads the token `o / omega` positions back.
  Keys carry the constant direction (k = g e0 at every position); rotary turns position p by
  p omega, so a query g' (cos o, -sin o) = g' R(-o) e0 at position p scores key j at
  g g' cos(omega (p - j) - o): largest where omega (p - j) = o, i.e. the key o / omega back. The
  head attends by position alone, and V copies that position's digit (jacobli99's five heads,
  the Qwen3 d=3 model's four, the RoPE-19 family's one; param40 writes the same query as
  R(-phi) applied to its key).
"""

from __future__ import annotations

from sympy import cos, sin

from ..compiler import expr
from ..compiler.builder import linear
from ..compiler.expr import TExpr, const, stack
from ..compiler.spec import Linear


def hinge_pair(weights: list, threshold, width) -> list[tuple[list, object]]:
    """Two ReLU units reading `weights` . x, with biases -threshold and -(threshold + width):
    rows (weights, bias) of an MLP's first layer; the second layer takes their difference."""
    return [(weights, -threshold), (weights, -(threshold + width))]


def parabolic_table(level, curvature, sign: int) -> list[list]:
    """The ten rows [level - curvature d^2, sign d] (exact values, d = 0..9)."""
    return [[level - curvature * d**2, sign * d] for d in range(10)]


def parabolic_head(readout: TExpr, lin: TExpr, quad: TExpr, reduce: str = "matmul") -> Linear:
    """The unembedding `logits_d = lin d (readout . x) + quad d^2`, as a chain: the read-out
    [1, d_model], then the digit column lin * d [10, 1], plus the bias quad d^2."""
    d = const(list(range(10)))
    return linear([readout, stack([lin * d], axis=1)], reduce=reduce, bias=quad * d * d)


def reading_query(offset, gain=1) -> tuple:
    """(gain cos o, -gain sin o) for a digit-reading head turned back by `offset` radians: exact
    sympy values for a number, the model's own cos / sin for a learned angle (a TExpr)."""
    if isinstance(offset, TExpr):
        c, s = expr.cos(offset), expr.sin(offset)
    else:
        c, s = cos(offset), sin(offset)
    return (c, -s) if gain == 1 else (gain * c, -gain * s)
