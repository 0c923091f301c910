"""`adder verify`: official cases, carry patterns and chains, windows, Hypothesis search, precision.

A target is a compiled model (construction name or checkpoint) or an AdderBoard submission
file, which runs as a black box in worker processes. An option that applies to only one of
the two is refused for the other (`MODEL_ONLY`, `SUBMISSION_ONLY`), never silently ignored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape

from ..verify.submissions.blackbox import DEFAULT_TIMEOUT
from ..compiler.errors import AdderError
from ..compiler.limits import check_count, check_finite, check_seed, check_threads
from .common import console, err_console, write_json, writable
from .progress import progress_bar

#: Hypothesis examples of one search: each is one batched forward and shrinking; more is not a budget anyone waits for.
MAX_EXAMPLES = 10_000_000
#: Options that need a compiled model, and why a submission file (a black box) cannot take them.
MODEL_ONLY = {
    "--search": "the search steers by the model's margins, which a black box does not show",
    "--adversarial": "it includes the Hypothesis search; name the suites instead: --suite carry --suite chains --suite window",
    "--examples": "it sizes the Hypothesis search, which needs a compiled model",
    "--precision": "it recompiles the model in other arithmetics",
    "--dtype": "the file's own code chooses its arithmetic",
    "--device": "the file's own code chooses its device",
    "--chunk": "a submission is called once per case, not in batches",
    "--threads": "its workers run with one torch thread each",
    "--prove": "the prover needs the model's weights",
    "--prove-timeout": "the prover needs the model's weights",
}
#: Options for submission files only, and why a compiled model cannot take them.
SUBMISSION_ONLY = {
    "--timeout": "a compiled model is checked in batches, not call by call",
    "--sandbox": "a compiled model runs no code of its own",
}


def check_options_apply(ctx: typer.Context, is_submission: bool) -> None:
    """A one-line error for the first option given on the command line that does not apply
    to this kind of target."""
    for option, why in (MODEL_ONLY if is_submission else SUBMISSION_ONLY).items():
        param = {"--search": "search_", "--prove": "prove_"}.get(option, option[2:].replace("-", "_"))
        if ctx.get_parameter_source(param).name != "DEFAULT":
            where = "does not apply to a submission file" if is_submission else "applies to submission files only"
            raise AdderError(f"{option} {where}: {why}")


def run(ctx: typer.Context,
        target: str = typer.Argument(..., help="Checkpoint, construction name, or AdderBoard submission .py file."),
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
        timeout: float = typer.Option(DEFAULT_TIMEOUT, help="Submission files: seconds each call of add() may take."),
        sandbox: bool = typer.Option(False, "--sandbox", help="Submission files: run the workers with resource limits "
                                                              "(CPU, memory, files; no network where the OS allows)."),
        json_path: Optional[Path] = typer.Option(None, "--json", help="Write the report as JSON here."),
        prove_: bool = typer.Option(False, "--prove", help="Also run `adder prove` and add the proof to the report."),
        prove_timeout: float = typer.Option(600.0, help="Search budget of --prove (seconds)."),
        force: bool = typer.Option(False, "--force", help="Overwrite an existing --json file.")):
    """Check a model: official cases, carry patterns and chains, windows, Hypothesis search, precision.

    A submission .py file runs as a black box, and its code runs with your user's rights (--sandbox confines it).
    """
    import torch

    from ..verify.submissions.blackbox import check_submission, check_timeout
    from ..constructions.targets import SUBMISSION, resolve
    from ..verify.api import suite_count, verify_model, verify_submission
    from ..verify.cases import SuiteOptions, select_suites
    from ..verify.precision import parse_arithmetics
    from ..verify.report import render

    names = select_suites(suite, adversarial)
    options = SuiteOptions.for_run(adversarial=adversarial, k=k, window=window, n=n)
    check_seed(seed)
    check_count(chunk, "--chunk")
    check_count(examples, "--examples", high=MAX_EXAMPLES)

    check_finite(prove_timeout, "--prove-timeout", 0, low_open=True)
    check_timeout(timeout)
    total = suite_count(names, options)
    if json_path is not None:
        writable(json_path, force)
    tgt = resolve(target)
    is_submission = tgt.kind == SUBMISSION
    check_options_apply(ctx, is_submission)
    if is_submission:
        check_submission(tgt.path)
        err_console.print(f"{escape(str(tgt.path))}: its code runs in worker processes with your user's rights"
                          + (", confined by --sandbox (the report lists the limits)" if sandbox else
                             " (--sandbox confines it: CPU, memory, files, network where the OS allows)"),
                          highlight=False, soft_wrap=True)
    else:
        torch.set_num_threads(check_threads(threads))
    arith = parse_arithmetics(precision) if precision else None
    model = None if is_submission else tgt.model(dtype=dtype, device=device)
    with progress_bar(transient=True) as bar:
        task = bar.add_task(f"verifying ({', '.join(names)})", total=total)
        step = lambda m: bar.advance(task, m)  # noqa: E731
        if is_submission:
            report = verify_submission(tgt.path, suites=names, seed=seed, options=options, timeout=timeout,
                                       sandbox=sandbox, progress=step)
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
