"""What a target string names, decided once: a construction, a checkpoint, or a Python file.

Every command that takes a TARGET, training's `--warm-start` and seed sweeps call
`resolve(text)`. It classifies the string without running anything:

* a ``.py`` file is read with `ast`, never executed: one that defines `build_model` is an
  AdderBoard **submission** (it runs as a black box, in `verify`), one that defines `build()`
  or calls `register(...)` is a user **construction file** (``file.py:NAME`` picks one of
  the constructions it registers);
* a string ending in ``.pt``, holding a path separator or naming an existing path is a
  **checkpoint**;
* anything else is a registered **construction** name (a typo gets a did-you-mean).

`Target.model(dtype, device)` then compiles or loads the model for the kinds that are models,
`Target.spec()` builds the spec of a construction or construction file. Building a
construction file **runs its code** (`constructions/userfile.py`). Every problem is a
one-line `AdderError`.
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
from ..compiler.spec import ModelSpec
from .registry import build_spec, get
from .userfile import BUILD_FUNCTION, PICK_SEPARATOR, construction_spec

#: The kinds of target.
CONSTRUCTION = "construction"
CHECKPOINT = "checkpoint"
SUBMISSION = "submission"
CONSTRUCTION_FILE = "construction file"

CHECKPOINT_SUFFIX = ".pt"
PYTHON_SUFFIX = ".py"
#: What an AdderBoard submission defines (the black-box runner also needs `add`).
SUBMISSION_ENTRY = "build_model"
#: What a user construction file calls to register its constructions (or it defines BUILD_FUNCTION).
REGISTER_CALL = "register"
#: Devices a model can be put on ("cuda:N" names one GPU).
DEVICES = ("cpu", "cuda")


@dataclass(frozen=True)
class Target:
    """A resolved target: `text` as the user wrote it, its `kind`, a `name`, the file if any, and
    for ``file.py:NAME`` the construction `pick`ed from the file."""

    text: str
    kind: str
    name: str
    path: Path | None = None
    pick: str | None = None

    def model(self, dtype: str | None = None, device: str = "cpu") -> AdderModel:
        """The model this target names, compiled or loaded in `dtype` (its own if None) on `device`.
        A construction file runs (see `spec`)."""
        device = check_device(device)
        if self.kind == CHECKPOINT:
            return checkpoint.load(self.path, dtype=dtype, device=device)
        if self.kind == SUBMISSION:
            raise AdderError(f"{self.text} is a submission file, which runs as a black box (only `adder verify` "
                             "runs it); use a construction name or a checkpoint instead")
        return compile_spec(self.spec(), dtype=dtype, device=device)

    def spec(self) -> ModelSpec:
        """The spec a construction or a construction file builds. A construction file is loaded with
        importlib, which runs its code with the user's rights (`constructions/userfile.py`)."""
        if self.kind == CONSTRUCTION:
            return build_spec(self.name)
        if self.kind == CONSTRUCTION_FILE:
            return construction_spec(self.path, self.pick)
        raise AdderError(f"{self.text} is a {self.kind} file, not a construction: name a construction "
                         "(`adder list`) or a construction file instead")


def resolve(text: str) -> Target:
    """Classify `text` (see the module docstring); unknown names and missing files are one-line errors."""
    file, sep, pick = text.rpartition(PICK_SEPARATOR)
    if sep and pick and file.endswith(PYTHON_SUFFIX):
        target = resolve(file)
        if target.kind != CONSTRUCTION_FILE:
            raise AdderError(f"{text}: {PICK_SEPARATOR}{pick} picks a construction from a construction file, "
                             f"and {file} is a {target.kind}")
        return Target(text, CONSTRUCTION_FILE, pick, target.path, pick)
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
    if BUILD_FUNCTION in defined or REGISTER_CALL in calls:
        return CONSTRUCTION_FILE
    raise AdderError(f"{path} defines no {SUBMISSION_ENTRY}(); an AdderBoard submission needs build_model() -> "
                     f"(model, metadata) and add(model, a, b) -> int, a construction file {BUILD_FUNCTION}() "
                     f"or @{REGISTER_CALL}(...)")
