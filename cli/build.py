"""`adder build`: compile a construction and write its checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .common import console, dtype_name


def run(name: str = typer.Argument(..., help="Construction name (see `adder list`)."),
        output: Optional[Path] = typer.Option(None, "-o", "--output", help="Checkpoint path [NAME.pt]."),
        dtype: Optional[str] = typer.Option(None, help="float32 or float64 [the construction's own]."),
        force: bool = typer.Option(False, "--force", help="Overwrite an existing file.")):
    """Compile a construction and write its checkpoint."""
    from ..compiler import checkpoint
    from ..compiler.ledger import ledger
    from ..compiler.module import compile_spec
    from ..constructions import build_spec
    from ..constructions.targets import CHECKPOINT_SUFFIX

    model = compile_spec(build_spec(name), dtype=dtype)
    path = checkpoint.save(model, output or Path(name + CHECKPOINT_SUFFIX), force=force)
    led = ledger(model)
    console.print(f"wrote [bold]{path}[/] ({name}, {dtype_name(model)}, "
                  f"{led.adderboard} AdderBoard / {led.strict} strict params, "
                  f"sha256 {checkpoint.weights_hash(model)[:12]})")

