"""The validation pass: everything about a spec that can be checked before it is compiled.

`validate(spec)` runs every check and raises one `SpecError` that lists every problem it
found on one line (the CLI prints errors as one line): "spec 'x' has 3 problems: (1) ...;
(2) ...; (3) ..." (a single problem is the message alone). A construction with three
mistakes is fixed in one round, not three. `find_problems(spec)` returns the list.

What is checked:

* symbols: every parameter a weight uses is declared, with the shape it is used with, and
  every declared one is used (an unused one would inflate the count);
* widths: the embedding and position tables, every projection chain from its input width
  to its output width, norm weights, rotary frequencies, ALiBi slopes, score biases, and
  that the prompt format's token ids fit the vocabulary;
* kinds: activations, softmax, score scaling, rotary convention, norm kind and projection
  reduction are known;
* data flow: no projection reads a residual coordinate that nothing before it has written.
  This is judged on the declared values (a hand-set zero column counts as not written);
  free tensors, which have no value yet, are sampled non-zero.
"""

from __future__ import annotations

import torch

from .errors import SpecError
from .evaluate import TORCH, evaluate, exact_tensor
from .expr import TExpr
from .spec import (ACTIVATIONS, NORM_KINDS, REDUCTIONS, ROPE_CONVENTIONS, SCALE_OPS, SOFTMAX_KINDS, MLP, Attention,
                   Linear, ModelSpec, Norm)

#: Seeds the non-zero stand-ins for free tensors in the data-flow check.
SAMPLE_SEED = 1234
#: A free tensor's stand-in is uniform on [SAMPLE_LOW, SAMPLE_LOW + 1): never zero.
SAMPLE_LOW = 0.5


def validate(spec: ModelSpec) -> None:
    """Raise one `SpecError` naming every problem of `spec` (nothing when it has none)."""
    problems = find_problems(spec)
    if len(problems) == 1:
        raise SpecError(problems[0])
    if problems:
        listed = "; ".join(f"({i}) {p}" for i, p in enumerate(problems, 1))
        raise SpecError(f"spec {spec.name!r} has {len(problems)} problems: {listed}")


def find_problems(spec: ModelSpec) -> list[str]:
    """Every problem of `spec`, in the order of the spec (symbols, tables, blocks, head), each once."""
    return list(dict.fromkeys(_Checker(spec).run()))


