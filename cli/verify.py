"""`adder verify`: official cases, carry patterns and chains, windows, Hypothesis search, precision."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..compiler.errors import AdderError
from .common import console, progress_bar, write_json, writable


def run(target: str = typer.Argument(..., help="Checkpoint, construction name, or AdderBoard submission .py file."),
        suite: list[str] = typer.Option([], "--suite", "-s", help="adderboard, carry, chains, window, random (repeatable)."),
        adversarial: bool = typer.Option(False, "--adversarial", help="carry + chains + window + Hypothesis search."),
        seed: int = typer.Option(0, help="Seed of every generated case (recorded in the report)."),
        k: Optional[int] = typer.Option(None, help="Random instances per carry pattern and chain "
                                                   "[1; 16 with --adversarial, over 10^6 cases in all]."),
        window: int = typer.Option(2, help="Window width w (window suite: (11-w) x 10^2w cases)."),
        n: int = typer.Option(100_000, help="Pairs per half of the random suite."),
        examples: int = typer.Option(2000, help="Hypothesis examples (with --adversarial or --search)."),
        search_: bool = typer.Option(False, "--search", help="Run the Hypothesis search."),
        precision: Optional[str] = typer.Option(None, help="Re-check in e.g. float32,float64,exact."),
        dtype: Optional[str] = typer.Option(None, help="Arithmetic to run the suites in [the model's own]."),
        device: str = typer.Option("cpu", help="cpu or cuda."),
        chunk: int = typer.Option(4096, help="Additions per forward pass (bounds memory)."),
        threads: int = typer.Option(1, help="CPU threads for torch (1 is fastest on a busy 2-core machine)."),
        timeout: float = typer.Option(10.0, help="Per-call timeout for submission files (seconds)."),
        json_path: Optional[Path] = typer.Option(None, "--json", help="Write the report as JSON here."),
        prove_: bool = typer.Option(False, "--prove", help="Also run `adder prove` and add the proof to the report."),
        prove_timeout: float = typer.Option(600.0, help="Search budget of --prove (seconds)."),
        force: bool = typer.Option(False, "--force", help="Overwrite an existing --json file.")):
    """Check a model: official cases, carry patterns and chains, windows, Hypothesis search, precision."""
    import torch

    from ..constructions.targets import SUBMISSION, resolve
    from ..verify.api import suite_count, verify_model, verify_submission
    from ..verify.cases import SuiteOptions, select_suites
    from ..verify.precision import parse_arithmetics
    from ..verify.report import render

    if threads < 1:
        raise AdderError(f"--threads must be at least 1, got {threads}")
    torch.set_num_threads(threads)
    names = select_suites(suite, adversarial)
    options = SuiteOptions.for_run(adversarial=adversarial, k=k, window=window, n=n)
    if chunk < 1 or examples < 1:
        raise AdderError(f"--chunk and --examples must be positive, got {chunk} and {examples}")
    total = suite_count(names, options)
    if json_path is not None:
        writable(json_path, force)
    tgt = resolve(target)
    if prove_ and tgt.kind == SUBMISSION:
        raise AdderError("--prove needs a construction or checkpoint; a submission file is a black box")
    if prove_ and prove_timeout <= 0:
        raise AdderError(f"--prove-timeout must be positive seconds, got {prove_timeout}")
    arith = parse_arithmetics(precision) if precision else None
    model = tgt.model(dtype=dtype, device=device) if tgt.kind != SUBMISSION else None
    with progress_bar(transient=True) as bar:
        task = bar.add_task(f"verifying ({', '.join(names)})", total=total)
        step = lambda m: bar.advance(task, m)  # noqa: E731
        if model is None:
            report = verify_submission(tgt.path, suites=names, seed=seed, options=options, timeout=timeout, progress=step)
        else:
            report = verify_model(model, target, suites=names, seed=seed, options=options, chunk=chunk,
                                  search_examples=examples if (adversarial or search_) else None,
                                  precision=arith, progress=step)
    if prove_:
        from ..verify.prove import prove

        report.proof = prove(model.cpu(), target, timeout=prove_timeout).to_json()
    console.print(render(report))
    if json_path is not None:
        write_json(json_path, report.to_json())
    raise typer.Exit(0 if report.ok else 1)

