"""Bridging: carry a trained model into a more tied layout by gradient descent alone.

A tie (K's norm is Q's mirrored, the MLP writes two dimensions, ...) removes parameters, and
a model trained without it rarely satisfies it. The bridge layout is the tied layout with a
learned difference on every tie (`<name>_slack`, the recipe's `bridge` builder): with the
differences free it can hold the trained model exactly, with them at zero it *is* the tied
model. Bridging walks from the one to the other:

1. `fit`: the bridge's own parameters are fitted by L-BFGS, the ties first (to the trained
   model's weights, then to its answer logits on training pairs, which lets an exact symmetry
   of the module move them), then the differences, which absorb what the ties cannot hold:
   the bridge starts where the trained model is (its held-out figures are the fit's check).
2. `anneal`: ordinary training, after every step of which each difference is projected
   onto a ball whose radius shrinks linearly from its starting norm to zero at step `steps`:
   the model has the whole run to move what the ties cannot hold into the tied parameters.
3. `tied_model`: the last step's differences are exactly zero, so copying every other
   parameter by name into the tied layout changes no weight; it refuses otherwise.

Every learned value of the result comes from gradient steps started at a random
initialisation (the trained model's run, then these); the fit and the projection are
gradient descent on a weight distance and a clamp. Held-out pairs judge the result, not the
fit. docs/train.md ("Below the record") has the runs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Callable

import torch

from ..compiler import checkpoint
from ..compiler.errors import AdderError
from ..compiler.expr import TExpr
from ..compiler.module import AdderModel, compile_spec
from ..compiler.spec import Linear, Norm
from . import data
from .finetune import source_of
from .loop import LAST, answer_logits, data_seed, evaluate, train, warm_start_from
from .guard import Forbidden
from .recipes import Hyper, Recipe
from .recipes.hyper import MAX_STEPS
from .sweep import warm_start_model

#: The suffix of a tie's learned difference in a bridge layout.
SLACK = "_slack"
#: L-BFGS iterations of each fitting stage (tens of parameters: it converges in far fewer).
FIT_ITERATIONS = 500
#: The fit's last stage: the logit gap plus this times the differences' squared norm (relative to the
#: weights'), so that among the exact fits it finds one whose differences are small.
SLACK_WEIGHT = 1e-8
#: Training pairs whose answer logits the fit matches, and the salt of their generator's seed.
FIT_PAIRS, FIT_SALT = 512, 0xB1D6E
#: A relative logit gap the fit counts as the trained model's function (float64 round-off is ~1e-15),
#: and one past which the bridge could not hold the model at all (a bridge is refused).
EXACT_GAP, HELD_GAP = 1e-6, 1e-3
#: The tied model a bridge run writes (its run folder also holds the bridge layout's run, `bridge/`).
BRIDGED = "bridged.pt"
#: The annealing run's data: operands of 1 to 10 digits (a length, then a value below 10^length),
#: so that short operands, which uniform 10-digit draws almost never give, are kept right too.
CURRICULUM = "1-10:rest"


def bridge_recipe(recipe: Recipe) -> Recipe:
    """The bridge layout of `recipe` as a recipe of its own (name `<recipe>+slack`), or one line
    saying that `recipe` has none."""
    if recipe.bridge is None:
        raise AdderError(f"recipe {recipe.name} has no bridge layout (no tie with a learned difference); "
                         "--bridge-from applies to the recipes whose notes name one (`adder train --list`)")
    return Recipe(name=f"{recipe.name}+slack", build=recipe.bridge, hyper=recipe.hyper, summary=recipe.summary,
                  params=recipe.params, notes=recipe.notes, origin=recipe.origin)


def slack_params(model: AdderModel) -> dict[str, torch.nn.Parameter]:
    return {n: p for n, p in model.named_spec_params() if n.endswith(SLACK)}


def effective_weights(model: AdderModel) -> dict[str, torch.Tensor]:
    """Every weight the module computes, by where it sits ("blocks.0.attention.q"): each
    projection's chain multiplied into one matrix, norms' weights and biases, tables. Two
    layouts of one family have the same keys, whatever ties built them."""
    spec, out = model.spec, {}

    def visit(obj, where: str) -> None:
        if isinstance(obj, TExpr):
            out[where] = model.w(obj)
        elif isinstance(obj, Linear):
            m = None
            for w in obj.weights:
                m = model.w(w) if m is None else model.w(w) @ m
            out[where] = m
            if obj.bias is not None:
                out[where + ".bias"] = model.w(obj.bias)
        elif isinstance(obj, Norm):
            for name in ("weight", "bias"):
                if getattr(obj, name) is not None:
                    out[f"{where}.{name}"] = model.w(getattr(obj, name))
        elif hasattr(obj, "__dataclass_fields__"):
            for f in fields(obj):
                visit(getattr(obj, f.name), f"{where}.{f.name}")

    visit(spec.embed, "embed")
    if spec.pos is not None:
        visit(spec.pos, "pos")
    for i, b in enumerate(spec.blocks):
        visit(b.norm, f"blocks.{i}.norm")
        visit(b.layer, f"blocks.{i}.{type(b.layer).__name__.lower()}")
    visit(spec.final_norm, "final_norm")
    visit(spec.unembed, "unembed")
    return out


def comparable_weights(model: AdderModel) -> dict[str, torch.Tensor]:
    """`effective_weights` with two exact symmetries of the module divided out, so that two models
    that compute the same function compare equal even where those moves set them apart: a
    norm's weight multiplies every projection that reads its output, so it is folded into them
    (its scale may move between the two); and a gated MLP's hidden unit is compared as the outer
    product of its down column and its (folded) up row (its scale may move between the two)."""
    w = effective_weights(model)
    for i, b in enumerate(model.spec.blocks):
        kind = f"blocks.{i}.{type(b.layer).__name__.lower()}"
        scale = w.pop(f"blocks.{i}.norm.weight", None)
        readers = ("q", "k", "v") if kind.endswith("attention") else ("gate", "up")
        for r in readers:
            if scale is not None and f"{kind}.{r}" in w:
                w[f"{kind}.{r}"] = w[f"{kind}.{r}"] * scale
        if kind.endswith("mlp"):
            up, down = w.pop(f"{kind}.up"), w.pop(f"{kind}.down")
            w[f"{kind}.units"] = torch.einsum("dj,jk->jdk", down, up)
    final = w.pop("final_norm.weight", None)
    if final is not None:
        w["unembed"] = w["unembed"] * final
    return w


def weight_distance(bridge: AdderModel, target: dict[str, torch.Tensor], view=comparable_weights) -> torch.Tensor:
    """The summed squared difference between the bridge's weights, as `view` shows them, and `target`."""
    mine = view(bridge)
    return sum(((mine[k] - target[k]) ** 2).sum() for k in target)


