"""`adder info`: a model's architecture summary and parameter ledger."""

from __future__ import annotations

import json

import typer

from .common import console, dtype_name, table

LEDGER_COLUMNS = ("tensor", "shape", "scalars", "kind", "used in", "note")


def run(target: str = typer.Argument(..., help="Checkpoint path or construction name."),
        json_out: bool = typer.Option(False, "--json", help="Print the ledger as JSON.")):
    """Show a model's architecture summary and parameter ledger."""
    from ..compiler import checkpoint
    from ..compiler.ledger import ledger
    from ..constructions.targets import resolve

    model = resolve(target).model()
    led, spec, sha = ledger(model), model.spec, checkpoint.weights_hash(model)
    if json_out:
        console.print_json(json.dumps({"name": spec.name, "meta": spec.meta, "dtype": str(model.dtype),
                                       "weights_sha256": sha, "ledger": led.to_json()}))
        return
    fmt = spec.format
    console.print(f"[bold]{spec.name}[/]  {spec.meta.get('description', '')}")
    console.print(f"author {spec.meta.get('author', '?')} · source {spec.meta.get('source', '?')}")
    console.print(f"d_model {spec.d_model} (slots: {', '.join(f'{n}[{w}]' if w > 1 else n for n, w in spec.slots)}) · "
                  f"{len(spec.blocks)} blocks ({', '.join(b.name for b in spec.blocks)}) · vocab {len(spec.vocab)} · "
                  f"dtype {dtype_name(model)}")
    console.print(f"prompt {fmt.prompt_len} tokens, answer {fmt.out_digits} digits {fmt.out_order}-first")
    rows = ((r.name, "x".join(map(str, r.shape)) or "scalar", str(r.scalars),
             "learned" if r.trainable else "frozen (counted)", ", ".join(r.used_in), r.note) for r in led.rows)
    console.print(table("parameter ledger", LEDGER_COLUMNS, rows, overflow="fold"))
    claimed = spec.meta.get("claimed_params")
    console.print(f"AdderBoard count (unique learned scalars): [bold]{led.adderboard}[/]"
                  + (f"  (claimed {claimed})" if claimed is not None else ""))
    console.print(f"strict count (+ {len(led.hard_coded)} distinct hard-coded values other than 0, ±1): "
                  f"[bold]{led.strict}[/]")
    console.print(f"distinct learned values: {led.distinct_learned}")
    if led.hard_coded:
        console.print("hard-coded values: " + ", ".join(f"{v:.6g}" for v in led.hard_coded))
    console.print(f"weights sha256 {sha}")
