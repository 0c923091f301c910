"""Compare two models' circuits on the same inputs: do they add the same way?

`compare(model_a, model_b)` runs one seeded, carry-balanced probe set through both models
(teacher-forced, reading the module's named activation sites) and measures, for each:

* **routing** — for every answer digit and every attention head, the attention mass on each
  prompt position *class* (a_i, b_i, a_{i±k}, b_{i±k}, separators, earlier answer digits),
  averaged over the probes, and its standard deviation across probes. A head whose mass
  does not move with the content (std ~ 0) routes by position only.
* **carry** — per residual stage (embedding, after each block): how well a linear probe
  reads the incoming carry bit and the digit-pair sum; which MLP units switch with the carry.
* **confidence** — margin (right logit minus best other) per answer position, and exact
  accuracy by longest carry chain.
* **parameters** — both ledgers.

Everything here is numbers (`Comparison.to_json()`, `headlines`, `routing_rows`); `plots.py` draws them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import NamedTuple

import torch

from ...compiler.checkpoint import weights_hash
from ...compiler.decode import teacher_forced
from ...compiler.digits import carries_in, longest_chain, pairs_for_classes
from ...compiler.ledger import ledger
from ...compiler.module import AdderModel
from ...compiler.spec import Attention

#: Relative offsets of operand digits given their own class (a_{i-2} .. a_{i+2}).
NEAR = 2
#: A head whose class masses move by less than this (std across probes, summed over
#: classes, averaged over answer digits) is called position-only.
POSITION_ONLY_STD = 0.02
#: Probe accuracy at or above this counts as "linearly decodable".
DECODABLE_ACC = 0.99
#: A probe fit uses this share of the probes for training, the rest for the score.
TRAIN_SHARE = 0.5


def position_classes() -> list[str]:
    ops = [f"{x}_i{d:+d}" if d else f"{x}_i" for x in "ab" for d in range(-NEAR, NEAR + 1)]
    return ops[: 2 * NEAR + 1] + ["a_far"] + ops[2 * NEAR + 1:] + ["b_far", "sep", "out_prev", "out_earlier"]


CLASSES = position_classes()


def digit_class_map(fmt, k: int) -> torch.Tensor:
    """Class index of every position 0..P+k for the query that predicts answer token k."""
    n, P = fmt.out_digits, fmt.prompt_len
    i = k if fmt.out_order == "lsb" else n - 1 - k  # the digit index (0 = least significant)
    cls = []
    for item in fmt.prompt:
        if isinstance(item, int):
            cls.append(CLASSES.index("sep"))
            continue
        x, order = item
        for pos in range(fmt.digits):
            m = pos if order == "lsb" else fmt.digits - 1 - pos
            d = m - i
            name = (f"{x}_i{d:+d}" if d else f"{x}_i") if abs(d) <= NEAR else f"{x}_far"
            cls.append(CLASSES.index(name))
    for j in range(k):  # answer tokens already in the sequence: positions P .. P+k-1
        cls.append(CLASSES.index("out_prev" if j == k - 1 else "out_earlier"))
    cls = torch.tensor(cls)
    assert len(cls) == P + k
    return cls


def carry_balanced_pairs(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`n` addend pairs whose digit pairs are generate / propagate / kill with equal odds.

    Each of the 10 positions independently draws a class, then digits uniformly within it,
    so carries and carry chains of every length appear.
    """
    g = torch.Generator().manual_seed(seed)
    return pairs_for_classes(torch.randint(0, 3, (n, 10), generator=g), g)


@dataclass
class Profile:
    name: str
    weights_sha256: str
    ledger: dict
    routing: dict = field(default_factory=dict)  # "block.head" -> {"mean": [[digit][class]], "std": same}
    position_only: dict = field(default_factory=dict)  # "block.head" -> content dependence (float)
    probes: list = field(default_factory=list)  # per stage: carry_acc, sum_r2, per-dim figures
    carry_units: dict = field(default_factory=dict)  # mlp block -> [(unit, accuracy, effect)]
    margins: list = field(default_factory=list)  # per answer position: min, p1, median
    margin_samples: list = field(default_factory=list)  # [position][<=400 values] for plots
    chain_accuracy: dict = field(default_factory=dict)  # longest chain -> [n, accuracy]
    accuracy: float = 0.0
    carry_base_rate: float = 0.0  # accuracy of always guessing the commoner carry value


@dataclass
class Comparison:
    a: Profile
    b: Profile
    classes: list
    probes: int
    seed: int

    def to_json(self) -> dict:
        return {"classes": self.classes, "probes": self.probes, "seed": self.seed,
                "a": asdict(self.a), "b": asdict(self.b)}