def _lbfgs(params: list[torch.Tensor], loss_fn) -> float:
    opt = torch.optim.LBFGS(params, lr=1, max_iter=FIT_ITERATIONS, tolerance_grad=1e-14, tolerance_change=1e-18,
                            history_size=50, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        return float(loss_fn())


def logit_gap(bridge: AdderModel, target: torch.Tensor, pairs) -> torch.Tensor:
    """The squared relative RMS difference between the bridge's teacher-forced answer logits on
    `pairs` and `target` (the trained model's)."""
    logits, _ = answer_logits(bridge, *pairs)
    return ((logits - target) ** 2).mean() / (target ** 2).mean()


def fit(bridge: AdderModel, source: AdderModel, pairs) -> dict:
    """Fit `bridge` (a bridge layout, changed in place) to `source`, in three L-BFGS stages:

    1. the ties alone (differences at zero) to `source`'s weights (`comparable_weights`: two exact
       symmetries divided out), from `source`'s same-named values, the layout's own parameters
       first fitted to `source`'s weights as they are;
    2. the ties alone to `source`'s function: its answer logits on `pairs` (an exact symmetry of
       the module, such as a hidden unit's scale moving from down to up, is a move that changes
       weights and not the function: weights alone could not find it);
    3. the differences alone to that function, with a small price on their size; where neither
       2 nor 3 is within EXACT_GAP of it, the ties go back to stage 1 and ties and differences
       match the weights as they are instead, which restores it exactly. The start kept
       (`matched`: "ties", "logits" or "weights") is the one with the smallest logit gap.

    What the fit left: the weight distance after 1 and the relative logit gap after 2 and 3
    (`tied_gap`: what the ties cannot hold; `gap`: ~0, the bridge starts where `source` is)."""
    target = {k: v.detach().double() for k, v in comparable_weights(source).items()}
    mine = {k: tuple(v.shape) for k, v in comparable_weights(bridge).items()}
    if mine != {k: tuple(v.shape) for k, v in target.items()}:
        raise AdderError(f"{source.spec.name} and {bridge.spec.name} are not layouts of one family (their weights "
                         f"differ in place or shape: {sorted(set(mine) ^ set(target)) or 'shapes'}); "
                         "bridge from a model of the family the recipe ties")
    work = compile_spec(bridge.spec, dtype="float64")
    teacher = compile_spec(source.spec, dtype="float64")
    teacher.load_state_dict({k: v.double() for k, v in source.state_dict().items()})
    with torch.no_grad():
        logits, _ = answer_logits(teacher, *pairs)
    own, theirs, start = dict(work.named_spec_params()), dict(source.named_spec_params()), dict(bridge.named_spec_params())
    slack = slack_params(work)
    def same(n: str) -> bool:  # a parameter `source` has too
        return n in theirs and theirs[n].shape == own[n].shape and n not in slack

    with torch.no_grad():
        for n, p in own.items():
            p.copy_(0 if n in slack else (theirs[n] if same(n) else start[n]).double())
    ties = [p for n, p in own.items() if n not in slack and p.requires_grad]

    def fitted(params, loss) -> float:
        for p in own.values():
            p.requires_grad_(any(p is q for q in params))
        return _lbfgs(params, loss)

    def price() -> torch.Tensor:
        return SLACK_WEIGHT * sum((p ** 2).sum() for p in slack.values()) / scale

    scale = sum(float((w ** 2).sum()) for w in target.values())
    raw = {k: v.detach().double() for k, v in effective_weights(source).items()}
    new = [p for n, p in own.items() if p.requires_grad and n not in slack and not same(n)]
    if new:  # the tied layout's own parameters start at the values that best give the weights as they are
        fitted(new, lambda: weight_distance(work, raw, view=effective_weights))
    distance = fitted(ties, lambda: weight_distance(work, target))
    by_weights = {n: p.detach().clone() for n, p in own.items()}
    tied_gap = fitted(ties, lambda: logit_gap(work, logits, pairs)) ** 0.5

    def state() -> tuple[float, dict]:
        with torch.no_grad():
            return float(logit_gap(work, logits, pairs)) ** 0.5, {n: p.detach().clone() for n, p in own.items()}

    candidates = {"ties": state()}  # the ties alone, differences at zero
    fitted(list(slack.values()), lambda: logit_gap(work, logits, pairs) + price())
    candidates["logits"] = state()
    if min(candidates["ties"][0], candidates["logits"][0]) > EXACT_GAP:  # match the weights as they are instead
        with torch.no_grad():
            for n, p in own.items():
                p.copy_(by_weights[n])
        fitted(ties + list(slack.values()), lambda: weight_distance(work, raw, view=effective_weights) + price() * scale)
        candidates["weights"] = state()
    how = min(candidates, key=lambda k: candidates[k][0])  # the smallest gap; the first of equals (fewest differences)
    gap, chosen = candidates[how]
    with torch.no_grad():
        for n, p in own.items():
            p.copy_(chosen[n])
        for n, p in bridge.named_spec_params():
            p.copy_(own[n].to(p.dtype))
    return {"weight_distance": distance, "tied_gap": tied_gap, "gap": gap, "matched": how,
            "slack_norms": {n: float(p.detach().norm()) for n, p in slack.items()}}


class Anneal:
    """After each training step (`loop.train`'s `after_step`), every difference is projected onto
    a ball of radius `norm0 * (steps - done) / steps`: its norm after the fit, shrinking linearly
    to zero at `steps`. A projection and not a penalty: the model may resist a penalty (it did:
    the differences grew back under Adam), not a radius."""

    def __init__(self, start: dict[str, float], steps: int):
        self.start, self.steps = start, steps

    @torch.no_grad()
    def __call__(self, model: AdderModel, done: int) -> None:
        left = max(0.0, (self.steps - done) / self.steps)
        for n, p in slack_params(model).items():
            cap, norm = self.start[n] * left, float(p.norm())
            if norm > cap:
                p.mul_(cap / norm) if cap > 0 else p.zero_()


def tied_model(recipe: Recipe, bridge: AdderModel) -> AdderModel:
    """`recipe`'s model with `bridge`'s parameters, once every difference is exactly zero."""
    open_ = [n for n, p in slack_params(bridge).items() if bool(p.detach().abs().max() > 0)]
    if open_:
        raise AdderError(f"the bridge's differences {', '.join(open_)} are not zero yet; anneal to the end first")
    tied = compile_spec(recipe.build())
    missing = [n for n, _ in tied.named_spec_params() if n not in warm_start_from(tied, bridge)]
    if missing:
        raise AdderError(f"the bridge layout lacks {', '.join(missing)} of {recipe.name}; the recipe's bridge "
                         "builder must be its layout with differences added")
    return tied


@dataclass
class BridgeResult:
    fitted: dict  # what `fit` left
    start: dict  # held-out evaluation of the fitted bridge (the trained model's function)
    end: dict  # held-out evaluation of the tied model
    checkpoint: Path  # the tied model (BRIDGED)
    seconds: float

    def to_json(self) -> dict:
        return {"fitted": self.fitted, "start": self.start, "end": self.end, "checkpoint": str(self.checkpoint),
                "seconds": round(self.seconds, 2)}


def bridge_hyper(recipe: Recipe, steps: int, lr: float) -> Hyper:
    """The annealing run's hyperparameters: a constant `lr`, no decay (it shrinks the logits a
    trained model relies on), no Grokfast, `CURRICULUM`, every evaluation kept (no early stop)."""
    return replace(recipe.hyper, steps=steps, lr=lr, min_lr_ratio=1.0, warmup=0, weight_decay=0.0, wd_drops=(),
                   grokfast_lamb=0.0, curriculum=CURRICULUM, early_stop_evals=MAX_STEPS, ema_after=0.0,
                   lbfgs_steps=0, eval_every=min(recipe.hyper.eval_every, max(1, steps // 10))).check()


def run_bridge(recipe: Recipe, source: str, *, seed: int, out: Path, steps: int, lr: float, force: bool = False,
               on_row: Callable[[dict], None] | None = None,
               on_fit: Callable[[dict, dict], None] | None = None) -> BridgeResult:
    """Bridge the model `source` (a checkpoint or construction of the family) into `recipe`'s layout:
    fit, anneal over `steps` at `lr`, and write the tied model to `out / BRIDGED` (module docstring).
    `on_fit(fitted, start)`: called once the fit is done, before the annealing run (its figures
    and the bridge's held-out evaluation); `on_row`: the annealing run's rows."""
    t0 = time.perf_counter()
    brec = bridge_recipe(recipe)
    if (out / BRIDGED).exists() and not force:
        raise AdderError(f"{out / BRIDGED} exists; pass --force to overwrite it, or another --out")
    h = bridge_hyper(recipe, steps, lr)
    trained = warm_start_model(source)
    bridge = compile_spec(brec.build(), seed=seed)
    gen = torch.Generator().manual_seed(data_seed(seed) + FIT_SALT)
    pairs = data.hyper_batch(h, 0, FIT_PAIRS, data.parse_curriculum(h.curriculum), gen, Forbidden.for_run(h.eval_pairs))
    fitted = fit(bridge, trained, pairs)
    if fitted["gap"] > HELD_GAP:
        raise AdderError(f"{recipe.name}'s bridge layout cannot hold {source} (relative logit gap {fitted['gap']:.2g} "
                         f"after the fit; its fixed parts, such as RoPE's frequencies, must be the same): "
                         "bridge from a model of the family the recipe ties")
    va, vb = data.validation_pairs(h.eval_pairs)
    start = evaluate(bridge, va, vb)
    if on_fit:
        on_fit(fitted, start)
    anneal = Anneal({n: float(p.detach().norm()) for n, p in slack_params(bridge).items()}, steps)
    train(brec, seed=seed, out=out / "bridge", hyper=h, warm_start=bridge, after_step=anneal, force=True,
          on_row=on_row)
    last = checkpoint.read(out / "bridge" / LAST)
    if int(last["meta"].get("step", 0)) < steps:
        raise AdderError(f"the annealing run stopped at step {last['meta'].get('step')} of {steps:,} "
                         f"({out / 'bridge'}); its differences are not zero, so no tied model was written")
    tied = tied_model(recipe, checkpoint.from_checkpoint(last, where=str(out / "bridge" / LAST)))
    end = evaluate(tied, va, vb)
    checkpoint.save(tied, out / BRIDGED, force=True, meta={
        "recipe": recipe.name, "seed": seed, "step": steps, "val_exact": end["exact"], "hyper": h.to_json(),
        "bridge": {"source": source_of(source, trained), "steps": steps, "lr": lr, "fit": fitted,
                   "start": start, "end": end}})
    return BridgeResult(fitted=fitted, start=start, end=end, checkpoint=out / BRIDGED,
                        seconds=time.perf_counter() - t0)
