"""The construction DSL: write weights the way a paper explains them.

    c = Construction("param40", vocab=DIGITS, fmt=..., slots=[("const", 1), ("digit", 1)])
    omega = 2 * pi / 19                         # exact sympy constants keep their derivation
    w_qk = c.param("attn.w_qk", [[qk, 0], [0, 0]])   # a named parameter (4 learned scalars)
    phase = c.param("attn.q_phase", -phi)
    c.attention(q=[w_qk, rotation(phase)], k=w_qk, ...)   # reuse = tying; chains keep op order
    spec = c.build()                            # validates: symbols, widths, slot use

* `param(name, value)` declares learned scalars with exact values; using the returned
  expression twice ties them (they count once). `frozen=True` keeps a value out of training
  but in the count (the 87p model's "frozen-but-counted" scalars).
* `free(name, shape)` declares a trainable tensor without a value (learned variants).
* Plain numbers and sympy scalars inside expressions are hard-coded constants: buffers,
  not parameters. The ledger reports them separately (the "strict" count).
* Residual slots are named and laid out in declaration order; `matrix(...)` addresses them
  by name, so a sparse hand-set projection reads like "k reads `special` with weight k_w".

Shapes are checked as each expression is written. `build()` then runs the validation pass
(`validate.py`), which raises one one-line `SpecError` listing every problem it finds: an
undeclared or unused parameter, a projection of the wrong width, a projection that reads a
residual slot nothing has written yet.
"""

from __future__ import annotations

from typing import Any, Sequence

import sympy

from .errors import SpecError
from .expr import TExpr, cat, const, cos, lift, param, place, sin, stack, zeros
from .formats import PromptFormat
from .inits import check_init
from .scalars import as_scalar
from .spec import LAYERNORM_EPS, REDUCTIONS, RMS_EPS, MLP, Attention, Block, Linear, ModelSpec, Norm, ParamDecl, RoPE
from .validate import validate

Proj = TExpr | Sequence[TExpr] | Linear
#: Where an attention's `scale=` applies: to the scores `(q . k) * scale`, or to q, `(scale * q) . k`.
SCALE_AT = ("scores", "q")


def rotation(angle: Any) -> TExpr:
    """The 2x2 rotation matrix by `angle`: [[cos, -sin], [sin, cos]]."""
    a = lift(angle)
    return stack([stack([cos(a), -sin(a)]), stack([sin(a), cos(a)])])


def block_diag(*blocks: TExpr) -> TExpr:
    """The block-diagonal matrix of square blocks (`block_diag(rotation(a), rotation(a))`: a turn
    of every pair of a 4-vector)."""
    n = sum(b.shape[0] for b in blocks)
    rows, at = [], 0
    for b in blocks:
        k = b.shape[0]
        rows.append(cat([x for x in (zeros(k, at) if at else None, b, zeros(k, n - at - k) if n - at - k else None)
                         if x is not None], axis=1))
        at += k
    return cat(rows, axis=0)


def rms(eps: float = RMS_EPS, weight: Any = None) -> Norm:
    """RMSNorm; `weight` None (parameterless), a [d] expression, or a scalar expression."""
    return Norm(kind="rms", eps=eps, weight=None if weight is None else lift(weight))


def layernorm(eps: float = LAYERNORM_EPS, weight: Any = None, bias: Any = None) -> Norm:
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
    if reduce not in REDUCTIONS:
        raise SpecError(f"reduce must be one of {REDUCTIONS}, got {reduce!r}")
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
        if scale_at not in SCALE_AT:
            raise SpecError(f"attention: scale_at must be one of {SCALE_AT}, got {scale_at!r}")
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
        """The spec, after the validation pass (`validate.py`): one `SpecError` lists every problem."""
        if self._embed is None or self._unembed is None:
            raise SpecError(f"{self.name}: a construction needs embed(...) and unembed(...)")
        spec = ModelSpec(name=self.name, vocab=self.vocab, d_model=self.d_model, slots=self.slots,
                         format=self.fmt, params=list(self._params.values()), embed=self._embed,
                         blocks=list(self._blocks), unembed=self._unembed, pos=self._pos,
                         final_norm=self._final_norm, dtype=self.dtype, meta=self.meta)
        validate(spec)
        return spec