@torch.no_grad()
def profile(model: AdderModel, a: torch.Tensor, b: torch.Tensor, seed: int) -> Profile:
    spec, fmt = model.spec, model.spec.format
    led = ledger(model)
    prof = Profile(name=spec.name, weights_sha256=weights_hash(model), ledger=led.to_json())
    a, b = a.to(model.device), b.to(model.device)
    answer = fmt.answer(a, b)
    tokens = torch.cat([fmt.encode(a, b), answer[:, :-1]], dim=1)
    cache: dict = {}
    model(tokens, cache=cache)
    P, n = fmt.prompt_len, fmt.out_digits
    rows = torch.arange(P - 1, P - 1 + n)  # query row predicting answer token k

    # routing: attention mass per position class, per answer digit, per head
    attention = [i for i, block in enumerate(spec.blocks) if isinstance(block.layer, Attention)]
    for blk in attention:
        probs = cache[f"blocks.{blk}.attn.pattern"].double().cpu()  # [B, H, T, T]
        for h in range(probs.shape[1]):
            mean, std = [], []
            for k in fmt.digit_order():  # rows by digit index, least significant first
                cmap = digit_class_map(fmt, k)
                w = probs[:, h, rows[k], : P + k]  # [B, P+k]
                mass = torch.zeros(w.shape[0], len(CLASSES), dtype=torch.float64).index_add_(1, cmap, w)
                mean.append(mass.mean(0).tolist())
                std.append(mass.std(0).tolist())
            key = f"{spec.blocks[blk].name}.h{h}"
            prof.routing[key] = {"mean": mean, "std": std}
            prof.position_only[key] = float(torch.tensor(std).sum(1).mean())

    # carry: probes on the residual at the query rows, pooled over digits 0..9
    carry = carries_in(a.cpu(), b.cpu(), n)[:, :10]  # [B, 10]
    pair = (_digits(a.cpu()) + _digits(b.cpu())).double()  # [B, 10]
    y_carry, y_sum = carry.T.reshape(-1), pair.T.reshape(-1)
    p1 = float(y_carry.double().mean())
    prof.carry_base_rate = max(p1, 1 - p1)
    stages = ["embed"] + [blk.name for blk in spec.blocks]
    g = torch.Generator().manual_seed(seed)
    split = torch.rand(len(y_carry), generator=g) < TRAIN_SHARE
    for i, name in enumerate(stages):
        res = cache[f"resid.{i}"]
        X = torch.cat([res[:, rows[k]].double().cpu() for k in _digit_rows(fmt)], 0)  # [10B, d]
        prof.probes.append({
            "stage": name,
            "carry_acc": _logistic_accuracy(X, y_carry, split),
            "sum_r2": _linear_r2(X, y_sum, split),
            "carry_acc_per_dim": [_threshold_accuracy(X[:, j], y_carry) for j in range(X.shape[1])],
            "sum_corr_per_dim": [_abs_corr(X[:, j], y_sum) for j in range(X.shape[1])],
        })
    for blk in [i for i in range(len(spec.blocks)) if i not in attention]:
        hidden = cache[f"blocks.{blk}.mlp.hidden"]
        H = torch.cat([hidden[:, rows[k]].double().cpu() for k in _digit_rows(fmt)], 0)
        units = []
        for u in range(H.shape[1]):
            acc = _threshold_accuracy(H[:, u], y_carry)
            on, off = H[y_carry == 1, u], H[y_carry == 0, u]
            effect = float((on.mean() - off.mean()) / (H[:, u].std() + 1e-12)) if len(on) and len(off) else 0.0
            units.append([u, acc, effect])
        prof.carry_units[spec.blocks[blk].name] = units

    # confidence
    checked = teacher_forced(model, a, b)
    m = checked.margin.double().cpu()
    order = fmt.digit_order()
    for pos in order:  # reported by digit index, least significant first
        col = m[:, pos]
        finite = col[col.isfinite()]
        prof.margins.append({"digit": order.index(pos), "min": float(finite.min()), "p1": float(finite.quantile(0.01)),
                             "median": float(finite.median())})
        prof.margin_samples.append(finite[:400].tolist())
    chains = longest_chain(a.cpu(), b.cpu())
    ok = checked.correct.cpu()
    prof.accuracy = float(ok.double().mean())
    for L in range(11):
        sel = chains == L
        if sel.any():
            prof.chain_accuracy[L] = [int(sel.sum()), float(ok[sel].double().mean())]
    return prof


def compare(model_a: AdderModel, model_b: AdderModel, *, probes: int = 2000, seed: int = 0) -> Comparison:
    """Profile both models on the same carry-balanced probes (plus one pair per chain length)."""
    a, b = carry_balanced_pairs(probes, seed)
    return Comparison(a=profile(model_a, a, b, seed), b=profile(model_b, a, b, seed),
                      classes=CLASSES, probes=probes, seed=seed)


