"""`adder prove`: a sound proof that a compiled model adds correctly on all 10^20 inputs.

Layers, lowest first: `intervals` (outward-rounded interval arithmetic) and `rigorous`
(exp in arb balls) -> `floatmodel` (the float32/float64 error model) -> `weights` (the
numbers the module uses) -> `automaton`, `layout`, `split` (which inputs a case holds) ->
`layers`, `softmax` (one bound rule per operation; `support` reads which exist) ->
`propagate`, `pipeline` (a step's cases through the model) -> `search` (finds the proof) and
`certificate` (checks it, without `search`) -> `libm` (library assumptions) -> `api` (`prove`)
and `report`. See docs/prove.md for the theorem, the method and the error model.

The names below are loaded on first use, so that importing one module of the prover (the
support check `adder info` runs) does not load the whole of it.
"""

from importlib import import_module

_WHERE = {"prove": ".api", "CertificateError": ".certificate", "check": ".certificate", "read": ".certificate",
          "ProofReport": ".report", "render": ".report"}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(import_module(_WHERE[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
