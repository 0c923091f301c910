"""The training loop. It knows a model, a batch function and a loss; nothing about the
architecture. Callbacks get every log row; evaluation uses held-out pairs.

A run loses nothing it has done: checkpoints are written whole (the best held-out one and
the last one, at every evaluation), a non-finite loss stops the run at once with one line
(`TrainingDiverged`; a learning rate too high, usually), and Ctrl-C ends it early with a
result marked `interrupted` whose best checkpoint so far is already on disk.
"""

from __future__ import annotations

import csv
import logging
import math
import platform
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import torch
import torch.nn.functional as F

from ..compiler import checkpoint
from ..compiler.decode import teacher_forced
from ..compiler.errors import AdderError, CheckpointError
from ..compiler.module import AdderModel, compile_spec
from . import data
from .finish import WeightEMA, lbfgs
from .guard import Forbidden
from .optim import descend, make_optimizer
from .record import Selection, metrics_row
from .recipes import Hyper, Recipe

log = logging.getLogger(__name__)


#: Exact match at which a run counts as grokked (the AdderBoard threshold).
#: The checkpoints a run folder holds: the best held-out one, and the last one (to resume from).
BEST, LAST = "best.pt", "last.pt"
#: A run folder's other files: the state `--resume` reads beside LAST, and the metrics table.
STATE, METRICS = "last.state.pt", "metrics.csv"
#: The columns of metrics.csv, in order. `phase`: "train" (the recipe's optimizer) or "lbfgs" (the
#: finishing phase, `Hyper.lbfgs_steps`); `ema_exact`: the weight average's held-out exact match
#: (`Hyper.ema_after`), empty before it started; `min_margin`: the held-out pairs' smallest logit margin.
METRICS_COLUMNS = ["step", "loss", "exact", "token_acc", "lr", "carry_mix", "seconds", "steps_per_s", "weight_decay",
                   "phase", "ema_exact", "min_margin"]


def lr_at(step: int, h: Hyper) -> float:
    if step < h.warmup:
        return h.lr * (step + 1) / h.warmup
    progress = min(1.0, (step - h.warmup) / max(1, h.steps - h.warmup))
    low = h.lr * h.min_lr_ratio
    return low + (h.lr - low) * 0.5 * (1 + math.cos(math.pi * progress))


def teacher_forced_batch(fmt, a: torch.Tensor, b: torch.Tensor, eos: int = -1) -> tuple[torch.Tensor, torch.Tensor]:
    """The tokens fed in [B, T] and the targets of the last positions [B, n]: the prompt and every answer
    digit but the last, targets the answer. With `eos` >= 0 (`Hyper.eos_token`) the last digit is fed in
    too and its position's target is `eos`: the end-of-sequence step MicroAdder's trainer also learns."""
    answer = fmt.answer(a, b)
    if eos < 0:
        return torch.cat([fmt.encode(a, b), answer[:, :-1]], dim=1), answer
    return torch.cat([fmt.encode(a, b), answer], dim=1), torch.cat([answer, torch.full_like(answer[:, :1], eos)], dim=1)


def check_eos(spec, h: Hyper) -> None:
    """An AdderError, before training, if `h.eos_token` names no token of `spec` or its learned position
    table ends before the end-of-sequence step."""
    if h.eos_token < 0:
        return
    if h.eos_token >= len(spec.vocab):
        raise AdderError(f"eos_token {h.eos_token} is not a token of {spec.name} (vocabulary of {len(spec.vocab)}); "
                         "--set eos_token=T with T < the vocabulary size, or -1")
    if spec.pos is not None and spec.pos.shape[0] < spec.format.total_len + 1:
        raise AdderError(f"{spec.name}'s position table has {spec.pos.shape[0]} rows, no room for an end-of-sequence "
                         f"step at position {spec.format.total_len}; leave eos_token at -1")


def answer_logits(model: AdderModel, a: torch.Tensor, b: torch.Tensor, forward=None,
                  eos: int = -1) -> tuple[torch.Tensor, torch.Tensor]:
    """Teacher-forced logits [B, n, V] and targets [B, n] of the answer digits (and of the end-of-sequence
    step when `eos` >= 0: `teacher_forced_batch`); `forward`: a compiled `model`."""
    tokens, targets = teacher_forced_batch(model.spec.format, a, b, eos)
    return (forward or model)(tokens, keep_last=targets.shape[1]), targets


