"""`adder export`: one self-contained PyTorch file (only torch imported) that AdderBoard's verify.py runs."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from .common import console


def run(target: str = typer.Argument(..., help="Checkpoint path, construction name or construction file."),
        output: Path = typer.Option(..., "-o", "--output", help="Submission file (.py) to write."),
        force: bool = typer.Option(False, "--force", help="Overwrite an existing file.")):
    """Write the model as a readable PyTorch file with build_model()/add(); its logits equal adder's bit for bit."""
    from ..compiler.submission import check_submission_output, write_submission
    from ..constructions.targets import resolve

    check_submission_output(output, force=force)  # before any work
    path = write_submission(resolve(target).model(), output, force=force)
    console.print(f"wrote [bold]{escape(str(path))}[/] (needs only torch); check it with AdderBoard's "
                  f"`python verify.py {escape(str(path))}`")
