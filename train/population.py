"""Seed populations: S seeds of one recipe trained in one process, as one batched computation.

Training tiny adders is a seed lottery, and one 57-parameter model leaves a core (let alone a
GPU) mostly idle. A population stacks its members' parameters along a leading member
dimension and runs the module's forward for all of them at once (`torch.func.vmap` over
`functional_call`); one backward pass gives every member its own gradient, since members
share nothing.

Each member is the single run of its seed (`train(recipe, seed=N)`): the same initial values
(`compile_spec(spec, seed=N)`), the same batches (its own generator, seeded as the loop seeds
it), its own AdamW moments, gradient clipping, adaptive weight decay, weight average
(`Hyper.ema_after`), early stop and checkpoints: `out/seed<N>/` holds `best.pt`, `last.pt`, `last.state.pt` and `metrics.csv`
as a single run writes them, so `adder info` and `adder verify` read a member's checkpoint and
`adder train RECIPE --resume out/seed<N>/last.pt` continues one member alone. A member that
stops early (perfect held-out evaluations in a row, or a non-finite loss) leaves the stacks
and the others go on without it. The L-BFGS finishing phase (`Hyper.lbfgs_steps`) runs after
the batched steps, member by member (a line search does not batch), each exactly as its single
run's: from its best.pt, on a batch from its own generator where its steps ended.

Members match their single runs to float rounding, not bit for bit: batched kernels (a `bmm`
for an `mm`, a norm over one row of a stack) may sum in another order.
"""

from __future__ import annotations

import csv
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, TextIO

import torch
import torch.nn.functional as F
from torch.func import functional_call, vmap

from ..compiler import checkpoint
from ..compiler.errors import AdderError
from ..compiler.module import AdderModel, compile_spec
from . import data
from .guard import Forbidden
from .loop import (BEST, LAST, METRICS, METRICS_COLUMNS, STATE, RunResult, check_eos, data_seed,
                   finish_with_lbfgs, lr_at, refuse_existing_run, run_meta, smallest_margin, teacher_forced_batch,
                   warm_start_from)
from .optim import make_optimizer
from .record import Selection, metrics_row
from .recipes import Hyper, Recipe
from .sweep import seed_folder

#: Steps between two progress rows (`on_row`) without an evaluation, as a single run reports them.
PROGRESS_EVERY = 50
#: Held-out pairs times members in one batched evaluation pass (bounds its memory).
EVAL_ROWS = 16_384
#: Why a member stopped before the last step: perfect held-out evaluations in a row, or a loss
#: that is no longer a finite number.
EARLY_STOP, DIVERGED = "early stop", "diverged"


@dataclass
class PopulationResult:
    """What a population run did: one `RunResult` per seed, in the order the seeds were given."""

    runs: list[RunResult]
    ended: dict[int, str]  # seed -> why it stopped before the last step (EARLY_STOP or DIVERGED)
    steps: int  # population steps done (the longest member's)
    seed_steps: int  # member steps done, all members together
    seconds: float
    interrupted: bool = False  # Ctrl-C: every member's checkpoints of its last evaluation are on disk

    @property
    def seed_steps_per_s(self) -> float:
        return self.seed_steps / max(1e-9, self.seconds)


def train_population(recipe: Recipe, seeds: list[int], out: Path, hyper: Hyper | None = None, *,
                     device: str = "cpu", force: bool = False, warm_start: AdderModel | None = None,
                     on_row: Callable[[dict], None] | None = None) -> PopulationResult:
    """Train one member of `recipe` per seed in one batched computation; member N's run goes to out/seed<N>/.

    `warm_start`: a compiled model whose same-named, same-shaped parameters replace every
    member's seeded initial values (members then differ only in their data). `device`: where
    the stacked parameters and batches live ("cuda" for a GPU); each member's data is drawn on
    the CPU from its own generator, exactly as its single run draws it.

    `on_row(row)` is called every PROGRESS_EVERY steps and after every evaluation, with the
    population's state: "step", "steps" (the run's length), "members", "active" (members
    still training), "loss" (mean of the active members' last loss), "lr", "steps_per_s",
    "seed_steps_per_s", "grokked" (members that reached GROKKED_AT so far), "best_exact" and
    "best_seed" (the best held-out exact match so far and whose; -1.0 and None before the
    first evaluation) and "ended" ({seed: why} for the members that stopped since the last
    row). A row after an evaluation also has "evaluated": {seed: the row that member wrote to
    its metrics.csv}; a row of the L-BFGS phase has "finishing": (members finished, members to
    finish).
    """
    h = hyper or recipe.hyper
    if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise AdderError(f"a population needs distinct non-negative seeds, got {seeds}")
    check_eos(recipe.build(), h)
    for s in seeds:
        folder = seed_folder(out, s)
        refuse_existing_run(folder, force=force)
    population = _Population(recipe, h, seeds, out, _device(device), warm_start)
    try:
        return population.run(on_row)
    finally:
        population.close()