def answer_loss(model: AdderModel, a: torch.Tensor, b: torch.Tensor, forward=None, eos: int = -1) -> torch.Tensor:
    """Cross-entropy of the answer digits (and of the end-of-sequence step when `eos` >= 0), teacher-forced
    (`forward`: a compiled `model`)."""
    logits, targets = answer_logits(model, a, b, forward, eos)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


def smallest_margin(margin: torch.Tensor) -> torch.Tensor:
    """[B, n] margins -> [B], the smallest over answer steps (NaN counts as -inf: wrong)."""
    return torch.nan_to_num(margin.float(), nan=float("-inf")).amin(dim=1)


@torch.no_grad()
def evaluate(model: AdderModel, a: torch.Tensor, b: torch.Tensor, chunk: int = 4096) -> dict:
    """Exact match, token accuracy and the smallest answer-step logit margin on pairs (a, b)."""
    model.eval()
    exact = tok = 0
    low = float("inf")
    fmt = model.spec.format
    for i in range(0, len(a), chunk):
        r = teacher_forced(model, a[i:i + chunk], b[i:i + chunk])
        exact += int(r.correct.sum())
        tok += int((r.pred == fmt.answer(a[i:i + chunk], b[i:i + chunk])).sum())
        low = min(low, float(smallest_margin(r.margin).min()))
    model.train()
    return {"exact": exact / len(a), "token_acc": tok / (len(a) * fmt.out_digits), "min_margin": low}


class TrainingDiverged(AdderError):
    """The training loss became NaN or infinite: the run stopped (its best checkpoint so far is kept)."""


@dataclass
class RunResult:
    seed: int
    steps: int  # the last step done
    best_exact: float  # -1.0 before the first evaluation
    best_step: int  # -1 before the first evaluation
    grokked_step: int | None
    seconds: float
    checkpoint: Path  # the best held-out checkpoint (absent if the run ended before its first evaluation)
    metrics: Path
    rows: list = field(default_factory=list)
    warm_started: list = field(default_factory=list)
    interrupted: bool = False  # ended early by Ctrl-C

    def to_json(self) -> dict:
        """The run's summary (its rows are in `metrics`)."""
        evaluated = self.best_step >= 0
        return {"seed": self.seed, "steps": self.steps, "complete": not self.interrupted,
                "best_exact": self.best_exact if evaluated else None, "best_step": self.best_step if evaluated else None,
                "grokked_step": self.grokked_step, "seconds": round(self.seconds, 2),
                "checkpoint": str(self.checkpoint) if self.checkpoint.exists() else None,
                "metrics": str(self.metrics), "warm_started": self.warm_started}


def warm_start_gaps(recipe: Recipe, source: AdderModel) -> list[str]:
    """The recipe's parameters that `source` cannot fill (no parameter of that name and shape): a warm
    start leaves them at their initial values. Asked before any work (`adder train --warm-start`)."""
    theirs = {n: tuple(t.shape) for n, t in source.named_spec_params()}
    return [n for n, t in compile_spec(recipe.build()).named_spec_params() if theirs.get(n) != tuple(t.shape)]


def warm_start_from(model: AdderModel, source: AdderModel) -> list[str]:
    """Copy into `model` every parameter of `source` with the same name and shape; their names.

    A compiled construction shares names with a recipe only where both were written that way,
    so this is explicit: nothing copied is an error, and the caller reports what was."""
    mine, theirs = dict(model.named_spec_params()), dict(source.named_spec_params())
    copied = [n for n, t in theirs.items() if n in mine and mine[n].shape == t.shape]
    if not copied:
        raise AdderError(f"--warm-start {source.spec.name}: none of its parameters "
                         f"({', '.join(sorted(theirs)) or 'none'}) matches "
                         f"{model.spec.name}'s by name and shape ({', '.join(sorted(mine))})")
    with torch.no_grad():
        for n in copied:
            mine[n].copy_(theirs[n].to(mine[n].dtype))
    return copied


def recipe_optimizer(model: AdderModel, h: Hyper) -> torch.optim.Optimizer:
    """The recipe's optimizer over `model`'s trainable parameters: decay on all of them or on matrices only,
    behind a Grokfast-EMA filter when the recipe asks for one."""
    h.check()
    trainable = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in trainable if h.decay == "all" or p.dim() >= 2]
    no_decay = [p for p in trainable if not (h.decay == "all" or p.dim() >= 2)]
    return make_optimizer(h.optimizer, [{"params": decay, "weight_decay": h.weight_decay},
                                        {"params": no_decay, "weight_decay": 0.0}],
                          lr=h.lr, grokfast_alpha=h.grokfast_alpha, grokfast_lamb=h.grokfast_lamb)