class _Checker:
    """One pass over a spec: appends a line to `problems` for each check that fails."""

    def __init__(self, spec: ModelSpec):
        self.spec = spec
        self.declared = {p.name: p for p in spec.params}
        self.problems: list[str] = []
        self.bad_symbols: set[str] = set()  # used but undeclared, or used with another shape
        self.flow_known = True  # False when the embedding tables are malformed: nothing is known written

    def report(self, msg: str) -> None:
        self.problems.append(msg)

    def expect(self, ok: bool, msg: str) -> bool:
        """Report `msg` unless `ok`; returns `ok`."""
        if not ok:
            self.report(msg)
        return ok

    def run(self) -> list[str]:
        spec = self.spec
        used = self.check_symbols()
        d, V = spec.d_model, len(spec.vocab)
        self.flow_known &= self.expect(spec.embed.shape == (V, d),
                                       f"embed must be [{V}, {d}] (vocab x d_model), got {list(spec.embed.shape)}")
        if spec.pos is not None:
            T = spec.format.total_len
            self.flow_known &= self.expect(len(spec.pos.shape) == 2 and spec.pos.shape[1] == d and spec.pos.shape[0] >= T,
                                           f"pos must be [>= {T}, {d}], got {list(spec.pos.shape)}")
        self.expect(max(spec.format.prompt_tokens_max(), max(spec.format.digit_tokens)) < V,
                    f"the prompt format uses token ids outside the vocabulary of {V}")

        written = self.nonzero_cols(spec.embed)
        if spec.pos is not None:
            written |= self.nonzero_cols(spec.pos)
        for i, b in enumerate(spec.blocks):
            where = f"block {i} ({b.name})"
            self.check_norm(b.norm, d, where)
            if isinstance(b.layer, Attention):
                self.check_attention(b.layer, written, where)
                written |= self.nonzero_rows(b.layer.o)
            else:
                self.check_mlp(b.layer, written, where)
                written |= self.nonzero_rows(b.layer.down)
        self.check_norm(spec.final_norm, d, "final_norm")
        self.check_projection(spec.unembed, d, V, written, "unembed")
        unused = sorted(set(self.declared) - used)
        self.expect(not unused, f"parameters declared but never used (they would inflate the count): {unused}")
        return self.problems

    # ------------------------------------------------------------------ symbols
    def check_symbols(self) -> set[str]:
        """Every parameter leaf is declared with its shape; returns the names used."""
        used: set[str] = set()
        for where, e in self.spec.all_exprs():
            for n in e.walk():
                if n.op != "param":
                    continue
                name = n.attrs["name"]
                decl = self.declared.get(name)
                if decl is None:
                    self.report(f"{where}: unknown symbol {name!r}; declare it with param() or free()")
                    self.bad_symbols.add(name)
                    continue
                used.add(name)
                if tuple(decl.shape) != tuple(n.shape):
                    self.report(f"{where}: {name!r} used with shape {n.shape} but declared {decl.shape}")
                    self.bad_symbols.add(name)
        return used

    # ------------------------------------------------------------------ layers
    def check_attention(self, att: Attention, written: set[int], where: str) -> None:
        d, T = self.spec.d_model, self.spec.format.total_len
        H, Hk, hd = att.n_heads, att.n_kv_heads, att.head_dim
        self.expect(H % Hk == 0, f"{where}: {H} query heads cannot share {Hk} key/value heads")
        self.expect(att.softmax in SOFTMAX_KINDS, f"{where}: softmax must be one of {SOFTMAX_KINDS}")
        self.expect(att.scale_op in SCALE_OPS, f"{where}: scale_op must be one of {SCALE_OPS}")
        for nm, lin, n_out in (("q", att.q, H * hd), ("k", att.k, Hk * hd), ("v", att.v, Hk * att.vd)):
            self.check_projection(lin, d, n_out, written, f"{where} {nm}")
        self.check_linear(att.o, H * att.vd, d, f"{where} o")
        self.check_norm(att.q_norm, hd, f"{where} q_norm")
        self.check_norm(att.k_norm, hd, f"{where} k_norm")
        if att.rope is not None:
            self.expect(att.rope.convention in ROPE_CONVENTIONS,
                        f"{where}: rope convention must be one of {ROPE_CONVENTIONS}")
            self.expect(hd % 2 == 0 and att.rope.omegas.shape == (hd // 2,),
                        f"{where}: rope needs an even head_dim and {hd // 2} frequencies, got {list(att.rope.omegas.shape)}")
        if att.alibi is not None:
            self.expect(att.alibi.shape == (H,), f"{where}: alibi needs one slope per head ({H}), got {list(att.alibi.shape)}")
        if att.bias is not None:
            self.expect(len(att.bias.shape) == 3 and att.bias.shape[0] == H and min(att.bias.shape[1:]) >= T,
                        f"{where}: bias must be [{H}, >= {T}, >= {T}], got {list(att.bias.shape)}")

    def check_mlp(self, mlp: MLP, written: set[int], where: str) -> None:
        d = self.spec.d_model
        self.expect(mlp.act in ACTIVATIONS, f"{where}: activation must be one of {ACTIVATIONS}")
        up_out, down_in = mlp.up.weights[-1].shape, mlp.down.weights[0].shape
        # the width `up` makes; when its last weight is a scalar (reported with `up`), the width `down` reads
        hidden = up_out[0] if up_out else down_in[-1] if down_in else 0
        self.check_projection(mlp.up, d, hidden, written, f"{where} up")
        if mlp.gate is not None:
            self.check_projection(mlp.gate, d, hidden, written, f"{where} gate")
        self.check_linear(mlp.down, hidden, d, f"{where} down")

    def check_projection(self, lin: Linear, n_in: int, n_out: int, written: set[int], where: str) -> None:
        """A projection from the residual stream: its widths, then what it reads (when its widths
        fit and its symbols and the tables are sound: a guess on a broken spec would only add noise)."""
        if (self.check_linear(lin, n_in, n_out, where) and self.flow_known
                and not lin.weights[0].param_names() & self.bad_symbols):
            self.check_reads(lin, written, where)

    def check_linear(self, lin: Linear, n_in: int, n_out: int, where: str) -> bool:
        """The chain maps `n_in` features to `n_out`, its bias fits; True when all of that holds."""
        ok, prev = True, n_in
        for k, w in enumerate(lin.weights):
            if not self.expect(len(w.shape) == 2 and w.shape[1] == prev,
                               f"{where}: weight {k} has shape {list(w.shape)}, expected [*, {prev}]"):
                if len(w.shape) != 2:
                    return False  # not a matrix: the rest of the chain has no width to check against
                ok = False
            prev = w.shape[0]
        ok &= self.expect(prev == n_out, f"{where}: maps to {prev} features, expected {n_out}")
        ok &= self.expect(lin.reduce in REDUCTIONS, f"{where}: reduce must be one of {REDUCTIONS}, got {lin.reduce!r}")
        if lin.bias is not None:
            ok &= self.expect(lin.bias.shape in ((n_out,), ()),
                              f"{where}: bias shape {list(lin.bias.shape)}, expected [{n_out}]")
        return ok

    def check_norm(self, norm: Norm | None, dim: int, where: str) -> None:
        if norm is None:
            return
        self.expect(norm.kind in NORM_KINDS, f"{where}: norm kind must be one of {NORM_KINDS}")
        for what, t in (("weight", norm.weight), ("bias", norm.bias)):
            if t is not None:
                self.expect(t.shape in ((dim,), ()), f"{where}: norm {what} must be [{dim}] or a scalar, got {list(t.shape)}")

    # ------------------------------------------------------------------ data flow
    def check_reads(self, lin: Linear, written: set[int], where: str) -> None:
        unwritten = sorted(_nonzero_along(self.sample(lin.weights[0]), axis=1) - written)
        self.expect(not unwritten,
                    f"{where} reads residual {', '.join(self.slot_name(i) for i in unwritten)} before anything writes it")

    def sample(self, e: TExpr) -> torch.Tensor:
        """`e` at the declared values (free tensors: random non-zero): where it can be non-zero."""
        gen = torch.Generator().manual_seed(SAMPLE_SEED)

        def leaf(n: TExpr) -> torch.Tensor:
            if n.op == "param":
                p = self.declared.get(n.attrs["name"])
                if p is not None and p.values is not None and tuple(p.shape) == n.shape:
                    return exact_tensor(p.values, n.shape)  # a hand-set value: its zeros are structural
                return torch.rand(n.shape, generator=gen, dtype=torch.float64) + SAMPLE_LOW
            return exact_tensor(n.attrs["values"], n.shape)

        with torch.no_grad():
            return evaluate(e, leaf, TORCH)

    def nonzero_cols(self, table: TExpr) -> set[int]:
        """The residual coordinates a [rows, d_model] table writes."""
        return _nonzero_along(self.sample(table), axis=1)

    def nonzero_rows(self, lin: Linear) -> set[int]:
        """The residual coordinates a projection into the residual stream writes."""
        m = self.sample(lin.weights[-1])
        rows = _nonzero_along(m, axis=0)
        if lin.bias is not None and m.dim() == 2:
            b = self.sample(lin.bias)
            rows |= set(range(m.shape[0])) if b.dim() == 0 else set(torch.nonzero(b != 0).flatten().tolist())
        return rows

    def slot_name(self, i: int) -> str:
        start = 0
        for n, w in self.spec.slots:
            if start <= i < start + w:
                return f"slot {n!r}" + (f"[{i - start}]" if w > 1 else "")
            start += w
        return f"dim {i}"


def _nonzero_along(t: torch.Tensor, axis: int) -> set[int]:
    """Indices along `axis` of a matrix where some entry is non-zero (nothing for a non-matrix)."""
    if t.dim() != 2:
        return set()
    return set(torch.nonzero((t != 0).any(dim=1 - axis)).flatten().tolist())
