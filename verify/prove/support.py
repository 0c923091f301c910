"""Can the prover bound this model at all? A reading of the spec, before anyone waits.

Every operation of `AdderModel.forward` needs a bound rule (`layers.py`, `softmax.py`); a spec
that uses one without a rule (LayerNorm, an activation added to the module but not to the
prover) can only end `undecided`. `unsupported(spec)` lists each such use with where it sits,
so `adder info` says it up front and `prove` returns at once instead of searching first.
"""

from __future__ import annotations

from ...compiler.spec import MLP, Attention, ModelSpec
from .layers import ACTIVATION_RULES, NORM_RULES, ROTARY_RULES

#: Softmax variants `softmax.weights` bounds.
SOFTMAX_RULES = ("softmax", "softmax1")

#: The kinds of each family of compiler/ops.py that have a bound rule ...
RULES = {"activation": ACTIVATION_RULES, "norm": NORM_RULES, "softmax": SOFTMAX_RULES, "rotary": ROTARY_RULES}
#: ... and, for each kind without one, why (tests/test_operations.py: every kind is in one of the two).
NO_RULE = {("norm", "layer"): "LayerNorm subtracts the mean before it scales, and its rule (the range of a "
                              "centred, normalised box, with the float error of both steps) is not written yet"}


def uses(spec: ModelSpec) -> list[tuple[str, str, str]]:
    """Every operation kind the spec names: (family, kind, where it is, in words)."""
    out = [("norm", b.norm.kind, f"{b.name}'s input norm is a {b.norm.kind} norm") for b in spec.blocks if b.norm]
    for b in spec.blocks:
        layer = b.layer
        if isinstance(layer, MLP):
            out.append(("activation", layer.act, f"{b.name}'s activation {layer.act!r}"))
            continue
        out += [("norm", n.kind, f"{b.name}'s q/k norm is a {n.kind} norm") for n in (layer.q_norm, layer.k_norm) if n]
        out.append(("softmax", layer.softmax, f"{b.name}'s {layer.softmax}"))
        if layer.rope is not None:
            out.append(("rotary", layer.rope.convention, f"{b.name}'s rotary convention {layer.rope.convention!r}"))
    if spec.final_norm is not None:
        out.append(("norm", spec.final_norm.kind, f"the final norm is a {spec.final_norm.kind} norm"))
    return out


def unsupported(spec: ModelSpec) -> list[str]:
    """Why the prover cannot bound `spec`, one reason per operation without a bound rule ([]: it can)."""
    reasons = [] if any(isinstance(b.layer, Attention) for b in spec.blocks) else ["the model has no attention layer"]
    for family, kind, where in uses(spec):
        if kind not in RULES[family]:
            why = NO_RULE.get((family, kind))
            reasons.append(f"{where}, which has no bound rule yet" + (f" ({why})" if why else ""))
    return list(dict.fromkeys(reasons))
