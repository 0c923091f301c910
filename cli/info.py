"""`adder info`: a model's architecture summary, parameter ledger and, for a checkpoint, its provenance."""

from __future__ import annotations

import typer
from rich.markup import escape

from .common import console, dtype_name, print_json, table

LEDGER_COLUMNS = ("tensor", "shape", "scalars", "kind", "used in", "note")
#: How `adder info` names each provenance entry of a checkpoint's meta (`checkpoint.PROVENANCE`).
PROVENANCE_LABELS = {"recipe": "recipe", "seed": "seed", "step": "step", "val_exact": "held-out exact",
                     "warm_start": "warm-started from", "imported_from": "imported from",
                     "source_format": "source format", "source_sha256": "source sha256",
                     "adder_version": "adder", "torch_version": "torch", "cpu_capability": "cpu kernels"}


def run(target: str = typer.Argument(..., help="Checkpoint path or construction name."),
        json_out: bool = typer.Option(False, "--json", help="Print the summary, ledger and provenance as JSON.")):
    """Show a model's architecture summary and parameter ledger (and a checkpoint's recorded provenance)."""
    from ..compiler import checkpoint
    from ..compiler.ledger import ledger
    from ..constructions.targets import CHECKPOINT, resolve
    from ..verify.checker import unsupported as checker_lacks
    from ..verify.prove.support import unsupported

    tgt = resolve(target)
    if tgt.kind == CHECKPOINT:  # read once: the model and the meta it was saved with
        ck = checkpoint.read(tgt.path)
        model = checkpoint.from_checkpoint(ck, where=str(tgt.path))
        provenance = {k: ck["meta"][k] for k in checkpoint.PROVENANCE if k in ck["meta"]}
    else:
        model, provenance = tgt.model(), {}
    led, spec, sha = ledger(model), model.spec, checkpoint.weights_hash(model)
    missing, lacks = unsupported(spec), checker_lacks(spec)
    if json_out:
        print_json({"name": spec.name, "meta": spec.meta, "dtype": str(model.dtype), "weights_sha256": sha,
                    "provenance": provenance, "ledger": led.to_json(),
                    "prover": {"can_bound": not missing, "unsupported": missing,
                               "independent_checker": not lacks, "checker_lacks": lacks}})
        return
    fmt = spec.format

    def say(text: str) -> None:  # markup is written here; every user-controlled value is escaped
        console.print(text, highlight=False)

    say(f"[bold]{escape(spec.name)}[/]  {escape(str(spec.meta.get('description', '')))}")
    say(f"author {escape(str(spec.meta.get('author', '?')))} · source {escape(str(spec.meta.get('source', '?')))}")
    slots = ", ".join(f"{n}[{w}]" if w > 1 else n for n, w in spec.slots)
    say(escape(f"d_model {spec.d_model} (slots: {slots}) · {len(spec.blocks)} blocks "
               f"({', '.join(b.name for b in spec.blocks)}) · vocab {len(spec.vocab)} · dtype {dtype_name(model)}"))
    say(f"prompt {fmt.prompt_len} tokens, answer {fmt.out_digits} digits {fmt.out_order}-first")
    if provenance:
        say("recorded: " + escape(", ".join(f"{PROVENANCE_LABELS[k]} {_value(v)}" for k, v in provenance.items())))
    rows = ((r.name, "x".join(map(str, r.shape)) or "scalar", str(r.scalars),
             "learned" if r.trainable else "frozen (counted)", ", ".join(r.used_in), r.note) for r in led.rows)
    console.print(table("parameter ledger", LEDGER_COLUMNS, rows))
    claimed = spec.meta.get("claimed_params")
    say(f"AdderBoard count (unique learned scalars): [bold]{led.adderboard}[/]"
        + (f"  (claimed {escape(str(claimed))})" if claimed is not None else ""))
    say(f"strict count (+ {len(led.hard_coded)} distinct hard-coded values other than 0, ±1): [bold]{led.strict}[/]")
    say(f"distinct learned values: {led.distinct_learned}")
    if led.hard_coded:
        say("hard-coded values: " + ", ".join(f"{v:.6g}" for v in led.hard_coded))
    say(f"weights sha256 {sha}")
    say("prover: every operation has a bound rule (`adder prove` can try it)" if not missing else
        "prover: cannot bound it yet: " + escape("; ".join(missing)))
    if not missing:
        say("certificate check: by the independent checker (verify/checker)" if not lacks else
            "certificate check: by the search's own rules; the independent checker has no rule yet for "
            + escape("; ".join(lacks)))


def _value(v) -> str:
    """A provenance value as `adder info` prints it (a held-out exact match to 4 places)."""
    return f"{v:.4f}" if isinstance(v, float) else str(v)
