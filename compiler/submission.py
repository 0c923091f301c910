"""Write an AdderBoard submission: one self-contained PyTorch file generated from a model.

`write_submission(model, output)` writes `codegen.model_source(model)`: a readable module
that imports only torch, defines `build_model()` and `add(model, a, b)`, and computes the
same logits as `model` bit for bit, so AdderBoard's own verify.py runs it unmodified, on a
machine without `adder`. `check_submission_output` is the path check it starts with (a
`.py` file in an existing folder, never overwritten without `force`); call it before any
long work that ends in an export.
"""

from __future__ import annotations

from pathlib import Path

from .codegen import model_source
from .errors import AdderError
from .files import check_writable, write_whole
from .module import AdderModel

SUFFIX = ".py"


def check_submission_output(output: Path, *, force: bool = False) -> None:
    """One-line `AdderError` unless `output` can be written: a `.py` name, an existing folder,
    and no file there already (unless `force`)."""
    output = Path(output)
    if output.suffix != SUFFIX:
        raise AdderError(f"a submission file must end in {SUFFIX}, got {output.name}")
    if not output.parent.is_dir():
        raise AdderError(f"no folder {output.parent} to write {output.name} into; create it first")
    if output.is_dir():
        raise AdderError(f"{output} is a folder; name the submission file to write")
    check_writable(output, force)  # exists without --force; a folder that cannot really be written


def write_submission(model: AdderModel, output: Path, *, force: bool = False) -> Path:
    """Write `model` as a self-contained AdderBoard submission file at `output`; returns its path.

    The path is checked first (`check_submission_output`); the file appears whole or not at all
    (written beside it, then renamed into place).
    """
    output = Path(output)
    check_submission_output(output, force=force)
    text = model_source(model)
    return write_whole(output, text)
