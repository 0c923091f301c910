"""Parameter ledger: what a model's parameter count is made of, under two conventions.

* **AdderBoard** — unique learned scalars after tying: `sum(p.numel() for p in
  model.parameters())`, read from the module (frozen-but-counted values included).
* **Strict** — AdderBoard plus every *distinct hard-coded value* the weights need other
  than 0 and +-1 (a fixed Q angle, a RoPE frequency, an ALiBi slope, a custom score
  scale). This is the grey zone the board argues about; we report both and let the reader
  judge. Norm epsilons and the default 1/sqrt(head_dim) score scale are architecture, not
  weights, and are not counted.

`distinct_learned` is one more figure: how many *different values* the learned scalars
take (the board once recounted a 40-parameter model as 31 "unique" values this way).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sympy
import torch

from .module import AdderModel
from .scalars import scalar_to_float
from .spec import Attention

#: Hard-coded values that are structure, not weights: the strict count leaves them out.
#: Values are compared exactly (as float64): two different values count twice.
UNCOUNTED_VALUES = (0.0, 1.0, -1.0)
#: Why a constant tensor is listed among the buffers.
BUFFER_NOTE = "hard-coded constant (not learned)"


@dataclass
class TensorRow:
    name: str
    shape: tuple[int, ...]
    scalars: int
    trainable: bool
    used_in: list[str]
    note: str = ""


@dataclass
class Ledger:
    rows: list[TensorRow]
    adderboard: int
    distinct_learned: int
    hard_coded: list[float]  # distinct values other than 0, +-1
    buffers: list[tuple[str, tuple[int, ...], str]] = field(default_factory=list)

    @property
    def strict(self) -> int:
        return self.adderboard + len(self.hard_coded)

    def to_json(self) -> dict:
        return {
            "adderboard": self.adderboard, "strict": self.strict, "distinct_learned": self.distinct_learned,
            "hard_coded_values": self.hard_coded,
            "tensors": [{"name": r.name, "shape": list(r.shape), "scalars": r.scalars, "trainable": r.trainable,
                         "used_in": r.used_in, "note": r.note} for r in self.rows],
            "buffers": [{"where": w, "shape": list(s), "why": why} for w, s, why in self.buffers],
        }


def _is_architectural_scale(att: Attention) -> bool:
    """1, or the usual 1/sqrt(head_dim) (as a multiplier; sqrt(head_dim) as a divisor)."""
    root = sympy.sqrt(att.head_dim)
    return att.scale in (1, 1 / root, root)


def ledger(model: AdderModel) -> Ledger:
    """The ledger of `model`: one row per declared parameter, the counts, the hard-coded values."""
    spec = model.spec
    uses: dict[str, list[str]] = {p.name: [] for p in spec.params}
    consts: set[float] = set()
    buffers = []
    for where, e in spec.all_exprs():
        for n in e.walk():
            if n.op == "param":
                if where not in uses[n.attrs["name"]]:
                    uses[n.attrs["name"]].append(where)
            elif n.op == "const":
                vals = {scalar_to_float(v) for v in n.attrs["values"]}
                consts |= vals
                if n.shape:
                    buffers.append((where, n.shape, BUFFER_NOTE))
    for b in spec.blocks:
        if isinstance(b.layer, Attention) and not _is_architectural_scale(b.layer):
            consts.add(scalar_to_float(b.layer.scale))
    hard = sorted(v for v in consts if v not in UNCOUNTED_VALUES)
    rows = []
    learned_values: list[torch.Tensor] = []
    for p in spec.params:
        t = model.param(p.name)
        learned_values.append(t.detach().reshape(-1).double().cpu())
        rows.append(TensorRow(p.name, tuple(p.shape), t.numel(), p.trainable, uses[p.name], p.note))
    allv = torch.cat(learned_values) if learned_values else torch.zeros(0)
    return Ledger(rows=rows, adderboard=sum(p.numel() for p in model.parameters()),
                  distinct_learned=int(torch.unique(allv).numel()), hard_coded=hard, buffers=buffers)
