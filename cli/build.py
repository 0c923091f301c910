"""`adder build`: compile a construction (registered, or from the user's own file) and write its checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape

from .common import console, dtype_name, writable


def run(target: str = typer.Argument(..., help="Construction name (see `adder list`), or a construction file "
                                               "FILE.py or FILE.py:NAME (its code runs)."),
        output: Optional[Path] = typer.Option(None, "-o", "--output", help="Checkpoint path [NAME.pt, NAME the "
                                                                           "construction's]."),
        dtype: Optional[str] = typer.Option(None, help="float32 or float64 [the construction's own]."),
        force: bool = typer.Option(False, "--force", help="Overwrite an existing file.")):
    """Compile a construction and write its checkpoint."""
    from ..compiler import checkpoint
    from ..compiler.ledger import ledger
    from ..compiler.module import compile_spec
    from ..constructions.targets import CHECKPOINT_SUFFIX, resolve

    if output is not None:
        writable(output, force)  # before any work; the default name is checked once the spec names it
    spec = resolve(target).spec()
    model = compile_spec(spec, dtype=dtype)
    path = checkpoint.save(model, output or Path(spec.name + CHECKPOINT_SUFFIX), force=force)
    led = ledger(model)
    console.print(f"wrote [bold]{escape(str(path))}[/] ({escape(spec.name)}, {dtype_name(model)}, "
                  f"{led.adderboard} AdderBoard / {led.strict} strict params, "
                  f"sha256 {checkpoint.weights_hash(model)[:12]})")
