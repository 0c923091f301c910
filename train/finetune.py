"""Iterated targeted fine-tuning: mine the pairs a model gets wrong (or right by a thin logit
margin), train on them mixed with ordinary batches at a low learning rate, and repeat until a
round mines nothing or the step budget is spent.

A grokked model is wrong on a thin set of inputs (the micro57 reference: 4 of the official
10,010, all with both operands ending in 00), which ordinary batches meet once in thousands of
steps. Mining finds them, and a margin term in the loss pushes the right digit's logit above
the best wrong one by `margin` at every answer step, which is also what a proof needs.

Where pairs are mined, each round: freshly drawn training pairs (the fine-tune's own seeded
generator; uniform over the recipe's last curriculum phase and carry-heavy from its sampler)
and the adversarial suites (carry, chains, window, through `verify/api.py`, a fresh suite
seed each round). Never from the held-out pairs, never from the official ones: the guard
(`guard.Forbidden`) drops both before a candidate is even evaluated, and cleans every batch.
Selection reads the held-out pairs only: the best checkpoint has the highest held-out exact
match, ties broken by the held-out pairs' smallest margin. The official cases are the CLI's
final test, after the run.
"""

from __future__ import annotations

import csv
import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterable, Iterator

import torch
import torch.nn.functional as F

from ..compiler import checkpoint
from ..compiler.decode import teacher_forced
from ..compiler.errors import AdderError
from ..compiler.module import AdderModel, compile_spec
from . import data
from .guard import Forbidden
from .loop import (BEST, LAST, METRICS, TrainingDiverged, answer_logits, data_seed, recipe_optimizer, refuse_existing_run,
                   run_meta, smallest_margin, teacher_forced_batch, warm_start_from)
from .robust import margins as step_margins
from .robust import perturbed_logits
from .optim import descend
from .recipes import Hyper, Recipe

#: Operand pairs as two long tensors (a, b).
Pairs = tuple[torch.Tensor, torch.Tensor]
#: The fine-tune's data generator is seeded apart from the run it starts from (`data_seed(seed) + FINETUNE_SALT`).
FINETUNE_SALT = 0xF1_7E
#: The adversarial suites mined in round r are drawn with seed `SUITE_SEED_BASE * seed + r`.
SUITE_SEED_BASE = 1_000
LOSSES = ("ce", "hinge", "ce+hinge")
#: Candidates evaluated per forward pass while mining.
MINE_CHUNK = 4096
#: The columns of a fine-tune's metrics.csv: one row per round (round 0: the starting model).
COLUMNS = ["round", "step", "loss", "mined_wrong", "mined_low", "mined_seen", "pool", "exact", "token_acc",
           "min_margin", "lr", "seconds"]