def data_seed(seed: int, step: int = 0) -> int:
    """The seed of a run's training-data generator at `step` (a resumed run draws on from there)."""
    return seed * 1_000_003 + step


def run_meta(recipe: Recipe, seed: int, h: Hyper, *, compile: bool = False, warm_start: AdderModel | None = None,
             warm_started: list | None = None) -> dict:
    """What a run records in its checkpoints (besides `checkpoint.PROVENANCE`): recipe, seed, hyperparameters,
    and the machine's kernels. Training is chaotic: the same seed and code on a CPU whose torch kernels use
    other vector instructions (AVX2 vs AVX-512) agree for the first thousands of steps, then part, and may
    grok on one machine and not on the other (docs/train.md), so the run records which kernels it used."""
    return {"recipe": recipe.name, "seed": seed, "hyper": h.to_json(), "python": platform.python_version(),
            "machine": platform.machine(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "validation_seed": data.VALIDATION_SEED, "compile": compile,
            **({"warm_start": warm_start.spec.name, "warm_started": warm_started} if warm_started else {})}


def refuse_existing_run(out: Path, *, force: bool, resume: Path | None = None) -> None:
    """An AdderError if `out` already holds a run's checkpoints, unless `force` or resuming."""
    if not force and not resume and ((out / BEST).exists() or (out / LAST).exists()):
        raise AdderError(f"{out} already holds a run; pass --force to overwrite it or --resume {out / LAST}")


def train(recipe: Recipe, *, seed: int, out: Path, hyper: Hyper | None = None, resume: Path | None = None,
          on_row: Callable[[dict], None] | None = None, force: bool = False,
          warm_start: AdderModel | None = None, compile: bool = False,
          after_step: Callable[[AdderModel, int], None] | None = None) -> RunResult:
    """Train `recipe` from scratch (or resume), keeping the best held-out checkpoint in `out`.

    `warm_start`: a compiled model whose same-named, same-shaped parameters replace the
    seeded initial values. `compile`: run the training forward pass through torch.compile
    (10-26 s to compile here; gains ranged from -30% to +50%, so it is not the default).
    `after_step(model, steps_done)`: called after every optimizer step, before evaluation (a
    projection such as bridge.Anneal)."""
    h = (hyper or recipe.hyper).check()
    phases = data.parse_curriculum(h.curriculum)
    check_eos(recipe.build(), h)
    refuse_existing_run(out, force=force, resume=resume)
    out.mkdir(parents=True, exist_ok=True)
    best_path, last_path, csv_path = out / BEST, out / LAST, out / METRICS
    torch.manual_seed(seed)
    start = 0
    if resume:
        ck = checkpoint.read(resume)
        meta = ck["meta"]
        if meta.get("recipe") != recipe.name:
            raise AdderError(f"{resume} is a checkpoint of {meta.get('recipe') or meta.get('name')!r}, "
                             f"not of recipe {recipe.name!r}; resume it with its own recipe")
        if "finetune" in meta or "bridge" in meta:
            raise AdderError(f"{resume} is a {'fine-tuned' if 'finetune' in meta else 'bridged'} checkpoint; "
                             f"fine-tune it with --warm-start {resume} --finetune, or resume the run it came from")
        checkpoint.from_checkpoint(ck, where=str(resume))  # checks the file: hash, shapes
        # the recipe's own spec, not the stored copy: a spec read back from JSON evaluates its
        # tied expressions in another order, so gradients would differ in the last bit
        model = compile_spec(recipe.build())
        try:
            checkpoint.load_state(model, ck["state"], where=str(resume))
        except CheckpointError:
            raise AdderError(f"{resume} does not match recipe {recipe.name!r}'s parameters; "
                             "resume it with its own recipe") from None
        start = int(meta.get("step", 0))
        seed = int(meta.get("seed", seed))
        if start >= h.steps:
            raise AdderError(f"{resume} is already at step {start:,} of {h.steps:,}; pass a larger --steps to go on")
    else:
        model = compile_spec(recipe.build(), seed=seed)
    warm = warm_start_from(model, warm_start) if warm_start is not None and not resume else []
    model.train()
    forward = torch.compile(model) if compile else None
    opt = recipe_optimizer(model, h)
    ema = WeightEMA(model, after=h.ema_after, decay=h.ema_decay)  # off unless h.ema_after > 0
    gen = torch.Generator().manual_seed(data_seed(seed, start))
    va, vb = data.validation_pairs(h.eval_pairs)
    guard = Forbidden.for_run(h.eval_pairs)  # no batch holds an official or a held-out pair
    meta = run_meta(recipe, seed, h, compile=compile, warm_start=warm_start, warm_started=warm)
    sel = Selection()
    state_path = out / STATE  # optimizer moments, data generator, selection: exact resume
    if resume:
        side = resume.parent / (resume.stem + ".state.pt")
        if side.exists():
            st = torch.load(side, map_location="cpu", weights_only=True)
            if st.get("step") == start:
                opt.load_state_dict(st["optimizer"])
                gen.set_state(st["generator"])
                ema.load_state_dict(st.get("ema"))
                sel = Selection.from_state(st)
            else:
                log.warning("%s is of step %s, not %s: resuming with a fresh optimizer", side, st.get("step"), start)
        else:
            log.warning("no %s next to %s: resuming with a fresh optimizer", side.name, resume)
    rows, t0 = [], time.perf_counter()
    loss_sum, loss_n, done = 0.0, 0, start
    interrupted = False
    with open(csv_path, "a" if resume else "w", newline="") as fcsv:
        writer = csv.DictWriter(fcsv, fieldnames=METRICS_COLUMNS)
        if not resume:
            writer.writeheader()
        try:
            for step in range(start, h.steps):
                lr = lr_at(step, h)
                for g in opt.param_groups:
                    g["lr"] = lr
                a, b = data.hyper_batch(h, step, h.batch, phases, gen, guard)
                loss = answer_loss(model, a, b, forward, h.eos_token)
                step_loss = loss.item()
                if not math.isfinite(step_loss):
                    writer.writerow({"step": step + 1, "loss": step_loss, "lr": lr,
                                     "seconds": round(time.perf_counter() - t0, 2)})
                    raise TrainingDiverged(f"training loss is {step_loss} at step {step + 1:,} (learning rate {lr:.3g}); "
                                           f"stopped. {kept_checkpoint(best_path, sel.best, sel.best_step, h.eval_every)}; "
                                           "a lower --lr usually helps")
                descend(model, opt, loss, h.clip)
                if after_step:
                    after_step(model, step + 1)
                ema.update()
                done = step + 1
                loss_sum, loss_n = loss_sum + step_loss, loss_n + 1
                last = step == h.steps - 1
                if (step + 1) % h.eval_every == 0 or last:
                    ev = evaluate(model, va, vb)
                    ema_ev = averaged(ema, model, va, vb)  # None until the weight average has started
                    ema.follow(ev["exact"])
                    wd = h.weight_decay_at(ev["exact"], ev["token_acc"])  # adaptive decay (a no-op without wd_drops)
                    opt.param_groups[0]["weight_decay"] = wd
                    seconds = time.perf_counter() - t0
                    row = metrics_row(h, step, loss=loss_sum / loss_n, exact=ev["exact"], token_acc=ev["token_acc"],
                                      min_margin=ev["min_margin"], lr=lr, seconds=round(seconds, 2),
                                      steps_per_s=round((step + 1 - start) / max(1e-9, seconds), 1), weight_decay=wd,
                                      ema_exact=ema_ev and ema_ev["exact"])
                    loss_sum, loss_n = 0.0, 0
                    writer.writerow(row)
                    fcsv.flush()
                    rows.append(row)
                    if sel.observe(step + 1, ev["exact"], row["ema_exact"]):
                        with ema.swapped() if sel.best_weights == "ema" else nullcontext():
                            checkpoint.save(model, best_path, force=True, meta={**meta, "step": step + 1,
                                                                               "val_exact": sel.best,
                                                                               "weights": sel.best_weights})
                    checkpoint.save(model, last_path, force=True,
                                    meta={**meta, "step": step + 1, "val_exact": ev["exact"], "weights": "raw"})
                    checkpoint.save_whole({"step": step + 1, "optimizer": opt.state_dict(), "generator": gen.get_state(),
                                           **sel.state(), "ema": ema.state_dict()}, state_path)
                    if on_row:
                        on_row(row)
                    if sel.perfect_streak >= h.early_stop_evals:
                        break
                elif on_row and step % 50 == 0:
                    on_row({"step": step + 1, "loss": step_loss, "lr": lr,
                            "steps_per_s": (step + 1 - start) / max(1e-9, time.perf_counter() - t0)})
            if h.lbfgs_steps:  # the finishing phase, on fresh pairs of the run's own stream
                batch = data.hyper_batch(h, done, h.lbfgs_batch, phases, gen, guard)
                found = finish_with_lbfgs(model, h, batch, va, vb, best_path=best_path, meta=meta, step=done, t0=t0,
                                          writer=writer, fcsv=fcsv, rows=rows, on_row=on_row)
                if found:
                    sel.finished(*found)
        except KeyboardInterrupt:  # Ctrl-C: the checkpoints of the last evaluation are whole on disk
            interrupted = True
    return RunResult(seed=seed, steps=done, best_exact=sel.best, best_step=sel.best_step, grokked_step=sel.grokked,
                     seconds=time.perf_counter() - t0, checkpoint=best_path, metrics=csv_path, rows=rows,
                     warm_started=warm, interrupted=interrupted)


def averaged(ema: WeightEMA, model: AdderModel, va: torch.Tensor, vb: torch.Tensor) -> dict | None:
    """The weight average's held-out evaluation (`evaluate`), or None before it started."""
    if not ema.started:
        return None
    with ema.swapped():
        return evaluate(model, va, vb)


def lbfgs_rows(model: AdderModel, h: Hyper, batch: tuple[torch.Tensor, torch.Tensor], va: torch.Tensor,
               vb: torch.Tensor, *, step: int, t0: float) -> Iterator[dict]:
    """The L-BFGS finishing phase on one fixed `batch`: a metrics row for its start and one after each
    iteration (loss on that batch, held-out figures), numbered on from the run's last `step`."""
    a, b = batch

    def row(k: int) -> dict:
        with torch.no_grad():
            loss = answer_loss(model, a, b, eos=h.eos_token).item()
        ev = evaluate(model, va, vb)
        return {"step": step + k, "loss": loss, "exact": ev["exact"], "token_acc": ev["token_acc"], "lr": 1.0,
                "seconds": round(time.perf_counter() - t0, 2), "phase": "lbfgs", "min_margin": ev["min_margin"]}

    yield row(0)
    for k in lbfgs(model, lambda: answer_loss(model, a, b, eos=h.eos_token), h.lbfgs_steps):
        yield row(k)


def finish_with_lbfgs(model: AdderModel, h: Hyper, batch: tuple[torch.Tensor, torch.Tensor], va: torch.Tensor,
                      vb: torch.Tensor, *, best_path: Path, meta: dict, step: int, t0: float, writer, fcsv,
                      rows: list, on_row) -> tuple[float, int] | None:
    """Run the L-BFGS phase from the best held-out weights (best.pt: raw or averaged) on `batch`, fresh
    training pairs of the run's own generator, cleaned by the guard like every batch. Selection as in
    fine-tuning: best.pt is replaced by an iterate with a higher (held-out exact, smallest margin).
    The new (best exact, best step), or None if no iterate beat the start. last.pt stays the
    recipe optimizer's last step, so `--resume` with a larger --steps goes on from there."""
    checkpoint.load_state(model, checkpoint.read(best_path)["state"], where=str(best_path))
    chosen, kept = None, None
    for row in lbfgs_rows(model, h, batch, va, vb, step=step, t0=t0):
        writer.writerow(row)
        fcsv.flush()
        rows.append(row)
        if on_row:
            on_row(row)
        if not math.isfinite(row["loss"]):
            log.warning("L-BFGS loss is %s at step %s: finishing phase stopped; %s kept", row["loss"], row["step"], best_path)
            break
        key = (row["exact"], row["min_margin"])
        if kept is None:
            kept = key  # the start: the weights best.pt holds
        elif key > kept:
            kept, chosen = key, (row["exact"], row["step"])
            checkpoint.save(model, best_path, force=True,
                            meta={**meta, "step": row["step"], "val_exact": row["exact"], "weights": "lbfgs",
                                  "lbfgs_step": row["step"] - step, "val_min_margin": row["min_margin"]})
    return chosen


def kept_checkpoint(best_path: Path, best: float, best_step: int, eval_every: int) -> str:
    """What a run that stopped early leaves behind: its best checkpoint so far, if it had one."""
    if best_step < 0:
        return f"No checkpoint was written (the first evaluation is at step {eval_every:,})"
    return f"The best checkpoint so far is {best_path} (held-out exact {best:.4f} at step {best_step:,})"


def final_test(path: Path) -> dict:
    """The official AdderBoard 10,010 cases on a trained checkpoint: run once, after training
    (selection and early stopping never see them)."""
    from ..verify.api import official_suite

    r = official_suite(checkpoint.load(path))
    return {"passed": r.passed, "cases": r.cases, "accuracy": r.passed / r.cases}
