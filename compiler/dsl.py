"""The construction DSL: write weights the way a paper explains them.

    c = Construction("param40", vocab=DIGITS, fmt=..., slots=[("const", 1), ("digit", 1)])
    omega = 2 * pi / 19                         # exact sympy constants keep their derivation
    w_qk = c.param("attn.w_qk", [[qk, 0], [0, 0]])   # a named parameter (4 learned scalars)
    phase = c.param("attn.q_phase", -phi)
    c.attention(q=[w_qk, rotation(phase)], k=w_qk, ...)   # reuse = tying; chains keep op order
    spec = c.build()                            # checks shapes, symbols and slot use

* `param(name, value)` declares learned scalars with exact values; using the returned
  expression twice ties them (they count once). `frozen=True` keeps a value out of training
  but in the count (the 87p model's "frozen-but-counted" scalars).
* `free(name, shape)` declares a trainable tensor without a value (learned variants).
* Plain numbers and sympy scalars inside expressions are hard-coded constants: buffers,
  not parameters. The ledger reports them separately (the "strict" count).
* Residual slots are named and laid out in declaration order; `matrix(...)` addresses them
  by name, so a sparse hand-set projection reads like "k reads `special` with weight k_w".

`build()` raises `SpecError` with a one-line message for: shape mismatches, an undeclared
or unused parameter, a projection that reads a residual slot nothing has written yet.
"""

from __future__ import annotations

from typing import Any, Sequence

import sympy
import torch

from .errors import SpecError
from .expr import TExpr, as_scalar, const, cos, lift, param, place, sin, stack
from .formats import PromptFormat
from .spec import MLP, Attention, Block, Linear, ModelSpec, Norm, ParamDecl, RoPE

Proj = TExpr | Sequence[TExpr] | Linear
#: Initialisers of free tensors: N(0, 0.02); zeros; ones; nn.Linear's U(+-1/sqrt(fan_in));
#: Glorot/Xavier uniform U(+-sqrt(6/(fan_in + fan_out))) of a [out, in] matrix. "normal:S"
#: draws N(0, S^2) for a decimal S > 0 (MLX's embedding init is "normal:<1/sqrt(d)>").
INITS = ("normal", "zeros", "ones", "linear", "xavier")


def check_init(init: str) -> str:
    """`init` if it names an initialiser (one of INITS, or "normal:S" with S > 0), else SpecError."""
    if init in INITS:
        return init
    kind, _, std = init.partition(":")
    try:
        ok = kind == "normal" and float(std) > 0
    except ValueError:
        ok = False
    if not ok:
        raise SpecError(f"init must be one of {INITS} or 'normal:S' with a standard deviation S > 0, got {init!r}")
    return init


def rotation(angle: Any) -> TExpr:
    """The 2x2 rotation matrix by `angle`: [[cos, -sin], [sin, cos]]."""
    a = lift(angle)
    return stack([stack([cos(a), -sin(a)]), stack([sin(a), cos(a)])])


def rms(eps: float = 1e-6, weight: Any = None) -> Norm:
    """RMSNorm; `weight` None (parameterless), a [d] expression, or a scalar expression."""
    return Norm(kind="rms", eps=eps, weight=None if weight is None else lift(weight))


def layernorm(eps: float = 1e-5, weight: Any = None, bias: Any = None) -> Norm:
    return Norm(kind="layer", eps=eps, weight=None if weight is None else lift(weight),
                bias=None if bias is None else lift(bias))


