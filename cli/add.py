"""`adder add`: add two numbers with a model (generic greedy decoding), optionally with the top-2 logits."""

from __future__ import annotations

from typing import Optional

import typer

from .common import console, table

TRACE_COLUMNS = ("step", "token", "logit", "runner-up", "logit ", "gap")


def run(target: str = typer.Argument(..., help="Checkpoint path or construction name."),
        a: str = typer.Argument(..., help="First addend, 0..9999999999."),
        b: str = typer.Argument(..., help="Second addend, 0..9999999999."),
        trace: bool = typer.Option(False, "--trace", help="Show each generated digit with its top-2 logits."),
        dtype: Optional[str] = typer.Option(None, help="float32 or float64.")):
    """Add two numbers with a model (generic greedy decoding)."""
    import torch

    from ..compiler.decode import generate
    from ..compiler.formats import as_addends, check_addend
    from ..constructions.targets import resolve

    ia, ib = check_addend(a, "A"), check_addend(b, "B")
    model = resolve(target).model(dtype=dtype)
    fmt, vocab = model.spec.format, model.spec.vocab
    prompt = fmt.encode(as_addends(ia), as_addends(ib))
    out = generate(model, prompt, fmt.out_digits)
    got = fmt.decode(out)[0]
    if trace:
        with torch.no_grad():
            logits = model(torch.cat([prompt, out], dim=1)[:, :-1], keep_last=fmt.out_digits)[0]
        top = [torch.topk(logits[i], 2) for i in range(fmt.out_digits)]
        rows = ((str(i), vocab[int(t.indices[0])], f"{float(t.values[0]):.6g}", vocab[int(t.indices[1])],
                 f"{float(t.values[1]):.6g}", f"{float(t.values[0] - t.values[1]):.3g}") for i, t in enumerate(top))
        console.print(table(f"{ia} + {ib}", TRACE_COLUMNS, rows))
    ok = got == ia + ib
    console.print(f"{ia} + {ib} = [bold]{got}[/]" + ("" if ok else f"  [red](wrong: the sum is {ia + ib})[/]"))
    raise typer.Exit(0 if ok else 1)