def headlines(c: Comparison) -> list[str]:
    """The differences worth a sentence each, for the terminal summary."""
    out = []
    for p in (c.a, c.b):
        pos_only = [k for k, v in p.position_only.items() if v < POSITION_ONLY_STD]
        content = [k for k, v in p.position_only.items() if v >= POSITION_ONLY_STD]
        route = ("routes by position only" if not content else
                 f"has content-dependent routing in {', '.join(content)}" if not pos_only else
                 f"routes by position in {', '.join(pos_only)} and by content in {', '.join(content)}")
        first = next((s["stage"] for s in p.probes if s["carry_acc"] >= DECODABLE_ACC), None)
        best = max(s["carry_acc"] for s in p.probes)
        carry = f"the carry is linearly readable from the residual after {first}" if first else \
            (f"no residual stage gives a linear carry read-out >= {DECODABLE_ACC} (best {best:.2f}, "
             f"{p.carry_base_rate:.2f} by always guessing the commoner value)")
        units = [f"{blk}:{u}" for blk, us in p.carry_units.items() for u, acc, _ in us if acc >= DECODABLE_ACC]
        worst = min(m["min"] for m in p.margins)
        out.append(f"{p.name}: {route}; {carry}"
                   + (f" (carry units {', '.join(units)})" if units else "")
                   + f"; smallest margin {worst:.3g}; {p.ledger['adderboard']} params; "
                   + f"{100 * p.accuracy:.2f}% exact on the probes")
    return out


class RoutingRow(NamedTuple):
    """One head's favourite position class, averaged over answer digits 0..9."""

    model: str
    head: str
    top_class: str
    mass: float  # mean attention mass on `top_class`
    content_dependence: float  # as `Profile.position_only`


def routing_rows(c: Comparison) -> list[RoutingRow]:
    """For each head of both models, the position class it attends to most, for the terminal table."""
    rows = []
    for p in (c.a, c.b):
        for key, r in p.routing.items():
            mean = torch.tensor(r["mean"][:10]).mean(0)
            top = int(mean.argmax())
            rows.append(RoutingRow(p.name, key, CLASSES[top], float(mean[top]), p.position_only[key]))
    return rows


def _digit_rows(fmt) -> list[int]:
    return fmt.digit_order()[:10]


def _digits(x: torch.Tensor) -> torch.Tensor:
    return (x[:, None] // 10 ** torch.arange(10, dtype=torch.long)) % 10


def _standardise(X: torch.Tensor, split: torch.Tensor) -> torch.Tensor:
    mu, sd = X[split].mean(0), X[split].std(0)
    return (X - mu) / torch.where(sd > 0, sd, torch.ones_like(sd))


def _logistic_accuracy(X: torch.Tensor, y: torch.Tensor, split: torch.Tensor) -> float:
    """Held-out accuracy of a logistic-regression probe (L-BFGS, small L2)."""
    Xs = torch.cat([_standardise(X, split), torch.ones(len(X), 1, dtype=X.dtype)], 1)
    w = torch.zeros(Xs.shape[1], dtype=X.dtype, requires_grad=True)
    opt = torch.optim.LBFGS([w], max_iter=100, line_search_fn="strong_wolfe")
    yt = y[split].double()

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(Xs[split] @ w, yt) + 1e-4 * (w ** 2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    pred = (Xs[~split] @ w.detach()) > 0
    return float((pred.long() == y[~split]).double().mean())


def _linear_r2(X: torch.Tensor, y: torch.Tensor, split: torch.Tensor) -> float:
    Xs = torch.cat([_standardise(X, split), torch.ones(len(X), 1, dtype=X.dtype)], 1)
    sol = torch.linalg.lstsq(Xs[split], y[split, None], driver="gelsd").solution  # SVD: rank-deficient safe
    resid = y[~split] - (Xs[~split] @ sol).squeeze(1)
    var = ((y[~split] - y[~split].mean()) ** 2).sum()
    return float(1 - (resid ** 2).sum() / var) if var > 0 else 0.0


def _threshold_accuracy(x: torch.Tensor, y: torch.Tensor) -> float:
    """Best accuracy of a single threshold on `x` (either direction) for the bit `y`."""
    order = torch.argsort(x)
    ys = y[order].double()
    ones_below = torch.cat([torch.zeros(1, dtype=torch.float64), ys.cumsum(0)])
    k = torch.arange(len(ys) + 1, dtype=torch.float64)
    total1 = ys.sum()
    acc_up = (k - ones_below + (total1 - ones_below)) / len(ys)  # below -> 0, above -> 1
    return float(torch.maximum(acc_up, 1 - acc_up).max())


def _abs_corr(x: torch.Tensor, y: torch.Tensor) -> float:
    xc, yc = x - x.mean(), y - y.mean()
    den = (xc.norm() * yc.norm())
    return float((xc @ yc).abs() / den) if den > 0 else 0.0
