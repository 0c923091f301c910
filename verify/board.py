"""The board of registered constructions: what `adder list` shows and docs/constructions.md tabulates.

`list_rows()` gives each construction's claimed and counted parameters; `board_rows()` adds
its architecture, the official 10,010 cases run on it and, with a search budget, the
prover's verdict (the Markdown table of docs/constructions.md). Rows are strings, ready to
print, and come one construction at a time, as each is checked.
"""

from __future__ import annotations

from collections.abc import Iterator

from ..compiler.ledger import ledger
from ..compiler.module import AdderModel, compile_spec
from ..compiler.spec import ModelSpec
from ..constructions import REGISTRY, Entry, build_spec
from .runner import run_suite

#: The suite the board reports (AdderBoard's qualification cases).
BOARD_SUITE = "adderboard"
LIST_COLUMNS = ["name", "author", "claimed", "AdderBoard", "strict", "dtype", "from"]
BOARD_COLUMNS = ["name", "author", "source", "layers / d_model / heads", "positions", "dtype", "AdderBoard params",
                 "strict params", "official 10,010", "smallest margin (official)"]
PROOF_COLUMN = "proof"


def compiled_constructions() -> Iterator[tuple[Entry, ModelSpec, AdderModel]]:
    """Every registered construction, by name: its entry, spec and compiled model."""
    for name in sorted(REGISTRY):
        spec = build_spec(name)
        yield REGISTRY[name], spec, compile_spec(spec)


def list_rows() -> Iterator[list[str]]:
    """One row of LIST_COLUMNS per construction ("from": adder itself or the plugin's distribution)."""
    for e, spec, model in compiled_constructions():
        led = ledger(model)
        yield [e.name, e.author, str(e.claimed_params), str(led.adderboard), str(led.strict), spec.dtype, e.origin]


def board_columns(prove_timeout: float = 0.0) -> list[str]:
    """The columns of `board_rows(prove_timeout)`."""
    return BOARD_COLUMNS + ([PROOF_COLUMN] if prove_timeout > 0 else [])


def board_rows(prove_timeout: float = 0.0) -> Iterator[list[str]]:
    """One row of `board_columns(prove_timeout)` per construction; the official suite runs on each, and the
    prover with `prove_timeout` seconds of search when it is positive."""
    for e, spec, model in compiled_constructions():
        led, r, m = ledger(model), run_suite(model, BOARD_SUITE), spec.meta
        row = [e.name, e.author, f"[link]({e.source})", f"{m.get('layers', '?')} / {spec.d_model} / {m.get('heads', '?')}",
               str(m.get("positions", "?")), spec.dtype, f"{led.adderboard} (claimed {e.claimed_params})",
               str(led.strict), f"{r.passed:,}/{r.cases:,}", f"{min(r.worst_margin):.3g}"]
        if prove_timeout > 0:
            from .prove import prove

            row.append(prove(model, e.name, timeout=prove_timeout, sampled=False).verdict)
        yield row
