"""`adder train RECIPE --warm-start CKPT --until-proven`: parse, check, run `train.until_proven`, render.

The loop itself (prove; while not proven, fine-tune on the prover's findings and prove again)
is a library call, `adder.train.until_proven.until_proven`; its docstring describes the run
folder. This file checks the options before the first proof, prints each attempt as it goes
and the summary at the end.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..compiler.errors import AdderError
from ..compiler.limits import check_finite
from .common import INTERRUPTED_EXIT, console, creatable_folder, err_console, print_json
from .finetune import finetune_options, round_printer

#: Exit status when the attempts ran out without a proof (as `adder prove`'s undecided).
NOT_PROVEN_EXIT = 3


def run_until_proven(rec, hyper, *, seed: int, run_dir: Path, warm_start: str, steps: Optional[int],
                     lr: Optional[float], margin: Optional[float], rounds: Optional[int], attempts: int,
                     prove_timeout: float, threads: int, force: bool, json_out: bool,
                     robust: Optional[str] = None) -> None:
    """Prove, fine-tune on the prover's findings, prove again; at most `attempts` fine-tunes."""
    import torch

    from ..train.until_proven import CERTIFICATE, prepare_run, until_proven
    from ..verify.prove import prove, render

    if attempts < 0:
        raise AdderError(f"--attempts must be 0 or more fine-tunes, got {attempts}")
    check_finite(prove_timeout, "--prove-timeout", 0, low_open=True)
    options = finetune_options(steps, lr, margin, rounds, robust)
    creatable_folder(run_dir, "--out")
    prepare_run(rec, run_dir, warm_start, attempts, force)
    torch.set_num_threads(threads)
    say = err_console if json_out else console
    res = until_proven(rec, hyper, prove=prove, seed=seed, run_dir=run_dir, warm_start=warm_start, options=options,
                       attempts=attempts, prove_timeout=prove_timeout, force=force,
                       say=lambda line: say.print(line, markup=False, highlight=False, soft_wrap=True),
                       on_round=lambda margin: round_printer(margin, say))
    if res.interrupted:
        err_console.print(f"interrupted {res.interrupted}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(INTERRUPTED_EXIT)
    if json_out:
        print_json(res.to_json())
    elif res.proven:
        console.print(render(res.report))
        console.print(f"proven after {len(res.history) - 1} fine-tune attempt(s): {res.checkpoint}, certificate "
                      f"{run_dir / CERTIFICATE} (adder prove {res.checkpoint} --check {run_dir / CERTIFICATE})",
                      markup=False, highlight=False, soft_wrap=True)
    else:
        console.print(f"not proven after {attempts} fine-tune attempt(s); the last verdict: {res.report.summary()}; "
                      f"the last model: {res.checkpoint}", markup=False, highlight=False, soft_wrap=True)
    if not res.proven:
        raise typer.Exit(NOT_PROVEN_EXIT)
