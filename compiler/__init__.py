"""The compiler, as a pipeline of passes, plus I/O and counting.

    exact scalars (scalars.py) -> expressions (expr.py, evaluated by evaluate.py)
    -> spec (spec.py, written with builder.py) -> validation (validate.py) -> module (module.py)

`compile_spec` (module.py) runs the last steps; checkpoints (checkpoint.py), the parameter
ledger (ledger.py), prompt formats (formats.py) and greedy decoding (decode.py) work on its
result.
"""

from .checkpoint import load, save
from .decode import add, generate, teacher_forced
from .errors import AdderError, CheckpointError, OperandError, SpecError
from .digits import MAX_ADDEND
from .formats import PromptFormat
from .ledger import ledger
from .module import AdderModel, compile_spec
from .spec import ModelSpec, spec_from_json, spec_to_json

__all__ = ["AdderError", "AdderModel", "CheckpointError", "MAX_ADDEND", "ModelSpec", "OperandError",
           "PromptFormat", "SpecError", "add", "compile_spec", "generate", "ledger", "load", "save",
           "spec_from_json", "spec_to_json", "teacher_forced"]
