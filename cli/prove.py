"""`adder prove`: prove (or refute) that a model adds correctly on all 10^20 inputs; check a certificate.

Output paths are checked before the search starts. Ctrl-C ends the search: the report (and
--json, --certificate) still comes, undecided and marked interrupted, and the exit status is
INTERRUPTED_EXIT.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..compiler.errors import AdderError
from .common import INTERRUPTED_EXIT, console, err_console, write_json, writable
from .progress import phase_spinner

#: Exit status by verdict; anything else (conditional, real-only, undecided) exits with UNDECIDED_EXIT.
VERDICT_EXIT = {"proven": 0, "refuted": 1}  # Verdict.PROVEN, Verdict.REFUTED (a str enum: the words are its values)
UNDECIDED_EXIT = 3


def run(target: Optional[str] = typer.Argument(None, help="Construction name or checkpoint (with --check: the checkpoint)."),
        certificate: Optional[Path] = typer.Option(None, "--certificate", help="Write the proof certificate (JSON) here."),
        check: Optional[Path] = typer.Option(None, "--check", help="Re-check this certificate against TARGET, no search."),
        timeout: float = typer.Option(600.0, help="Wall-clock budget in seconds (search and checks); what it leaves "
                                                  "undone is reported undecided: the budget ran out."),
        dtype: Optional[str] = typer.Option(None, help="Prove the model compiled in float32 or float64 [its own]."),
        libm_check: bool = typer.Option(True, "--libm-check/--no-libm-check",
                                        help="Check the library-function assumptions exhaustively (cached per machine)."),
        json_path: Optional[Path] = typer.Option(None, "--json", help="Write the proof report as JSON here."),
        compact: Optional[Path] = typer.Option(None, "--compact", help="With --check: write a copy of the "
                                               "certificate whose head bounds have as few digits as still certify "
                                               "each leaf (smaller, for shipping), and check that copy too."),
        force: bool = typer.Option(False, "--force", help="Overwrite existing --certificate / --json / --compact "
                                                          "files.")):
    """Prove (or refute) that a model adds correctly on all 10^20 inputs, float rounding included.

    Exit status: 0 proven (or certificate check passed), 1 refuted (or check failed), 3 conditional, real-only
    or undecided,
    130 interrupted (Ctrl-C; the report is still printed and written, undecided).
    """
    from ..constructions.targets import resolve
    from ..verify.prove import check as check_certificate
    from ..verify.prove import prove, read, render
    from ..verify.prove.api import check_timeout

    if target is None:
        raise AdderError("name a construction or checkpoint to prove (see `adder list`)")
    check_timeout(timeout)
    if compact is not None and check is None:
        raise AdderError("--compact rewrites a certificate: give the one to read with --check CERT")
    tgt = resolve(target)
    for path in (certificate, json_path, compact):
        if path is not None:
            writable(path, force)
    cert = read(check) if check is not None else None
    model = tgt.model(dtype=dtype)
    if cert is not None:
        bar, advance = phase_spinner(f"checking {check}")
        with bar:
            result = check_certificate(cert, model, progress=advance)
        style = "bold green" if result.passed else "bold red"
        console.print(f"certificate {check}: " + ("check passed: " if result.passed else "check FAILED: ") + result.reason,
                      style=style, markup=False)
        if result.passed and compact is not None:
            result = _compact(cert, model, compact)
        raise typer.Exit(0 if result.passed else 1)
    bar, advance = phase_spinner(f"proving {model.spec.name}")
    with bar:
        report = prove(model, target, timeout=timeout, certificate=certificate, check_libm=libm_check,
                       progress=advance)
    console.print(render(report))
    if json_path is not None:
        write_json(json_path, report.to_json())
    if report.interrupted:
        err_console.print("interrupted: the report above is incomplete (undecided)", markup=False, highlight=False)
        raise typer.Exit(INTERRUPTED_EXIT)
    raise typer.Exit(VERDICT_EXIT.get(report.verdict, UNDECIDED_EXIT))


def _compact(cert: dict, model, path: Path):
    """Write the compacted certificate to `path`, check it as any other, say what changed."""
    from ..verify.prove import check as check_certificate
    from ..verify.prove.certificate import compact, read, write

    bar, advance = phase_spinner("compacting")
    with bar:
        small, counts = compact(cert, model, progress=advance)
    write(small, path)
    bar, advance = phase_spinner(f"checking {path}")
    with bar:
        result = check_certificate(read(path), model, progress=advance)
    shortened = ", ".join(f"{n:,} at {d} digits" for d, n in counts.items() if d != "unchanged" and n)
    console.print(f"compacted: {shortened or 'no leaf'} ({counts['unchanged']:,} unchanged) -> {path}, "
                  f"{path.stat().st_size:,} bytes", markup=False, highlight=False)
    style = "bold green" if result.passed else "bold red"
    console.print(f"certificate {path}: " + ("check passed: " if result.passed else "check FAILED: ") + result.reason,
                  style=style, markup=False)
    return result