@dataclass(frozen=True)
class FinetuneOptions:
    """Every option of a fine-tune; all are recorded in its checkpoints (`meta["finetune"]`)."""

    steps: int = 20_000  # training steps over all rounds: the budget
    rounds: int = 10  # at most this many mine-then-train rounds, steps // rounds each
    margin: float = 1.0  # mine pairs whose smallest answer-step logit margin is below this; the hinge's target
    lr: float = 1e-3  # constant learning rate (a fresh optimizer of the recipe's kind)
    weight_decay: float = 0.0  # decay shrinks the logits, hence the margins
    loss: str = "ce+hinge"  # "ce", "hinge" (mean of relu(margin - m) over answer steps) or both, summed
    hinge_weight: float = 1.0
    error_share: float = 0.5  # share of each batch drawn from the mined pool
    fresh: int = 200_000  # freshly drawn training pairs mined per round
    carry_share: float = 0.5  # share of carry-heavy pairs among fresh and ordinary pairs
    suite_k: int = 1  # instances per carry pattern / chain of the suites mined each round (0: no suites)
    window: int = 2  # window width of the window suite mined
    pool: int = 50_000  # the mined pool keeps at most this many pairs, the lowest margins first
    robust: float = 0.0  # > 0: margins (mined and trained) under worst-case perturbations of the scores, in ulps (robust.py)
    robust_out: float = 0.0  # ... and of the attention outputs, in ulps

    def check(self) -> "FinetuneOptions":
        """These options, or one line naming the first impossible one."""
        rules = [("steps", self.steps >= 1, "a positive integer"),
                 ("rounds", 1 <= self.rounds <= self.steps, "between 1 and --steps"),
                 ("margin", math.isfinite(self.margin) and self.margin >= 0, "a finite number >= 0"),
                 ("lr", math.isfinite(self.lr) and self.lr > 0, "a positive finite number"),
                 ("weight_decay", self.weight_decay >= 0, ">= 0"),
                 ("loss", self.loss in LOSSES, f"one of {LOSSES}"),
                 ("hinge_weight", self.hinge_weight >= 0, ">= 0"),
                 ("error_share", 0 <= self.error_share <= 1, "in 0..1"),
                 ("fresh", self.fresh >= 0, ">= 0"),
                 ("carry_share", 0 <= self.carry_share <= 1, "in 0..1"),
                 ("suite_k", self.suite_k >= 0, ">= 0"),
                 ("window", 1 <= self.window <= 3, "in 1..3"),
                 ("pool", self.pool >= 1, "a positive integer"),
                 ("robust", math.isfinite(self.robust) and self.robust >= 0, "a finite number of ulps >= 0"),
                 ("robust_out", math.isfinite(self.robust_out) and self.robust_out >= 0, "a finite number of ulps >= 0")]
        for name, ok, rule in rules:
            if not ok:
                raise AdderError(f"fine-tune option {name} must be {rule}, got {getattr(self, name)!r}")
        if self.fresh == 0 and self.suite_k == 0:
            raise AdderError("fine-tuning needs somewhere to mine: fresh > 0 or suite_k > 0")
        return self

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class Mined:
    """Candidates whose smallest answer-step margin is below the threshold, and how many were looked at."""

    a: torch.Tensor
    b: torch.Tensor
    margin: torch.Tensor  # the smallest margin of each mined pair
    wrong: int  # of the candidates seen, how many the model gets wrong
    seen: int


@dataclass
class FinetuneResult:
    seed: int
    steps: int  # fine-tune steps done
    rounds: list  # one metrics row per round
    best: dict | None  # the selected round's row (None: interrupted before the first)
    stopped: str  # "clean" (a round mined nothing), "budget" or "interrupted"
    seconds: float
    checkpoint: Path
    metrics: Path
    warm_started: list = field(default_factory=list)

    @property
    def interrupted(self) -> bool:
        return self.stopped == "interrupted"

    def to_json(self) -> dict:
        best = self.best or {}
        return {"seed": self.seed, "steps": self.steps, "stopped": self.stopped, "complete": not self.interrupted,
                "best_round": best.get("round"), "best_step": best.get("step"), "best_exact": best.get("exact"),
                "best_min_margin": best.get("min_margin"), "seconds": round(self.seconds, 2),
                "checkpoint": str(self.checkpoint) if self.best else None, "metrics": str(self.metrics),
                "rounds": self.rounds, "warm_started": self.warm_started}


def source_of(target: str, model: AdderModel) -> dict:
    """What a fine-tune records of the model it starts from: the target as named, its weights'
    hash, and, for a checkpoint, the recipe, seed and step its run recorded; for a fine-tuned
    checkpoint also its own fine-tune record, so a chain of fine-tunes reads back to its start."""
    found = {"target": target, "weights_sha256": checkpoint.weights_hash(model)}
    path = Path(target)
    if path.is_file():
        meta = checkpoint.read(path)["meta"]
        found.update({k: meta[k] for k in ("recipe", "seed", "step", "val_exact", "finetune", "bridge") if k in meta})
    return found


