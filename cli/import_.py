"""`adder import`: a published trained checkpoint, in its author's format, to an adder checkpoint."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from .common import console, writable


def run(file: Path = typer.Argument(..., help="The published checkpoint (a torch state dict or an .npz)."),
        recipe: str = typer.Option(..., "--as", help="The recipe whose layout the file holds (see docs/import.md)."),
        output: Path = typer.Option(..., "-o", "--output", help="Where to write the adder checkpoint."),
        force: bool = typer.Option(False, "--force", help="Overwrite an existing file.")):
    """Read a published checkpoint into a recipe's spec and write it as an adder checkpoint."""
    from ..compiler import checkpoint
    from ..compiler.ledger import ledger
    from ..train.importers import import_checkpoint

    writable(output, force)
    model, meta = import_checkpoint(file, recipe)
    path = checkpoint.save(model, output, force=force, meta=meta)
    console.print(f"wrote [bold]{escape(str(path))}[/] ({escape(model.spec.name)} as {escape(recipe)}, "
                  f"{ledger(model).adderboard} AdderBoard params, source sha256 {meta['source_sha256'][:12]}, "
                  f"weights sha256 {checkpoint.weights_hash(model)[:12]})", highlight=False)
