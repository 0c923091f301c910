"""`adder train RECIPE --warm-start CKPT --until-proven`: prove the model; while the proof does not
go through, fine-tune it on what the prover found weak and prove again, until `proven` or the
attempts are spent.

What an attempt trains on: the fine-tune's usual mining (fresh training pairs, the adversarial
suites) plus the prover's own findings, given to every round as extra pairs: the counterexample
when it refuted, and the worst-case inputs of the cases whose bound failed (`weak_inputs`: where
the margin the proof needs is thinnest). The margin the fine-tune asks for rises by
MARGIN_STEP each attempt, since a proof needs room for the bound's slack, not just a right
answer. Held-out selection and the leakage guard are the fine-tune's, unchanged.

The run folder: `attemptN/` (N >= 1) is attempt N's fine-tune (metrics, checkpoints, its source
recorded, seed `--seed + N - 1` so each attempt mines fresh pairs); `attemptN.proof.json` the
proof report of the model attempt N left (attempt0: the warm start). When a proof goes through,
`best.pt` and `best.cert.json.xz` are the proven checkpoint and its certificate, side by side
(`adder prove RUN/best.pt --check RUN/best.cert.json.xz` re-checks it).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Optional

import typer

from ..compiler.errors import AdderError
from .common import INTERRUPTED_EXIT, console, creatable_folder, err_console, print_json, write_json
from .finetune import finetune_options, round_printer

#: The fine-tune's margin target rises by this much per attempt.
MARGIN_STEP = 1.0
#: Exit status when the attempts ran out without a proof (as `adder prove`'s undecided).
NOT_PROVEN_EXIT = 3
CERTIFICATE = "best.cert.json.xz"  # xz: a big proof's certificate shrinks about 20-fold


def prover_findings(report) -> tuple:
    """The pairs a proof report points at: its counterexample and its weak inputs, as (a, b) tensors."""
    import torch

    pairs = [tuple(p) for p in report.weak_inputs]
    if report.counterexample:
        pairs.insert(0, (report.counterexample["a"], report.counterexample["b"]))
    pairs = list(dict.fromkeys(pairs))
    return (torch.tensor([p[0] for p in pairs], dtype=torch.long), torch.tensor([p[1] for p in pairs], dtype=torch.long))


def require_recipe_layout(rec, warm_start: str) -> None:
    """A fine-tune trains the recipe's model from the warm start's values, so the two must have the
    same parameters (names and shapes); otherwise the model proven next would not be the one given.
    Checked before the first proof, which may take the whole --prove-timeout."""
    from ..compiler.module import compile_spec
    from ..train.sweep import warm_start_model

    mine = {n: tuple(t.shape) for n, t in compile_spec(rec.build()).named_spec_params()}
    theirs = {n: tuple(t.shape) for n, t in warm_start_model(warm_start).named_spec_params()}
    if mine != theirs:
        differ = sorted(n for n in mine.keys() | theirs.keys() if mine.get(n) != theirs.get(n))
        shown = ", ".join(differ[:4]) + (f" and {len(differ) - 4} more" if len(differ) > 4 else "")
        raise AdderError(f"--until-proven fine-tunes {rec.name}'s model, and {warm_start} has other parameters "
                         f"({shown}); name the recipe it was trained with, or pass --attempts 0 to prove it only")


def run_until_proven(rec, hyper, *, seed: int, run_dir: Path, warm_start: str, steps: Optional[int],
                     lr: Optional[float], margin: Optional[float], rounds: Optional[int], attempts: int,
                     prove_timeout: float, threads: int, force: bool, json_out: bool) -> None:
    """Prove, fine-tune on the prover's findings, prove again; at most `attempts` fine-tunes."""
    from dataclasses import replace

    import torch

    from ..compiler import checkpoint
    from ..constructions.targets import resolve
    from ..train.finetune import finetune, source_of
    from ..train.sweep import warm_start_model
    from ..verify.prove import prove, render

    if attempts < 0:
        raise AdderError(f"--attempts must be 0 or more fine-tunes, got {attempts}")
    if not prove_timeout > 0:
        raise AdderError(f"--prove-timeout must be positive seconds, got {prove_timeout}")
    base = finetune_options(steps, lr, margin, rounds)
    creatable_folder(run_dir, "--out")
    earlier = [run_dir / CERTIFICATE, run_dir / "best.pt"] + sorted(run_dir.glob("attempt*"))
    if not force and any(p.exists() for p in earlier):
        raise AdderError(f"{run_dir} already holds an --until-proven run; pass --force to overwrite it")
    for stale in earlier:
        if stale.is_dir():
            shutil.rmtree(stale)
        elif stale.exists():
            stale.unlink()  # --force: an earlier run's files must not pass for this one's
    if attempts:
        require_recipe_layout(rec, warm_start)
    run_dir.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(threads)
    say = err_console if json_out else console
    target, history, report = warm_start, [], None
    for attempt in range(attempts + 1):
        model = resolve(target).model()  # in its own dtype: the proof is of the file as it is
        say.print(f"attempt {attempt}: proving {target} (budget {prove_timeout:g} s)", markup=False, highlight=False)
        candidate = run_dir / "candidate.cert.json.xz"
        report = prove(model, target, timeout=prove_timeout, certificate=candidate)
        write_json(run_dir / f"attempt{attempt}.proof.json", report.to_json())
        history.append({"attempt": attempt, "checkpoint": target, "verdict": report.verdict,
                        "summary": report.summary(), "seconds": round(report.seconds, 1),
                        "weak_inputs": len(report.weak_inputs)})
        say.print(f"attempt {attempt}: {report.summary()} ({report.seconds:.0f} s)", markup=False, highlight=False)
        if report.interrupted:
            candidate.unlink(missing_ok=True)
            raise typer.Exit(INTERRUPTED_EXIT)
        if report.verdict == "proven":
            _keep_proven(target, model, run_dir, candidate, checkpoint)
            report.certificate = str(run_dir / CERTIFICATE)
            write_json(run_dir / f"attempt{attempt}.proof.json", report.to_json())
            break
        candidate.unlink(missing_ok=True)
        if attempt == attempts:
            break
        options = replace(base, margin=base.margin + attempt * MARGIN_STEP)
        warm = warm_start_model(target)
        extra = prover_findings(report)
        say.print(f"attempt {attempt + 1}: fine-tuning with margin {options.margin:g} on {len(extra[0]):,} "
                  f"inputs the prover found weak, plus the usual mining", markup=False, highlight=False)
        res = finetune(rec, seed=seed + attempt, out=run_dir / f"attempt{attempt + 1}", warm_start=warm,
                       options=options, hyper=hyper, force=force, source=source_of(target, warm),
                       on_row=round_printer(options.margin, say), extra=extra)
        if res.interrupted or res.best is None:
            err_console.print(f"interrupted during attempt {attempt + 1}'s fine-tune; what it wrote is in "
                              f"{run_dir / f'attempt{attempt + 1}'}", markup=False, highlight=False, soft_wrap=True)
            raise typer.Exit(INTERRUPTED_EXIT)
        target = str(res.checkpoint)
    proven = report.verdict == "proven"
    summary = {"recipe": rec.name, "proven": proven, "attempts": history,
               "checkpoint": str(run_dir / "best.pt") if proven else target,
               "certificate": str(run_dir / CERTIFICATE) if proven else None}
    if json_out:
        print_json(summary)
    elif proven:
        console.print(render(report))
        console.print(f"proven after {len(history) - 1} fine-tune attempt(s): {run_dir / 'best.pt'}, certificate "
                      f"{run_dir / CERTIFICATE} (adder prove {run_dir / 'best.pt'} --check {run_dir / CERTIFICATE})",
                      markup=False, highlight=False, soft_wrap=True)
    else:
        console.print(f"not proven after {attempts} fine-tune attempt(s); the last verdict: {report.summary()}; "
                      f"the last model: {target}", markup=False, highlight=False, soft_wrap=True)
    if not proven:
        raise typer.Exit(NOT_PROVEN_EXIT)


def _keep_proven(target: str, model, run_dir: Path, candidate: Path, checkpoint) -> None:
    """The proven model as RUN/best.pt beside its certificate RUN/best.cert.json.xz."""
    source = Path(target)
    if source.is_file():
        shutil.copyfile(source, run_dir / "best.pt")
    else:  # a construction proven as it is
        checkpoint.save(model, run_dir / "best.pt", force=True)
    candidate.replace(run_dir / CERTIFICATE)