def finetune_seed(seed: int) -> int:
    """The seed of a fine-tune's data generator (fresh pairs, pool draws, ordinary batches)."""
    return data_seed(seed) + FINETUNE_SALT


def suite_seed(seed: int, round_: int) -> int:
    """The seed of the adversarial suites mined in `round_` (fresh instances every round)."""
    return SUITE_SEED_BASE * seed + round_


def last_phase(h: Hyper) -> tuple[int, int]:
    """The digit range of the recipe's last curriculum phase: what fine-tuning draws."""
    lo, hi, _ = data.parse_curriculum(h.curriculum)[-1]
    return lo, hi


def candidates(seed: int, round_: int, o: FinetuneOptions, h: Hyper, gen: torch.Generator,
               extra: Pairs | None = None) -> Iterator[tuple]:
    """Where a round mines: the caller's `extra` pairs, `o.fresh` fresh training pairs from `gen`, then
    the adversarial suites."""
    from ..verify.api import SuiteOptions, adversarial_cases

    if extra is not None and len(extra[0]):
        yield extra
    lo, hi = last_phase(h)
    for done in range(0, o.fresh, MINE_CHUNK):
        yield data.mixed_pairs(min(MINE_CHUNK, o.fresh - done), lo, hi, o.carry_share, gen, h.carry_sampler, h.operands)
    if o.suite_k:
        yield from adversarial_cases(suite_seed(seed, round_), SuiteOptions(k=o.suite_k, window=o.window), MINE_CHUNK)


@torch.no_grad()
def robust_margins(model: AdderModel, a: torch.Tensor, b: torch.Tensor, ulps: tuple[float, float]) -> torch.Tensor:
    """[B] the smallest answer-step margin under worst-case perturbations of (scores, outputs)
    by `ulps` (`robust.py`)."""
    tokens, targets = teacher_forced_batch(model.spec.format, a, b)
    return smallest_margin(step_margins(perturbed_logits(model, tokens, targets, *ulps), targets).detach())


def mine(model: AdderModel, chunks: Iterable[tuple], guard: Forbidden, margin: float,
         robust: tuple[float, float] = (0.0, 0.0)) -> Mined:
    """The pairs of `chunks` whose smallest answer-step margin (under the `robust` worst-case
    perturbations, when any) is below `margin`, and the wrong ones; forbidden pairs are dropped
    before they are evaluated."""
    kept, wrong, seen = [(torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long), torch.zeros(0))], 0, 0
    for a, b in chunks:
        a, b = guard.drop(a, b)
        r = teacher_forced(model, a, b)
        m = robust_margins(model, a, b, robust) if any(robust) else smallest_margin(r.margin)
        low = (m < margin) | ~r.correct
        kept.append((a[low], b[low], m[low]))
        wrong += int((~r.correct).sum())
        seen += len(a)
    a, b, m = (torch.cat(column) for column in zip(*kept))
    return Mined(a, b, m, wrong, seen)


def refresh_pool(model: AdderModel, pool: tuple[torch.Tensor, torch.Tensor], mined: Mined,
                 size: int, robust: tuple[float, float] = (0.0, 0.0)) -> tuple[torch.Tensor, torch.Tensor]:
    """The pool and the newly mined pairs, each once, re-scored by `model`: the `size` lowest margins.
    Pairs mined earlier stay while they are among the hardest, so fixed errors are replayed."""
    pairs = torch.unique(torch.stack([torch.cat([pool[0], mined.a]), torch.cat([pool[1], mined.b])], 1), dim=0)
    if len(pairs) <= size:
        return pairs[:, 0], pairs[:, 1]
    def score(a, b):
        return robust_margins(model, a, b, robust) if any(robust) else smallest_margin(teacher_forced(model, a, b).margin)
    m = torch.cat([score(pairs[i:i + MINE_CHUNK, 0], pairs[i:i + MINE_CHUNK, 1]) for i in range(0, len(pairs), MINE_CHUNK)])
    keep = pairs[m.argsort()[:size]]
    return keep[:, 0], keep[:, 1]