def _device(name: str) -> torch.device:
    """The torch device `name`, or a one-line error (no such device, or no CUDA here)."""
    try:
        device = torch.device(name)
    except RuntimeError:
        raise AdderError(f"--device must name a torch device (cpu, cuda, cuda:1), got {name!r}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise AdderError(f"--device {name}: this machine has no CUDA device (torch {torch.__version__})")
    return device


@dataclass
class _Member:
    """One seed's bookkeeping: what a single run keeps in its loop's locals."""

    seed: int
    folder: Path
    gen: torch.Generator  # the member's data stream
    meta: dict
    csv_file: TextIO
    csv: csv.DictWriter
    weight_decay: float  # its current (adaptive) decay
    warm_started: list
    sel: Selection = field(default_factory=Selection)  # best, grokked, streak: as a single run's
    loss_sum: float = 0.0
    loss_n: int = 0
    steps: int = 0  # steps done
    rows: list = field(default_factory=list)

    def result(self, seconds: float) -> RunResult:
        return RunResult(seed=self.seed, steps=self.steps, best_exact=self.sel.best, best_step=self.sel.best_step,
                         grokked_step=self.sel.grokked, seconds=seconds, checkpoint=self.folder / BEST, metrics=self.folder / METRICS,
                         rows=self.rows, warm_started=self.warm_started)


class _Population:
    """The members' stacked parameters, their optimizer and bookkeeping; `run` is the training loop."""

    def __init__(self, recipe: Recipe, h: Hyper, seeds: list[int], out: Path, device: torch.device,
                 warm_start: AdderModel | None):
        self.h, self.device = h.check(), device
        self.phases = data.parse_curriculum(h.curriculum)
        spec = recipe.build()  # one spec for all: its tied expressions evaluate in one order
        self.fmt = spec.format
        singles = [compile_spec(spec, seed=s) for s in seeds]  # each member's initial values, as its single run's
        warm = [warm_start_from(m, warm_start) if warm_start is not None else [] for m in singles]
        self.template = compile_spec(spec, device=str(device)).train()  # the module the stacks run through
        self.saver = singles[0]  # a CPU module a member's weights are copied into to be written
        trainable = {n for n, p in self.template.named_parameters() if p.requires_grad}
        self.params = {n: torch.stack([dict(m.named_parameters())[n].detach() for m in singles]).to(device)
                       .requires_grad_(n in trainable) for n, _ in self.template.named_parameters()}
        # a single run's decay split, judged on each member's own (unstacked) shape
        self.decay = [n for n in self.params if n in trainable and (h.decay == "all" or self.params[n].dim() > 2)]
        self.no_decay = [n for n in self.params if n in trainable and n not in self.decay]
        self.opt = self._optimizer(self.params)
        # each member's weight average (`Hyper.ema_after`, as `finish.WeightEMA`): a stack row per member,
        # followed only once `averaging` says that member's average has started
        self.trainable = [n for n in self.params if n in trainable]
        self.shadow = {n: self.params[n].detach().clone() for n in self.trainable}
        self.averaging = torch.zeros(len(seeds), dtype=torch.bool)
        self.members = [self._member(recipe, s, seed_folder(out, s), warm_start, w) for s, w in zip(seeds, warm)]
        self.active = list(self.members)  # the members in the stacks, in stack order
        va, vb = data.validation_pairs(h.eval_pairs)
        self.guard = Forbidden.for_run(h.eval_pairs)  # no batch holds an official or a held-out pair
        answer = self.fmt.answer(va, vb)
        self.va_tokens = torch.cat([self.fmt.encode(va, vb), answer[:, :-1]], dim=1).to(device)
        self.va_answer = answer.to(device)
        self.ended: dict[int, str] = {}  # seed -> why it stopped before the last step
        self.unreported: dict[int, str] = {}  # those the last progress row did not show yet
        self.t0 = time.perf_counter()

    def _optimizer(self, params: dict[str, torch.Tensor]) -> torch.optim.Optimizer:
        """A single run's optimizer over the stacks, its decay left at 0: `_step` decays each member by its own."""
        groups = [{"params": [params[n] for n in names], "weight_decay": 0.0} for names in (self.decay, self.no_decay)]
        return make_optimizer(self.h.optimizer, groups, lr=self.h.lr, grokfast_alpha=self.h.grokfast_alpha,
                              grokfast_lamb=self.h.grokfast_lamb)

    def _member(self, recipe: Recipe, seed: int, folder: Path, warm_start: AdderModel | None, warm: list) -> _Member:
        folder.mkdir(parents=True, exist_ok=True)
        f = open(folder / METRICS, "w", newline="")
        writer = csv.DictWriter(f, fieldnames=METRICS_COLUMNS)
        writer.writeheader()
        return _Member(seed=seed, folder=folder, gen=torch.Generator().manual_seed(data_seed(seed)),
                       meta=run_meta(recipe, seed, self.h, warm_start=warm_start, warm_started=warm), csv_file=f, csv=writer,
                       weight_decay=self.h.weight_decay, warm_started=warm)

    def close(self) -> None:
        for m in self.members:
            m.csv_file.close()

    # ------------------------------------------------------------------ the loop
    def run(self, on_row: Callable[[dict], None] | None) -> PopulationResult:
        h, step, interrupted = self.h, 0, False
        try:
            for step in range(h.steps):
                if not self.active:
                    break
                lr = lr_at(step, h)
                losses = self._step(step, lr)
                last = step == h.steps - 1
                if (step + 1) % h.eval_every == 0 or last:
                    evaluated = self._evaluate(step, lr)
                    if on_row:
                        on_row({**self._progress(step, lr, losses), "evaluated": evaluated})
                elif on_row and step % PROGRESS_EVERY == 0:
                    on_row(self._progress(step, lr, losses))
            if h.lbfgs_steps:
                self._finish(on_row)
        except KeyboardInterrupt:  # Ctrl-C: the checkpoints of each member's last evaluation are whole on disk
            interrupted = True
        seconds = time.perf_counter() - self.t0
        return PopulationResult(runs=[m.result(seconds) for m in self.members], ended=dict(self.ended),
                                steps=max(m.steps for m in self.members), seed_steps=sum(m.steps for m in self.members),
                                seconds=seconds, interrupted=interrupted)

    def _finish(self, on_row: Callable[[dict], None] | None) -> None:
        """The L-BFGS finishing phase of every member that did not diverge, one after another on the
        CPU module checkpoints are written from (`loop.finish_with_lbfgs`, a single run's phase):
        from its best.pt, on `lbfgs_batch` pairs its own generator draws where its steps ended."""
        h = self.h
        va, vb = data.validation_pairs(h.eval_pairs)
        todo = [m for m in self.members if self.ended.get(m.seed) != DIVERGED and m.sel.best_step >= 0]
        self.saver.train()
        for k, m in enumerate(todo):
            batch = data.hyper_batch(h, m.steps, h.lbfgs_batch, self.phases, m.gen, self.guard)
            found = finish_with_lbfgs(self.saver, h, batch, va, vb, best_path=m.folder / BEST, meta=m.meta,
                                      step=m.steps, t0=self.t0, writer=m.csv, fcsv=m.csv_file, rows=m.rows, on_row=None)
            if found:
                m.sel.finished(*found)
            if on_row:
                on_row({**self._progress(max(x.steps for x in self.members) - 1, h.lr, []), "finishing": (k + 1, len(todo))})

    def _step(self, step: int, lr: float) -> list[float]:
        """One training step of every active member; their losses."""
        h = self.h
        tokens, answer = self._batches(step)
        losses = self._losses(tokens, answer)
        values = losses.detach().cpu().tolist()
        diverged = [i for i, v in enumerate(values) if not math.isfinite(v)]
        if diverged:  # those members stop where they are; the others redo this step without them
            for i in diverged:
                m = self.active[i]
                m.csv.writerow({"step": step + 1, "loss": values[i], "lr": lr, "seconds": self._seconds()})
                m.csv_file.flush()
                self._end(m, DIVERGED)
            keep = [i for i in range(len(self.active)) if i not in diverged]
            self._keep(keep)
            if not self.active:
                return []
            tokens, answer, values = tokens[keep], answer[keep], [values[i] for i in keep]
            losses = self._losses(tokens, answer)
        for g in self.opt.param_groups:
            g["lr"] = lr
        self.opt.zero_grad(set_to_none=True)
        losses.sum().backward()  # members share nothing: each stack row gets its own member's gradient
        if h.clip > 0:
            self._clip(h.clip)
        self._decay(lr)
        self.opt.step()
        self._average()
        for m, v in zip(self.active, values):
            m.loss_sum, m.loss_n, m.steps = m.loss_sum + v, m.loss_n + 1, step + 1
        return values

    def _batches(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Each active member's batch from its own generator, as token prompts [S, B, T] and answers [S, B, n]."""
        h = self.h
        pairs = [data.hyper_batch(h, step, h.batch, self.phases, m.gen, self.guard) for m in self.active]
        a, b = torch.cat([p[0] for p in pairs]), torch.cat([p[1] for p in pairs])
        tokens, answer = teacher_forced_batch(self.fmt, a, b, h.eos_token)
        shape = (len(self.active), h.batch, -1)
        return tokens.view(shape).to(self.device), answer.view(shape).to(self.device)

    def _losses(self, tokens: torch.Tensor, answer: torch.Tensor) -> torch.Tensor:
        """Each member's teacher-forced answer loss [S] on its own batch (as `loop.answer_loss`)."""
        n = answer.shape[-1]

        def loss(params, tokens, answer):
            logits = functional_call(self.template, params, (tokens,), {"keep_last": n})
            return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), answer.reshape(-1))

        return vmap(loss)(self.params, tokens, answer)

    def _clip(self, max_norm: float) -> None:
        """`clip_grad_norm_` of each member's own gradient (the norm over all its parameters)."""
        grads = [p.grad for p in self.params.values() if p.grad is not None]
        norms = torch.stack([torch.linalg.vector_norm(g.reshape(len(g), -1), 2, dim=1) for g in grads], dim=1)
        coef = torch.clamp(max_norm / (torch.linalg.vector_norm(norms, 2, dim=1) + 1e-6), max=1.0)
        for g in grads:
            g.mul_(coef.view(-1, *[1] * (g.dim() - 1)))

    def _decay(self, lr: float) -> None:
        """AdamW's decoupled decay `p *= 1 - lr * wd`, each member with its own (adaptive) wd."""
        factor = torch.tensor([1 - lr * m.weight_decay for m in self.active], dtype=self.template.dtype)
        factor = factor.to(self.device)
        with torch.no_grad():
            for n in self.decay:
                p = self.params[n]
                p.mul_(factor.view(-1, *[1] * (p.dim() - 1)))

    @torch.no_grad()
    def _average(self) -> None:
        """One step of each started member's weight average, s <- d s + (1 - d) p; the others' rows stay."""
        if not bool(self.averaging.any()):
            return
        d = torch.where(self.averaging, self.h.ema_decay, 1.0).to(self.template.dtype).to(self.device)
        for n in self.trainable:
            s, view = self.shadow[n], d.view(-1, *[1] * (self.shadow[n].dim() - 1))
            s.mul_(view).add_(self.params[n].detach() * (1 - view))

    def _averaged(self) -> dict[str, torch.Tensor]:
        """The stacks with every member's weight average in place of its trainable weights."""
        return {**self.params, **self.shadow}

    def _start_averages(self, exacts: list[float]) -> None:
        """Start the weight average of each member whose held-out exact match reached `ema_after` (as
        `WeightEMA.follow`), at its weights of now."""
        if self.h.ema_after <= 0:
            return
        for i, exact in enumerate(exacts):
            if not self.averaging[i] and exact >= self.h.ema_after:
                self.averaging[i] = True
                with torch.no_grad():
                    for n in self.trainable:
                        self.shadow[n][i] = self.params[n][i]

    # ------------------------------------------------------------------ evaluation, checkpoints
    @torch.no_grad()
    def _held_out(self, params: dict[str, torch.Tensor] | None = None) -> list[tuple[float, float, float]]:
        """Each active member's held-out (exact match, token accuracy, smallest logit margin), as
        `loop.evaluate` counts them, of `params` (the stacks by default)."""
        n, pairs = self.fmt.out_digits, len(self.va_tokens)
        chunk = max(1, EVAL_ROWS // len(self.active))
        exact = torch.zeros(len(self.active), dtype=torch.long, device=self.device)
        tok = torch.zeros_like(exact)
        low = torch.full((len(self.active),), float("inf"), device=self.device)

        def logits(params, tokens):
            return functional_call(self.template, params, (tokens,), {"keep_last": n})

        for i in range(0, pairs, chunk):
            tokens, answer = self.va_tokens[i:i + chunk], self.va_answer[i:i + chunk]
            out = vmap(logits, in_dims=(0, None))(params or self.params, tokens)  # [S, B, n, V]
            right = out.argmax(dim=-1) == answer
            exact += right.all(dim=-1).sum(dim=-1)
            tok += right.sum(dim=(-1, -2))
            target = answer.expand(out.shape[:-1])[..., None]
            margin = out.gather(-1, target).squeeze(-1) - out.scatter(-1, target, float("-inf")).amax(-1)
            low = torch.minimum(low, smallest_margin(margin.flatten(0, 1)).view(len(self.active), -1).amin(1))
        return [(e / pairs, t / (pairs * n), m) for e, t, m in zip(exact.tolist(), tok.tolist(), low.tolist())]

    def _evaluate(self, step: int, lr: float) -> dict[int, dict]:
        """Evaluate, log and checkpoint every active member as its single run does (the rows it
        wrote to its metrics.csv, by seed); drop those that stop early."""
        evaluated, stopped, state = {}, [], self.opt.state_dict()
        raw = self._held_out()
        started = self.averaging.tolist()  # as in a single run: an average is scored from the evaluation after it starts
        averaged = self._held_out(self._averaged()) if any(started) else [None] * len(raw)
        self._start_averages([exact for exact, *_ in raw])
        for i, (m, (exact, token_acc, low), avg) in enumerate(zip(self.active, raw, averaged)):
            evaluated[m.seed] = self._record(m, step, lr, exact, token_acc, avg[0] if started[i] else None, low)
            self._save(m, i, step + 1, exact, state)
            if m.sel.perfect_streak >= self.h.early_stop_evals and step + 1 < self.h.steps:
                self._end(m, EARLY_STOP)
                stopped.append(i)
        if stopped:
            self._keep([i for i in range(len(self.active)) if i not in stopped])
        return evaluated

    def _record(self, m: _Member, step: int, lr: float, exact: float, token_acc: float,
                ema_exact: float | None, min_margin: float) -> dict:
        """Member `m`'s selection state after an evaluation, and its metrics.csv row (`ema_exact`: its
        weight average's held-out exact match, None before the average started; `min_margin`: the
        held-out pairs' smallest logit margin, as a single run writes it)."""
        h, seconds = self.h, self._seconds()
        m.weight_decay = h.weight_decay_at(exact, token_acc)  # adaptive decay (a no-op without wd_drops)
        row = metrics_row(h, step, loss=m.loss_sum / m.loss_n, exact=exact, token_acc=token_acc, min_margin=min_margin,
                          lr=lr, seconds=seconds, steps_per_s=round((step + 1) / max(1e-9, seconds), 1),
                          weight_decay=m.weight_decay, ema_exact=ema_exact)
        m.loss_sum, m.loss_n = 0.0, 0
        m.csv.writerow(row)
        m.csv_file.flush()
        m.rows.append(row)
        m.sel.observe(step + 1, exact, ema_exact)  # what selection and early stop read, as in a single run
        return row

    def _save(self, m: _Member, i: int, step: int, exact: float, state: dict) -> None:
        """Member `m`'s (stack row `i`) checkpoints after the evaluation at `step`: best.pt if it is
        its best, last.pt, and last.state.pt (what `--resume` reads) from the optimizer's `state`."""
        if m.sel.best_step == step:
            self._load(i, self._averaged() if m.sel.best_weights == "ema" else None)
            checkpoint.save(self.saver, m.folder / BEST, force=True,
                            meta={**m.meta, "step": step, "val_exact": m.sel.best, "weights": m.sel.best_weights})
        self._load(i)
        checkpoint.save(self.saver, m.folder / LAST, force=True,
                        meta={**m.meta, "step": step, "val_exact": exact, "weights": "raw"})
        checkpoint.save_whole({"step": step, "optimizer": self._member_state(state, i, m.weight_decay),
                               "generator": m.gen.get_state(), **m.sel.state(),
                               "ema": [self.shadow[n][i].detach().cpu().clone() for n in self.trainable]
                               if self.averaging[i] else None}, m.folder / STATE)

    def _end(self, m: _Member, why: str) -> None:
        self.ended[m.seed] = self.unreported[m.seed] = why

    def _load(self, i: int, params: dict[str, torch.Tensor] | None = None) -> None:
        """Copy stack row `i` (an active member's weights; of `params`, the stacks by default) into the
        CPU module checkpoints are written from."""
        with torch.no_grad():
            for n, p in self.saver.named_parameters():
                p.copy_((params or self.params)[n][i])

    def _member_state(self, state: dict, i: int, weight_decay: float) -> dict:
        """Member `i`'s optimizer state as its single run's optimizer would hold it (`state_dict`)."""
        groups = [{**g, "weight_decay": weight_decay if k == 0 else 0.0} for k, g in enumerate(state["param_groups"])]
        return {"state": {p: {k: (v[i] if v.dim() else v).detach().cpu().clone() for k, v in st.items()}
                          for p, st in state["state"].items()},
                "param_groups": groups}

    def _keep(self, keep: list[int]) -> None:
        """Only stack rows `keep` go on: parameters, gradients' owners and optimizer moments are cut to them."""
        index = torch.tensor(keep, dtype=torch.long, device=self.device)
        state = self.opt.state_dict()
        for st in state["state"].values():
            for k, v in st.items():
                if v.dim():  # a per-element moment; a 0-dim entry (the step count) is shared
                    st[k] = v.index_select(0, index)
        self.params = {n: p.detach().index_select(0, index).requires_grad_(p.requires_grad)
                       for n, p in self.params.items()}
        self.shadow = {n: s.index_select(0, index) for n, s in self.shadow.items()}
        self.averaging = self.averaging[torch.tensor(keep, dtype=torch.long)]
        self.opt = self._optimizer(self.params)
        self.opt.load_state_dict(state)
        self.active = [self.active[i] for i in keep]

    # ------------------------------------------------------------------ progress
    def _seconds(self) -> float:
        return round(time.perf_counter() - self.t0, 2)

    def _progress(self, step: int, lr: float, losses: list[float]) -> dict:
        seconds = max(1e-9, time.perf_counter() - self.t0)
        best = max(self.members, key=lambda m: m.sel.best)
        return {"step": step + 1, "steps": self.h.steps, "members": len(self.members), "active": len(self.active),
                "loss": sum(losses) / len(losses) if losses else float("nan"), "lr": lr,
                "steps_per_s": (step + 1) / seconds, "seed_steps_per_s": sum(m.steps for m in self.members) / seconds,
                "grokked": sum(m.sel.grokked is not None for m in self.members),
                "best_exact": best.sel.best, "best_seed": best.seed if best.sel.best_step >= 0 else None,
                "ended": self._take_unreported()}

    def _take_unreported(self) -> dict[int, str]:
        ended, self.unreported = self.unreported, {}
        return ended
