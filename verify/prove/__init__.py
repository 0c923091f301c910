"""`adder prove`: a sound proof that a compiled model adds correctly on all 10^20 inputs.

Layers, lowest first: `intervals` (outward-rounded interval arithmetic) and `rigorous`
(exp in arb balls) -> `floatmodel` (the float32/float64 error model) -> `weights` (the
numbers the module uses) -> `automaton`, `layout`, `split` (which inputs a case holds) ->
`layers`, `softmax` (one bound rule per operation) -> `propagate`, `pipeline` (a step's
cases through the model) -> `search` (finds the proof) and `certificate` (checks it,
without `search`) -> `libm` (library assumptions) -> `api` (`prove`) and `report`.
See docs/prove.md for the theorem, the method and the error model.
"""

from .api import prove
from .certificate import CertificateError, check, read
from .report import ProofReport, render

__all__ = ["CertificateError", "ProofReport", "check", "prove", "read", "render"]
