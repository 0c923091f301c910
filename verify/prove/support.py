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


def unsupported(spec: ModelSpec) -> list[str]:
    """Why the prover cannot bound `spec`, one reason per operation without a bound rule ([]: it can)."""
    reasons = []
    if not any(isinstance(b.layer, Attention) for b in spec.blocks):
        reasons.append("the model has no attention layer")
    norms = [(f"{b.name}'s input norm", b.norm) for b in spec.blocks]
    norms += [(f"{b.name}'s q/k norm", n) for b in spec.blocks if isinstance(b.layer, Attention)
              for n in (b.layer.q_norm, b.layer.k_norm)]
    norms.append(("the final norm", spec.final_norm))
    for where, nm in norms:
        if nm is not None and nm.kind not in NORM_RULES:
            reasons.append(f"{where} is a {nm.kind} norm, which has no bound rule yet"
                           + (f" ({NO_RULE[('norm', nm.kind)]})" if ("norm", nm.kind) in NO_RULE else ""))
    for b in spec.blocks:
        if isinstance(b.layer, MLP) and b.layer.act not in ACTIVATION_RULES:
            reasons.append(f"{b.name}'s activation {b.layer.act!r} has no bound rule yet")
        if isinstance(b.layer, Attention):
            if b.layer.softmax not in SOFTMAX_RULES:
                reasons.append(f"{b.name}'s {b.layer.softmax} has no bound rule yet")
            if b.layer.rope is not None and b.layer.rope.convention not in ROTARY_RULES:
                reasons.append(f"{b.name}'s rotary convention {b.layer.rope.convention!r} has no bound rule yet")
    return list(dict.fromkeys(reasons))
