"""What a target string names, decided once: a construction, a checkpoint, or a Python file.

Every command that takes a TARGET, training's `--warm-start` and seed sweeps call
`resolve(text)`. It classifies the string without running anything:

* a ``.py`` file is read with `ast`, never executed: one that defines `build_model` is an
  AdderBoard **submission** (it runs as a black box, in `verify`), one that defines `build()`
  or calls `register(...)` is a user **construction file**;
* a string ending in ``.pt``, holding a path separator or naming an existing path is a
  **checkpoint**;
* anything else is a registered **construction** name (a typo gets a did-you-mean).

`Target.model(dtype, device)` then compiles or loads the model for the kinds that are models.
Every problem is a one-line `AdderError`.
"""

from __future__ import annotations

import ast
import os
from dataclasses import dataclass
from pathlib import Path

from ..compiler import checkpoint
from ..compiler.errors import AdderError, CheckpointError
from ..compiler.pysource import read_python, top_level_names
from ..compiler.module import AdderModel, compile_spec
from .registry import build_spec, get

#: The kinds of target.
CONSTRUCTION = "construction"
CHECKPOINT = "checkpoint"
SUBMISSION = "submission"
CONSTRUCTION_FILE = "construction file"

CHECKPOINT_SUFFIX = ".pt"
PYTHON_SUFFIX = ".py"
#: What an AdderBoard submission defines (the black-box runner also needs `add`).
SUBMISSION_ENTRY = "build_model"
#: What a user construction file defines, or calls to register its constructions.
CONSTRUCTION_ENTRY, REGISTER_CALL = "build", "register"
#: Devices a model can be put on ("cuda:N" names one GPU).
DEVICES = ("cpu", "cuda")


@dataclass(frozen=True)
class Target:
    """A resolved target: `text` as the user wrote it, its `kind`, a `name`, and the file if any."""

    text: str
    kind: str
    name: str
    path: Path | None = None

    def model(self, dtype: str | None = None, device: str = "cpu") -> AdderModel:
        """The model this target names, compiled or loaded in `dtype` (its own if None) on `device`."""
        device = check_device(device)
        if self.kind == CONSTRUCTION:
            return compile_spec(build_spec(self.name), dtype=dtype, device=device)
        if self.kind == CHECKPOINT:
            return checkpoint.load(self.path, dtype=dtype, device=device)
        if self.kind == SUBMISSION:
            raise AdderError(f"{self.text} is a submission file, which runs as a black box (only `adder verify` "
                             "runs it); use a construction name or a checkpoint instead")
        raise AdderError(f"{self.text} is a construction file; user construction files are not supported yet "
                         "(register the construction in adder/constructions/ instead)")


def resolve(text: str) -> Target:
    """Classify `text` (see the module docstring); unknown names and missing files are one-line errors."""
    path = Path(text)
    if text.endswith(PYTHON_SUFFIX):
        return Target(text, _python_kind(path), path.stem, path)
    if text.endswith(CHECKPOINT_SUFFIX) or os.sep in text or path.exists():
        if not path.exists():
            raise CheckpointError(f"no checkpoint at {path}; build one with `adder build NAME -o {path}`")
        return Target(text, CHECKPOINT, path.stem, path)
    return Target(text, CONSTRUCTION, get(text).name)


def check_device(device: str) -> str:
    """`device` if this machine has it ("cpu", "cuda", "cuda:N"), else a one-line error."""
    if device not in DEVICES and not device.startswith("cuda:"):
        raise AdderError(f"--device must be cpu or cuda, got {device!r}")
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise AdderError("--device cuda was asked for but no CUDA GPU is available here; use --device cpu")
    return device


def _python_kind(path: Path) -> str:
    """SUBMISSION or CONSTRUCTION_FILE, read from the file's syntax tree (the file does not run)."""
    if not path.is_file():
        raise AdderError(f"no file at {path}; a .py target is an AdderBoard submission or a construction file")
    tree = read_python(path)
    defined = top_level_names(tree)
    if SUBMISSION_ENTRY in defined:
        return SUBMISSION
    calls = {getattr(n.func, "id", getattr(n.func, "attr", None)) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    if CONSTRUCTION_ENTRY in defined or REGISTER_CALL in calls:
        return CONSTRUCTION_FILE
    raise AdderError(f"{path} defines no {SUBMISSION_ENTRY}(); an AdderBoard submission needs build_model() -> "
                     f"(model, metadata) and add(model, a, b) -> int, a construction file {CONSTRUCTION_ENTRY}() "
                     f"or @{REGISTER_CALL}(...)")
