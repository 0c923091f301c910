"""Until proven: prove a model; while the proof does not go through, fine-tune it on what the
prover found weak and prove again, until `proven` or the attempts are spent.

What an attempt trains on: the fine-tune's usual mining (fresh training pairs, the adversarial
suites) plus the prover's own findings, given to every round as extra pairs: the counterexample
when it refuted, and the worst-case inputs of the cases whose bound failed (`weak_inputs`: where
the margin the proof needs is thinnest). The margin the fine-tune asks for rises by
MARGIN_STEP each attempt, since a proof needs room for the bound's slack, not just a right
answer. Held-out selection and the leakage guard are the fine-tune's, unchanged.

The run folder: `attemptN/` (N >= 1) is attempt N's fine-tune (metrics, checkpoints, its source
recorded, seed `seed + N - 1` so each attempt mines fresh pairs); `attemptN.proof.json` the
proof report of the model attempt N left (attempt0: the warm start). When a proof goes through,
`best.pt` and `best.cert.json.xz` are the proven checkpoint and its certificate, side by side
(`adder prove RUN/best.pt --check RUN/best.cert.json.xz` re-checks it).

The prover is passed in (`prove(model, target, timeout=..., certificate=...)` returning a proof
report, as `adder.verify.prove.prove`): training sits below the prover in the layering, and a
test can drive the loop with the real prover or a stand-in.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import torch

from ..compiler import checkpoint
from ..compiler.errors import AdderError
from ..compiler.files import write_json
from ..compiler.module import compile_spec
from ..constructions.targets import resolve
from ..verify.api import Verdict
from .finetune import FinetuneOptions, finetune, source_of
from .recipes import Hyper, Recipe
from .sweep import warm_start_model

#: The fine-tune's margin target rises by this much per attempt.
MARGIN_STEP = 1.0
CERTIFICATE = "best.cert.json.xz"  # xz: a big proof's certificate shrinks about 20-fold
#: Where a proof's certificate is written before the verdict says whether it is kept.
CANDIDATE = "candidate.cert.json.xz"


@dataclass
class UntilProven:
    """What the loop did: one history row per proof attempt, the last proof report, and the
    model it ended with (RUN/best.pt and its certificate when proven)."""

    recipe: str
    history: list[dict] = field(default_factory=list)
    report: Any = None  # the last proof report
    checkpoint: str = ""
    certificate: str | None = None
    interrupted: str | None = None  # where Ctrl-C stopped it, if it did

    @property
    def proven(self) -> bool:
        return self.report is not None and self.report.verdict == Verdict.PROVEN

    def to_json(self) -> dict:
        return {"recipe": self.recipe, "proven": self.proven, "attempts": self.history,
                "checkpoint": self.checkpoint, "certificate": self.certificate}


def prover_findings(report) -> tuple[torch.Tensor, torch.Tensor]:
    """The pairs a proof report points at: its counterexample and its weak inputs, as (a, b) tensors."""
    pairs = [tuple(p) for p in report.weak_inputs]
    if report.counterexample:
        pairs.insert(0, (report.counterexample["a"], report.counterexample["b"]))
    pairs = list(dict.fromkeys(pairs))
    return (torch.tensor([p[0] for p in pairs], dtype=torch.long), torch.tensor([p[1] for p in pairs], dtype=torch.long))


def findings_file(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """`prover_findings` of a proof report written as JSON (`adder prove --json`, or an
    --until-proven run's attemptN.proof.json): the pairs a fine-tune may mine besides its own,
    so that an --until-proven attempt can be re-run from its files. One line if unreadable."""
    import json
    from types import SimpleNamespace

    try:
        data = json.loads(Path(path).read_text())
        report = SimpleNamespace(weak_inputs=[[int(a), int(b)] for a, b in data.get("weak_inputs") or []],
                                 counterexample=data.get("counterexample"))
        pairs = prover_findings(report)
    except FileNotFoundError:
        raise AdderError(f"--mine-from: {path} does not exist") from None
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as e:
        raise AdderError(f"--mine-from: {path} is not a proof report ({type(e).__name__}); write one with "
                         "`adder prove TARGET --json FILE`") from None
    if len(pairs[0]) and not (bool((pairs[0] >= 0).all()) and bool((pairs[1] >= 0).all())
                              and bool((pairs[0] < 10**10).all()) and bool((pairs[1] < 10**10).all())):
        raise AdderError(f"--mine-from: {path} holds operands outside 0..9999999999")
    return pairs


def require_recipe_layout(rec: Recipe, warm_start: str) -> None:
    """A fine-tune trains the recipe's model from the warm start's values, so the two must have the
    same parameters (names and shapes); otherwise the model proven next would not be the one given.
    Checked before the first proof, which may take the whole proof budget."""
    mine = {n: tuple(t.shape) for n, t in compile_spec(rec.build()).named_spec_params()}
    theirs = {n: tuple(t.shape) for n, t in warm_start_model(warm_start).named_spec_params()}
    if mine != theirs:
        differ = sorted(n for n in mine.keys() | theirs.keys() if mine.get(n) != theirs.get(n))
        shown = ", ".join(differ[:4]) + (f" and {len(differ) - 4} more" if len(differ) > 4 else "")
        raise AdderError(f"--until-proven fine-tunes {rec.name}'s model, and {warm_start} has other parameters "
                         f"({shown}); name the recipe it was trained with, or pass --attempts 0 to prove it only")


def prepare_run(rec: Recipe, run_dir: Path, warm_start: str, attempts: int, force: bool) -> None:
    """Everything that can be refused before the first proof: the folder (an earlier run's files
    are removed with `force`, so they cannot pass for this one's) and the warm start's layout."""
    earlier = [run_dir / CERTIFICATE, run_dir / "best.pt"] + sorted(run_dir.glob("attempt*"))
    if not force and any(p.exists() for p in earlier):
        raise AdderError(f"{run_dir} already holds an --until-proven run; pass --force to overwrite it")
    if attempts:
        require_recipe_layout(rec, warm_start)
    for stale in earlier:
        if stale.is_dir():
            shutil.rmtree(stale)
        elif stale.exists():
            stale.unlink()


def until_proven(rec: Recipe, hyper: Hyper, *, prove: Callable, seed: int, run_dir: Path, warm_start: str,
                 options: FinetuneOptions, attempts: int, prove_timeout: float, force: bool = False,
                 say: Callable[[str], None] = lambda line: None,
                 on_round: Callable[[float], Callable[[dict], None]] | None = None) -> UntilProven:
    """Prove `warm_start`; while not proven and attempts remain, fine-tune on the prover's findings
    and prove the result. `say(line)` hears what each attempt does; `on_round(margin)` gives the
    callback of an attempt's fine-tune rounds (its margin target rises by attempt). Call
    `prepare_run` first (the command line does, before its other checks)."""
    if attempts < 0:
        raise AdderError(f"--attempts must be 0 or more fine-tunes, got {attempts}")
    run_dir.mkdir(parents=True, exist_ok=True)
    out = UntilProven(recipe=rec.name, checkpoint=warm_start)
    target = warm_start
    for attempt in range(attempts + 1):
        model = resolve(target).model()  # in its own dtype: the proof is of the file as it is
        say(f"attempt {attempt}: proving {target} (budget {prove_timeout:g} s)")
        candidate = run_dir / CANDIDATE
        report = prove(model, target, timeout=prove_timeout, certificate=candidate)
        out.report = report
        write_json(run_dir / f"attempt{attempt}.proof.json", report.to_json())
        out.history.append({"attempt": attempt, "checkpoint": target, "verdict": str(report.verdict),
                            "summary": report.summary(), "seconds": round(report.seconds, 1),
                            "weak_inputs": len(report.weak_inputs)})
        say(f"attempt {attempt}: {report.summary()} ({report.seconds:.0f} s)")
        if report.interrupted:
            candidate.unlink(missing_ok=True)
            out.interrupted = f"during attempt {attempt}'s proof"
            return out
        if report.verdict == Verdict.PROVEN:
            _keep_proven(target, model, run_dir, candidate)
            report.certificate = out.certificate = str(run_dir / CERTIFICATE)
            out.checkpoint = str(run_dir / "best.pt")
            write_json(run_dir / f"attempt{attempt}.proof.json", report.to_json())
            return out
        candidate.unlink(missing_ok=True)
        if attempt == attempts:
            return out
        opts = replace(options, margin=options.margin + attempt * MARGIN_STEP)
        if report.verdict == Verdict.REAL_ONLY and not (options.robust or options.robust_out):
            say("real arithmetic proves it and float32 rounding is what is left: clean margins may not move that "
                "bound; --robust trains on the margins left after worst-case rounding (docs/train.md)")
        warm = warm_start_model(target)
        extra = prover_findings(report)
        say(f"attempt {attempt + 1}: fine-tuning with margin {opts.margin:g} on {len(extra[0]):,} inputs the "
            "prover found weak, plus the usual mining")
        res = finetune(rec, seed=seed + attempt, out=run_dir / f"attempt{attempt + 1}", warm_start=warm,
                       options=opts, hyper=hyper, force=force, source=source_of(target, warm),
                       on_row=on_round(opts.margin) if on_round else None,
                       extra=extra)
        if res.interrupted or res.best is None:
            out.interrupted = f"during attempt {attempt + 1}'s fine-tune (what it wrote is in {run_dir / f'attempt{attempt + 1}'})"
            return out
        target = out.checkpoint = str(res.checkpoint)
    return out


def _keep_proven(target: str, model, run_dir: Path, candidate: Path) -> None:
    """The proven model as RUN/best.pt beside its certificate RUN/best.cert.json.xz."""
    source = Path(target)
    if source.is_file():
        shutil.copyfile(source, run_dir / "best.pt")
    else:  # a construction proven as it is
        checkpoint.save(model, run_dir / "best.pt", force=True)
    candidate.replace(run_dir / CERTIFICATE)
