"""`adder export`: an AdderBoard submission file that loads a checkpoint through adder."""

from __future__ import annotations

from pathlib import Path

import typer

from ..compiler.errors import AdderError
from .common import console


def run(target: str = typer.Argument(..., help="Checkpoint path."),
        output: Path = typer.Option(..., "-o", "--output", help="Submission file to write."),
        force: bool = typer.Option(False, "--force", help="Overwrite an existing file.")):
    """Write an AdderBoard submission file (build_model/add) that loads the checkpoint through adder."""
    from ..compiler.submission import write_submission
    from ..constructions.targets import CHECKPOINT, resolve

    checkpoint = resolve(target)
    if checkpoint.kind != CHECKPOINT:
        raise AdderError(f"export needs a checkpoint file, and {target} is a {checkpoint.kind}; "
                         f"write one first (`adder build NAME -o FILE.pt` or `adder train`)")
    checkpoint.model()  # fail early on a bad checkpoint
    write_submission(checkpoint.path, output, force=force)
    console.print(f"wrote [bold]{output}[/]; check it with AdderBoard's `python verify.py {output}`")