def finetune_batch(n: int, pool: tuple[torch.Tensor, torch.Tensor], o: FinetuneOptions, h: Hyper,
                   gen: torch.Generator, guard: Forbidden) -> tuple[torch.Tensor, torch.Tensor]:
    """`n` pairs: an `error_share` of them drawn from the pool, each at most once (a small pool must
    not crowd a batch), the rest ordinary (the last phase, a `carry_share` carry-heavy); cleaned of
    forbidden pairs like every training batch."""
    k = min(round(n * o.error_share), len(pool[0]))
    pick = torch.randperm(len(pool[0]), generator=gen)[:k]
    lo, hi = last_phase(h)
    a, b = data.mixed_pairs(n - k, lo, hi, o.carry_share, gen, h.carry_sampler, h.operands)
    return guard.clean(torch.cat([pool[0][pick], a]), torch.cat([pool[1][pick], b]))


def finetune_loss(model: AdderModel, a: torch.Tensor, b: torch.Tensor, o: FinetuneOptions) -> torch.Tensor:
    """Cross-entropy of the answer digits, a hinge on each answer step's margin (the right logit
    minus the best wrong one, wanted >= o.margin), or both; with `o.robust`, of the logits under
    worst-case perturbations (`robust.py`)."""
    if o.robust or o.robust_out:
        tokens, answer = teacher_forced_batch(model.spec.format, a, b)
        logits = perturbed_logits(model, tokens, answer, o.robust, o.robust_out)
    else:
        logits, answer = answer_logits(model, a, b)
    if o.loss == "ce":
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), answer.reshape(-1))
    hinge = F.relu(o.margin - step_margins(logits, answer)).mean()
    if o.loss == "hinge":
        return hinge
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), answer.reshape(-1)) + o.hinge_weight * hinge


@torch.no_grad()
def held_out(model: AdderModel, va: torch.Tensor, vb: torch.Tensor) -> dict:
    """Exact match, token accuracy and the smallest margin on the held-out pairs: all selection reads."""
    rows = [teacher_forced(model, va[i:i + MINE_CHUNK], vb[i:i + MINE_CHUNK]) for i in range(0, len(va), MINE_CHUNK)]
    answer = model.spec.format.answer(va, vb)
    pred = torch.cat([r.pred for r in rows])
    return {"exact": float(torch.cat([r.correct for r in rows]).float().mean()),
            "token_acc": float((pred == answer).float().mean()),
            "min_margin": float(smallest_margin(torch.cat([r.margin for r in rows])).min())}