def rope(*, period: Any = None, omegas: Any = None, theta: Any = None, head_dim: int = 2,
         convention: str = "half") -> RoPE:
    """Rotary positions by `period` (omega = 2*pi/period), explicit `omegas`, or `theta`."""
    if sum(x is not None for x in (period, omegas, theta)) != 1:
        raise SpecError("rope: give exactly one of period=, omegas=, theta=")
    if period is not None:
        om = [2 * sympy.pi / as_scalar(period)] * (head_dim // 2)
    elif theta is not None:
        om = [as_scalar(theta) ** sympy.Rational(-2 * i, head_dim) for i in range(head_dim // 2)]
    else:
        om = omegas
    return RoPE(omegas=lift(om) if not isinstance(om, TExpr) else om, convention=convention)


def linear(p: Proj, bias: Any = None, reduce: str = "matmul") -> Linear:
    """A projection from a matrix, a chain of matrices applied in order, or a `Linear`."""
    if isinstance(p, Linear):
        return p
    ws = [p] if isinstance(p, TExpr) else list(p)
    if not ws or not all(isinstance(w, TExpr) for w in ws):
        raise SpecError("a projection is a matrix expression or a list of them")
    if reduce not in ("matmul", "sum"):
        raise SpecError(f"reduce must be 'matmul' or 'sum', got {reduce!r}")
    return Linear(weights=ws, bias=None if bias is None else lift(bias), reduce=reduce)


class Construction:
    """Builder for a `ModelSpec`. One instance per construction; `build()` returns the spec."""

    def __init__(self, name: str, *, vocab: Sequence[str], fmt: PromptFormat,
                 slots: Sequence[tuple[str, int]], dtype: str = "float32", **meta: Any):
        self.name, self.vocab, self.fmt, self.dtype, self.meta = name, list(vocab), fmt, dtype, dict(meta)
        self.slots = [(n, int(w)) for n, w in slots]
        names = [n for n, _ in self.slots]
        if len(set(names)) != len(names):
            raise SpecError(f"duplicate residual slot names in {names}")
        self.d_model = sum(w for _, w in self.slots)
        self._params: dict[str, ParamDecl] = {}
        self._blocks: list[Block] = []
        self._embed: TExpr | None = None
        self._pos: TExpr | None = None
        self._unembed: Linear | None = None
        self._final_norm: Norm | None = None

    # ------------------------------------------------------------ parameters
    def param(self, name: str, value: Any, *, frozen: bool = False, note: str = "") -> TExpr:
        """Declare learned scalars with exact values; returns the expression to use (and reuse)."""
        if name in self._params:
            raise SpecError(f"parameter {name!r} declared twice; reuse the returned expression to tie")
        c = const(value)
        self._params[name] = ParamDecl(name, c.shape, c.attrs["values"], trainable=not frozen, note=note)
        return param(name, c.shape)

    def free(self, name: str, shape: Sequence[int], *, init: str = "normal", note: str = "") -> TExpr:
        """Declare a trainable tensor without a value (initialised by `init`, seeded)."""
        if name in self._params:
            raise SpecError(f"parameter {name!r} declared twice")
        check_init(init)
        self._params[name] = ParamDecl(name, tuple(shape), None, trainable=True, init=init, note=note)
        return param(name, shape)

    # ------------------------------------------------------------ residual slots
    def dim(self, slot: str, k: int = 0) -> int:
        """Index in the residual stream of coordinate `k` of slot `slot`."""
        start = 0
        for n, w in self.slots:
            if n == slot:
                if not 0 <= k < w:
                    raise SpecError(f"slot {slot!r} has width {w}; coordinate {k} does not exist")
                return start + k
            start += w
        raise SpecError(f"unknown residual slot {slot!r}; slots are {[n for n, _ in self.slots]}")

    def matrix(self, out: int | str, inp: int | str, entries: dict) -> TExpr:
        """A sparse matrix [out, inp]; an axis given as "residual" is addressed by slot names.

        `entries` maps (row, col) to a value; on a residual axis, row/col may be a slot name
        or (slot, k). Example: `c.matrix(1, "residual", {(0, "special"): k_w})`.
        """
        n_out = self.d_model if out == "residual" else int(out)
        n_in = self.d_model if inp == "residual" else int(inp)
        cells = {}
        for (r, col), v in entries.items():
            r = self._resolve(r) if out == "residual" else r
            col = self._resolve(col) if inp == "residual" else col
            cells[(r, col)] = v
        return place((n_out, n_in), cells)

    def _resolve(self, x: Any) -> int:
        if isinstance(x, int):
            return x
        if isinstance(x, str):
            return self.dim(x)
        return self.dim(*x)

    # ------------------------------------------------------------ architecture
    def embed(self, table: Any, pos: Any = None) -> None:
        self._embed, self._pos = lift(table), None if pos is None else lift(pos)

    def attention(self, *, q: Proj, k: Proj, v: Proj, o: Proj, heads: int = 1, kv_heads: int | None = None,
                  head_dim: int, scale: Any = None, divisor: Any = None, rope: RoPE | None = None, alibi: Any = None,
                  bias: Any = None, softmax: str = "softmax", norm: Norm | None = None,
                  q_norm: Norm | None = None, k_norm: Norm | None = None, v_head_dim: int | None = None,
                  scale_at: str = "scores", name: str = "") -> None:
        if scale is not None and divisor is not None:
            raise SpecError("attention: give scale= (multiply) or divisor= (divide), not both")
        if scale_at not in ("scores", "q"):
            raise SpecError(f"attention: scale_at must be 'scores' or 'q', got {scale_at!r}")
        if divisor is not None:
            if scale_at != "scores":
                raise SpecError("attention: divisor= divides the scores; scale_at='q' needs scale=")
            scale, scale_op = as_scalar(divisor), "div"
        else:
            scale = 1 / sympy.sqrt(head_dim) if scale is None else as_scalar(scale)
            scale_op = "mul_q" if scale_at == "q" else "mul"
        att = Attention(scale_op=scale_op, n_heads=heads, n_kv_heads=kv_heads or heads, head_dim=head_dim,
                        q=linear(q), k=linear(k), v=linear(v), o=linear(o), scale=scale,
                        q_norm=q_norm, k_norm=k_norm, rope=rope,
                        alibi=None if alibi is None else lift(alibi),
                        bias=None if bias is None else lift(bias), softmax=softmax, v_head_dim=v_head_dim)
        self._blocks.append(Block(layer=att, norm=norm, name=name or f"attn{len(self._blocks)}"))

    def mlp(self, *, up: Proj, down: Proj, gate: Proj | None = None, act: str = "relu",
            norm: Norm | None = None, name: str = "") -> None:
        m = MLP(up=linear(up), down=linear(down), act=act, gate=None if gate is None else linear(gate))
        self._blocks.append(Block(layer=m, norm=norm, name=name or f"mlp{len(self._blocks)}"))

    def unembed(self, head: Proj, *, final_norm: Norm | None = None) -> None:
        self._unembed, self._final_norm = linear(head), final_norm

    # ------------------------------------------------------------ build
    def build(self) -> ModelSpec:
        if self._embed is None or self._unembed is None:
            raise SpecError(f"{self.name}: a construction needs embed(...) and unembed(...)")
        spec = ModelSpec(name=self.name, vocab=self.vocab, d_model=self.d_model, slots=self.slots,
                         format=self.fmt, params=list(self._params.values()), embed=self._embed,
                         blocks=list(self._blocks), unembed=self._unembed, pos=self._pos,
                         final_norm=self._final_norm, dtype=self.dtype, meta=self.meta)
        validate(spec)
        return spec


# ---------------------------------------------------------------------------- validation
def validate(spec: ModelSpec) -> None:
    """Construction-time checks; each failure is a `SpecError` naming the place and the fix."""
    from .spec import ACTIVATIONS, NORM_KINDS, ROPE_CONVENTIONS, SCALE_OPS, SOFTMAX_KINDS

    declared = {p.name: p for p in spec.params}
    used: set[str] = set()
    for where, e in spec.all_exprs():
        for n in e.walk():
            if n.op == "param":
                name = n.attrs["name"]
                if name not in declared:
                    raise SpecError(f"{where}: unknown symbol {name!r}; declare it with param() or free()")
                if tuple(declared[name].shape) != tuple(n.shape):
                    raise SpecError(f"{where}: {name!r} used with shape {n.shape} but declared {declared[name].shape}")
                used.add(name)
    d, V = spec.d_model, len(spec.vocab)
    _expect(spec.embed.shape == (V, d), f"embed must be [{V}, {d}] (vocab x d_model), got {list(spec.embed.shape)}")
    if spec.pos is not None:
        _expect(len(spec.pos.shape) == 2 and spec.pos.shape[1] == d and spec.pos.shape[0] >= spec.format.total_len,
                f"pos must be [>= {spec.format.total_len}, {d}], got {list(spec.pos.shape)}")
    _expect(max(spec.format.prompt_tokens_max(), max(spec.format.digit_tokens)) < V,
            f"the prompt format uses token ids outside the vocabulary of {V}")

    written = _nonzero_cols(spec.embed, spec)
    if spec.pos is not None:
        written |= _nonzero_cols(spec.pos, spec)
    for i, b in enumerate(spec.blocks):
        where = f"block {i} ({b.name})"
        _check_norm(b.norm, d, where)
        layer = b.layer
        if isinstance(layer, Attention):
            H, Hk, hd = layer.n_heads, layer.n_kv_heads, layer.head_dim
            _expect(H % Hk == 0, f"{where}: {H} query heads cannot share {Hk} key/value heads")
            _expect(layer.softmax in SOFTMAX_KINDS, f"{where}: softmax must be one of {SOFTMAX_KINDS}")
            _expect(layer.scale_op in SCALE_OPS, f"{where}: scale_op must be one of {SCALE_OPS}")
            for nm, lin, n_out in (("q", layer.q, H * hd), ("k", layer.k, Hk * hd), ("v", layer.v, Hk * layer.vd)):
                _check_linear(lin, d, n_out, f"{where} {nm}")
                _check_reads(lin, written, spec, f"{where} {nm}")
            _check_linear(layer.o, H * layer.vd, d, f"{where} o")
            _check_norm(layer.q_norm, hd, f"{where} q_norm")
            _check_norm(layer.k_norm, hd, f"{where} k_norm")
            if layer.rope is not None:
                _expect(layer.rope.convention in ROPE_CONVENTIONS, f"{where}: rope convention must be one of {ROPE_CONVENTIONS}")
                _expect(hd % 2 == 0 and layer.rope.omegas.shape == (hd // 2,),
                        f"{where}: rope needs an even head_dim and {hd // 2} frequencies, got {list(layer.rope.omegas.shape)}")
            if layer.alibi is not None:
                _expect(layer.alibi.shape == (H,), f"{where}: alibi needs one slope per head ({H}), got {list(layer.alibi.shape)}")
            if layer.bias is not None:
                T = spec.format.total_len
                _expect(len(layer.bias.shape) == 3 and layer.bias.shape[0] == H and min(layer.bias.shape[1:]) >= T,
                        f"{where}: bias must be [{H}, >= {T}, >= {T}], got {list(layer.bias.shape)}")
            written |= _nonzero_rows(layer.o, spec)
        else:
            _expect(layer.act in ACTIVATIONS, f"{where}: activation must be one of {ACTIVATIONS}")
            hidden = layer.up.out_features
            _check_linear(layer.up, d, hidden, f"{where} up")
            _check_reads(layer.up, written, spec, f"{where} up")
            if layer.gate is not None:
                _check_linear(layer.gate, d, hidden, f"{where} gate")
                _check_reads(layer.gate, written, spec, f"{where} gate")
            _check_linear(layer.down, hidden, d, f"{where} down")
            written |= _nonzero_rows(layer.down, spec)
    _check_norm(spec.final_norm, d, "final_norm")
    _check_linear(spec.unembed, d, V, "unembed")
    _check_reads(spec.unembed, written, spec, "unembed")
    for nm in (b.norm.kind for b in spec.blocks if b.norm is not None):
        _expect(nm in NORM_KINDS, f"norm kind must be one of {NORM_KINDS}")
    unused = sorted(set(declared) - used)
    if unused:
        raise SpecError(f"parameters declared but never used (they would inflate the count): {unused}")


def _expect(ok: bool, msg: str) -> None:
    if not ok:
        raise SpecError(msg)


def _check_linear(lin: Linear, n_in: int, n_out: int, where: str) -> None:
    prev = n_in
    for k, w in enumerate(lin.weights):
        _expect(len(w.shape) == 2 and w.shape[1] == prev,
                f"{where}: weight {k} has shape {list(w.shape)}, expected [*, {prev}]")
        prev = w.shape[0]
    _expect(prev == n_out, f"{where}: maps to {prev} features, expected {n_out}")
    if lin.bias is not None:
        _expect(lin.bias.shape in ((n_out,), ()), f"{where}: bias shape {list(lin.bias.shape)}, expected [{n_out}]")


def _check_norm(norm: Norm | None, dim: int, where: str) -> None:
    if norm is not None and norm.weight is not None:
        _expect(norm.weight.shape in ((dim,), ()), f"{where}: norm weight must be [{dim}] or a scalar, got {list(norm.weight.shape)}")


def _sample(e: TExpr, spec: ModelSpec) -> torch.Tensor:
    """`e` evaluated at the declared values (free tensors: random non-zero): where it can be non-zero."""
    from .expr import Backend, evaluate, scalar_to_float

    gen = torch.Generator().manual_seed(1234)

    declared = {p.name: p for p in spec.params}

    def leaf(n: TExpr) -> torch.Tensor:
        if n.op == "param":
            p = declared.get(n.attrs["name"])
            if p is not None and p.values is not None:  # a hand-set value: its zeros are structural
                return torch.tensor([scalar_to_float(v) for v in p.values], dtype=torch.float64).reshape(n.shape)
            return torch.rand(n.shape, generator=gen, dtype=torch.float64) + 0.5
        vals = [scalar_to_float(v) for v in n.attrs["values"]]
        return torch.tensor(vals, dtype=torch.float64).reshape(n.shape)

    with torch.no_grad():
        return evaluate(e, leaf, Backend())


def _nonzero_cols(table: TExpr, spec: ModelSpec) -> set[int]:
    t = _sample(table, spec)
    return set(torch.nonzero((t != 0).any(dim=0)).flatten().tolist())


def _nonzero_rows(lin: Linear, spec: ModelSpec) -> set[int]:
    m = _sample(lin.weights[-1], spec)
    rows = set(torch.nonzero((m != 0).any(dim=1)).flatten().tolist())
    if lin.bias is not None:
        b = _sample(lin.bias, spec)
        rows |= set(range(m.shape[0])) if b.dim() == 0 else set(torch.nonzero(b != 0).flatten().tolist())
    return rows


def _check_reads(lin: Linear, written: set[int], spec: ModelSpec, where: str) -> None:
    m = _sample(lin.weights[0], spec)
    reads = set(torch.nonzero((m != 0).any(dim=0)).flatten().tolist())
    unwritten = sorted(reads - written)
    if unwritten:
        names = [_slot_name(spec, i) for i in unwritten]
        raise SpecError(f"{where} reads residual {', '.join(names)} before anything writes it")


def _slot_name(spec: ModelSpec, i: int) -> str:
    start = 0
    for n, w in spec.slots:
        if start <= i < start + w:
            return f"slot {n!r}" + (f"[{i - start}]" if w > 1 else "")
        start += w
    return f"dim {i}"