def finetune(recipe: Recipe, *, seed: int, out: Path, warm_start: AdderModel,
             options: FinetuneOptions = FinetuneOptions(), hyper: Hyper | None = None, force: bool = False,
             source: dict | None = None, on_row: Callable[[dict], None] | None = None,
             extra: Pairs | None = None) -> FinetuneResult:
    """Fine-tune `warm_start` (a model whose parameters fit `recipe`'s) round by round; keep the best
    held-out checkpoint in `out`. `source`: what the caller knows of where `warm_start` came from
    (recorded). `extra`: pairs mined every round besides the fresh and suite ones (the prover's
    counterexample and weak inputs under `--until-proven`); the guard drops forbidden ones like any
    other. Ctrl-C ends it early with what the last round wrote."""
    o = options.check()
    h = hyper or recipe.hyper
    last_phase(h)  # a curriculum the sampler can follow, before any work
    refuse_existing_run(out, force=force)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model = compile_spec(recipe.build(), seed=seed)
    warm = warm_start_from(model, warm_start)
    model.train()
    opt = recipe_optimizer(model, replace(h, lr=o.lr, weight_decay=o.weight_decay))
    gen = torch.Generator().manual_seed(finetune_seed(seed))
    va, vb = data.validation_pairs(h.eval_pairs)
    guard = Forbidden.for_run(h.eval_pairs)
    meta = {**run_meta(recipe, seed, h, warm_start=warm_start, warm_started=warm),
            "finetune": {**o.to_json(), "data_seed": finetune_seed(seed),
                         "suite_seeds": f"{SUITE_SEED_BASE} * seed + round", "source": source or {},
                         "extra_pairs": 0 if extra is None else len(extra[0])}}
    per_round = o.steps // o.rounds
    pool = (torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long))
    rows, best, stopped, step, t0 = [], None, "budget", 0, time.perf_counter()
    loss_sum = 0.0
    with open(out / METRICS, "w", newline="") as fcsv:
        writer = csv.DictWriter(fcsv, fieldnames=COLUMNS)
        writer.writeheader()
        try:
            for r in range(o.rounds + 1):
                robust = (o.robust, o.robust_out)
                mined = mine(model, candidates(seed, r, o, h, gen, extra), guard, o.margin, robust)
                pool = refresh_pool(model, pool, mined, o.pool, robust)
                row = {"round": r, "step": step, "loss": loss_sum / per_round if r else None,
                       "mined_wrong": mined.wrong, "mined_low": len(mined.a), "mined_seen": mined.seen,
                       "pool": len(pool[0]), **held_out(model, va, vb), "lr": o.lr,
                       "seconds": round(time.perf_counter() - t0, 2)}
                writer.writerow(row)
                fcsv.flush()
                rows.append(row)
                if best is None or _rank(row, robust=any(robust)) > _rank(best, robust=any(robust)):
                    best = row
                    checkpoint.save(model, out / BEST, force=True, meta=_meta(meta, row))
                checkpoint.save(model, out / LAST, force=True, meta=_meta(meta, row))
                if on_row:
                    on_row(row)
                if not len(mined.a):
                    stopped = "clean"
                    break
                if r == o.rounds:
                    break
                loss_sum = 0.0
                for _ in range(per_round):
                    a, b = finetune_batch(h.batch, pool, o, h, gen, guard)
                    loss = finetune_loss(model, a, b, o)
                    if not math.isfinite(loss.item()):
                        raise TrainingDiverged(f"fine-tune loss is {loss.item()} at step {step + 1:,} (round {r + 1}); "
                                               f"stopped. The best checkpoint so far is {out / BEST}; "
                                               "a lower --lr usually helps")
                    descend(model, opt, loss, h.clip)
                    loss_sum += loss.item()
                    step += 1
        except KeyboardInterrupt:
            stopped = "interrupted"
    return FinetuneResult(seed=seed, steps=step, rounds=rows, best=best, stopped=stopped,
                          seconds=time.perf_counter() - t0, checkpoint=out / BEST, metrics=out / METRICS,
                          warm_started=warm)


def _rank(row: dict, robust: bool = False) -> tuple:
    """What selection prefers: held-out exact, then fewer wrong among the pairs this round mined
    (fresh training pairs and the adversarial suites, never an official pair: a count the
    held-out set cannot see, and the one the fine-tune exists to bring down), then (with
    `robust`) fewer mined pairs below the margin under the perturbation, the quantity a robust
    fine-tune exists to bring down, then the held-out smallest margin. Rows are written before
    their round trains, so a row's counts are its checkpoint's own."""
    if robust:
        return row["exact"], -row["mined_wrong"], -row["mined_low"], row["min_margin"]
    return row["exact"], -row["mined_wrong"], row["min_margin"]


def _meta(meta: dict, row: dict) -> dict:
    """A fine-tune checkpoint's meta: the run's, and where in the fine-tune it was written."""
    return {**meta, "step": row["step"], "val_exact": row["exact"],
            "finetune": {**meta["finetune"], "round": row["round"], "val_min_margin": row["min_margin"]}}
