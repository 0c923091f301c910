"""`compile_spec`, the compiler's pipeline, and `AdderModel`, the one PyTorch module every
spec compiles to.

The compiler is a chain of passes, each in its own module:

    exact scalars (`scalars.py`) -> expressions (`expr.py`) -> spec (`spec.py`, written with
    `builder.py`) -> validation (`validate.py`) -> module (this file)

`compile_spec` reads as the last steps of that list. Read `AdderModel.forward` top to
bottom: embed, residual blocks (attention / MLP), final norm, unembed. Nothing in it knows
about addition: the prompt format, the greedy loop and the answer check live outside
(`formats.py`, `decode.py`, `adder.verify`).

Parameters and buffers (DESIGN invariant 2): every declared parameter is one
`nn.Parameter`, reached by its declared name with `model.param("attn.w_qk")` (and listed by
`model.named_spec_params()`); every constant leaf of a weight expression is a buffer in
`self.consts`. Weights are *computed* from them on each forward (cached while nothing
needs gradients), so a tied weight is literally the same Parameter and
`sum(p.numel() for p in model.parameters())` is the AdderBoard count.
"""

from __future__ import annotations

from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn
from torch._C._functorch import is_functorch_wrapped_tensor

from .errors import AdderError, SpecError, did_you_mean
from .evaluate import TORCH, evaluate, exact_tensor
from .expr import TExpr
from .inits import init_tensor
from .ops import ACTIVATIONS as OPS_ACTIVATIONS
from .ops import NORMS, ROTARIES, SOFTMAXES
from .scalars import scalar_to_float
from .spec import MLP, Attention, Linear, ModelSpec, Norm
from .validate import validate

DTYPES = {"float32": torch.float32, "float64": torch.float64}


# ---------------------------------------------------------------------------- the pipeline
def compile_spec(spec: ModelSpec, dtype: str | None = None, device: str = "cpu", seed: int = 0) -> AdderModel:
    """Compile a spec into an `AdderModel`.

    The whole pipeline is exact scalars -> expressions -> spec -> validation -> module; the
    first three are how a spec is written (`scalars.py`, `expr.py`, `spec.py` via `builder.py`).
    From a finished spec, in order:

    1. `validate(spec)`: every problem of the spec, as one `SpecError`;
    2. `choose_dtype`: the arithmetic, the spec's own unless `dtype` is given;
    3. `AdderModel(...)`: the parameters (declared values, or initialisers drawn from `seed`)
       and the constants as buffers;
    4. `place` it on `device`, in eval mode.
    """
    validate(spec)
    torch_dtype = choose_dtype(spec, dtype)
    model = AdderModel(spec, dtype=torch_dtype, seed=seed)
    return place(model, device)


def choose_dtype(spec: ModelSpec, dtype: str | None = None) -> torch.dtype:
    """The arithmetic to compile in: `dtype` when given, else the one the spec is correct in."""
    return dtype_named(dtype or spec.dtype)


def dtype_named(name: str, error: type[AdderError] = SpecError) -> torch.dtype:
    """The torch dtype called `name` (a key of DTYPES), else `error` saying which exist."""
    if name not in DTYPES:
        raise error(f"dtype must be one of {sorted(DTYPES)}, got {name!r}")
    return DTYPES[name]


def place(model: AdderModel, device: str | torch.device) -> AdderModel:
    """`model` on `device`, in eval mode (it has no dropout; eval says it is not training)."""
    return model.to(device).eval()


# ---------------------------------------------------------------------------- the module
#: The MLP activations by spec name (compiler/ops.py holds each with its high-precision and
#: exported forms). Public because the prover's library checks (verify/prove/libm.py) must test
#: the very functions the module calls, bit for bit, not a re-implementation.
ACTIVATIONS = {name: op.torch for name, op in OPS_ACTIVATIONS.items()}


def _storage_key(name: str) -> str:
    """`nn.ParameterDict` keys cannot hold dots: "attn.w_qk" is stored as "attn__w_qk".

    Checkpoints store parameters under these keys (`AdderModel.stored_params`), and the
    weights hash covers them: this spelling is part of the checkpoint format."""
    return name.replace(".", "__")


def _declare_parameters(spec: ModelSpec, dtype: torch.dtype, seed: int) -> nn.ParameterDict:
    """One `nn.Parameter` per declared parameter: its exact value rounded to `dtype`, or a draw
    of its initialiser (a generator seeded by `seed`, in declaration order). Frozen values
    are parameters without gradient."""
    gen = torch.Generator().manual_seed(seed)
    params = nn.ParameterDict()
    for p in spec.params:
        t = exact_tensor(p.values, p.shape) if p.values is not None else init_tensor(p.init, p.shape, gen)
        params[_storage_key(p.name)] = nn.Parameter(t.to(dtype), requires_grad=p.trainable)
    return params


def _constant_buffers(spec: ModelSpec, dtype: torch.dtype) -> tuple[nn.Module, dict[int, str]]:
    """Every constant leaf of the spec's weights as a (non-persistent) buffer, and id(leaf) -> its name."""
    consts, key_of = nn.Module(), {}
    for _, e in spec.all_exprs():
        for n in e.walk():
            if n.op == "const" and id(n) not in key_of:
                key_of[id(n)] = f"c{len(key_of)}"
                consts.register_buffer(key_of[id(n)], exact_tensor(n.attrs["values"], n.shape).to(dtype), persistent=False)
    return consts, key_of


class AdderModel(nn.Module):
    """A compiled spec. `forward(tokens[B, T]) -> logits[B, T, V]`.

    `spec_text` is the exact spec text a checkpoint was read from (None for a spec compiled
    here): saving and hashing use it as stored, so that re-saving a loaded checkpoint and
    its weights hash are byte-stable even where this adder would serialise the spec with
    more (defaulted) fields.
    """

    def __init__(self, spec: ModelSpec, dtype: torch.dtype = torch.float32, seed: int = 0,
                 spec_text: str | None = None):
        super().__init__()
        self.spec = spec
        self.spec_text = spec_text
        self._keys = {p.name: _storage_key(p.name) for p in spec.params}  # declared name -> storage key
        self._params = _declare_parameters(spec, dtype, seed)
        self.consts, self._const_key = _constant_buffers(spec, dtype)
        self._last_attention = max((i for i, b in enumerate(spec.blocks) if isinstance(b.layer, Attention)), default=-1)
        self._scales = {id(b.layer): scalar_to_float(b.layer.scale) for b in spec.blocks if isinstance(b.layer, Attention)}
        self._cache: tuple | None = None

    # ------------------------------------------------------------------ parameters by name
    def param(self, name: str) -> nn.Parameter:
        """The parameter declared as `name` in the spec (e.g. "attn.w_qk")."""
        if name not in self._keys:
            raise SpecError(f"{self.spec.name} has no parameter {name!r}.{did_you_mean(name, self._keys)}")
        return self._params[self._keys[name]]

    def named_spec_params(self) -> Iterator[tuple[str, nn.Parameter]]:
        """(declared name, parameter) for every parameter, in declaration order."""
        for name, key in self._keys.items():
            yield name, self._params[key]

    def stored_params(self) -> dict[str, nn.Parameter]:
        """Every parameter under the key a checkpoint's `state` stores it by (the weights hash
        covers these keys; they are the declared names with "." written "__")."""
        return dict(self._params.items())

    # ------------------------------------------------------------------ weights
    def _leaf(self, n: TExpr) -> torch.Tensor:
        if n.op == "param":
            return self._params[self._keys[n.attrs["name"]]]
        return getattr(self.consts, self._const_key[id(n)])

    def w(self, e: TExpr | None) -> torch.Tensor | None:
        """Evaluate one weight expression in the module's dtype and device."""
        return None if e is None else evaluate(e, self._leaf, TORCH)

    def weights(self) -> dict[int, torch.Tensor]:
        """All weight expressions, evaluated: id(expr) -> tensor. Cached while no gradient flows.

        Under torch.func transforms (`vmap` over a population's stacked parameters) the
        parameters are wrappers without storage that report no gradient even when one flows
        through them: the weights are evaluated as they are, in the caller's grad mode, uncached."""
        if any(is_functorch_wrapped_tensor(p) for p in self._params.values()):
            return {id(e): self.w(e) for _, e in self.spec.all_exprs()}
        needs_grad = torch.is_grad_enabled() and any(p.requires_grad for p in self._params.values())
        key = tuple((k, p._version, p.data_ptr(), p.dtype) for k, p in self._params.items())
        if not needs_grad and self._cache is not None and self._cache[0] == key:
            return self._cache[1]
        with torch.set_grad_enabled(needs_grad):
            out = {id(e): self.w(e) for _, e in self.spec.all_exprs()}
        self._cache = None if needs_grad else (key, out)
        return out

    @property
    def dtype(self) -> torch.dtype:
        return self._reference_tensor().dtype

    @property
    def device(self) -> torch.device:
        return self._reference_tensor().device

    def _reference_tensor(self) -> torch.Tensor:
        """A buffer (or, if there is none, a parameter): what the module's dtype and device are read from."""
        return next(iter(self.consts.buffers()), next(iter(self._params.values())))

    def _apply(self, fn, recurse=True):  # .to()/.double()/.cuda() invalidate the weight cache
        self._cache = None
        return super()._apply(fn, recurse)

    # ------------------------------------------------------------------ forward
    def forward(self, tokens: torch.Tensor, keep_last: int | None = None, cache: dict | None = None,
                hooks: dict | None = None) -> torch.Tensor:
        """tokens [B, T] -> logits [B, T, V] (or [B, keep_last, V]: only the last positions).

        Named activation sites (`SITES`), for interpretability tools: `cache`, when a dict, is
        filled with the tensor at every site, by name; `hooks` maps site names to functions
        that replace the tensor there (activation patching), the rest of the pass reading
        the replacement. Without either, the pass is unchanged, bit for bit.

        `keep_last` is the usual "logits to keep" shortcut: layers after the last attention
        only run on the positions whose logits are wanted. The result equals slicing the full
        output up to floating-point summation order (a matmul over fewer rows may accumulate
        in another order: ~1 ulp); `generate` therefore runs the full pass.
        """
        W = self.weights()
        spec = self.spec
        T = tokens.shape[1]
        if hooks:
            unknown = sorted(set(hooks) - set(self.sites()))
            if unknown:
                raise KeyError(f"no activation site {unknown[0]!r} in {spec.name}; its sites: {', '.join(self.sites())}")
        site = _Sites(cache, hooks)
        h = F.embedding(tokens, W[id(spec.embed)])  # [B, T, d]
        if spec.pos is not None:
            h = h + W[id(spec.pos)][:T]
        h = site("resid.0", h)
        for i, block in enumerate(spec.blocks):
            x = self._norm(h, block.norm, W)
            if isinstance(block.layer, Attention):
                rows = keep_last if (keep_last is not None and i == self._last_attention) else None
                out = site(f"blocks.{i}.attn.out", self._attention(x, block.layer, W, rows, site.at(i)))
                h = (h if rows is None else h[:, -rows:]) + out
            else:
                h = h + site(f"blocks.{i}.mlp.out", self._mlp(x, block.layer, W, site.at(i)))
            h = site(f"resid.{i + 1}", h)
        if keep_last is not None and self._last_attention < 0:
            h = h[:, -keep_last:]
        h = self._norm(h, spec.final_norm, W)
        return self._linear(h, spec.unembed, W)  # [B, T, V]

    def sites(self) -> list[str]:
        """Every activation site of this model's forward pass, in the order the pass meets them."""
        out = ["resid.0"]
        for i, block in enumerate(self.spec.blocks):
            kind = "attn" if isinstance(block.layer, Attention) else "mlp"
            out += [f"blocks.{i}.{kind}.{s}" for s in SITES[kind]] + [f"resid.{i + 1}"]
        return out

    # ------------------------------------------------------------------ layers
    @staticmethod
    def _linear(x: torch.Tensor, lin: Linear, W: dict) -> torch.Tensor:
        for m in lin.weights:
            if lin.reduce == "sum":
                x = (x[..., None, :] * W[id(m)]).sum(-1)
            else:
                x = torch.matmul(x, W[id(m)].T)
        if lin.bias is not None:
            x = x + W[id(lin.bias)]
        return x

    @staticmethod
    def _norm(x: torch.Tensor, norm: Norm | None, W: dict) -> torch.Tensor:
        if norm is None:
            return x
        x = NORMS[norm.kind].torch(x, norm.eps)
        if norm.weight is not None:
            x = x * W[id(norm.weight)]
        if norm.bias is not None:
            x = x + W[id(norm.bias)]
        return x

    def _mlp(self, x: torch.Tensor, mlp: MLP, W: dict, site: "_Sites") -> torch.Tensor:
        up = self._linear(x, mlp.up, W)
        act = ACTIVATIONS[mlp.act]
        hidden = act(self._linear(x, mlp.gate, W)) * up if mlp.gate is not None else act(up)
        hidden = site("mlp.hidden", hidden)
        return self._linear(hidden, mlp.down, W)

    def _attention(self, x: torch.Tensor, att: Attention, W: dict, rows: int | None, site: "_Sites") -> torch.Tensor:
        B, T, _ = x.shape
        H, Hkv, hd = att.n_heads, att.n_kv_heads, att.head_dim
        xq = x if rows is None else x[:, -rows:]
        Tq = xq.shape[1]
        q = self._linear(xq, att.q, W).view(B, Tq, H, hd)
        k = self._linear(x, att.k, W).view(B, T, Hkv, hd)
        v = self._linear(x, att.v, W).view(B, T, Hkv, att.vd)
        q, k = self._norm(q, att.q_norm, W), self._norm(k, att.k_norm, W)
        if att.rope is not None:
            pos = torch.arange(T, dtype=x.dtype, device=x.device)
            q = rotary(q, pos[T - Tq:], W[id(att.rope.omegas)], att.rope.convention)
            k = rotary(k, pos, W[id(att.rope.omegas)], att.rope.convention)
        scale = self._scales[id(att)]
        if att.scale_op == "mul_q":  # (scale * q) . k: MLX's attention order
            q = scale * q
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # [B, H, T, hd]
        if Hkv != H:
            k = k.repeat_interleave(H // Hkv, dim=1)
            v = v.repeat_interleave(H // Hkv, dim=1)
        scores = torch.matmul(q, k.transpose(-2, -1))  # [B, H, Tq, T]
        if att.scale_op == "div":
            scores = scores / scale
        elif att.scale_op == "mul" and scale != 1.0:
            scores = scores * scale
        i = torch.arange(T - Tq, T, device=x.device)[:, None]
        j = torch.arange(T, device=x.device)[None, :]
        if att.alibi is not None:
            scores = scores + W[id(att.alibi)][:, None, None] * (j - i).to(x.dtype)
        if att.bias is not None:
            scores = scores + W[id(att.bias)][:, T - Tq:T, :T]
        if att.causal:
            scores = scores.masked_fill(j > i, float("-inf"))
        scores = site("attn.scores", scores)
        probs = site("attn.pattern", SOFTMAXES[att.softmax].torch(scores))
        out = torch.matmul(probs, v).transpose(1, 2).reshape(B, Tq, H * att.vd)
        return self._linear(out, att.o, W)


#: The activation sites inside a block, by kind (`AdderModel.sites()` lists a model's whole set):
#: `resid.{i}` is the residual stream before block i (`resid.0`: after the embedding), and
#: `blocks.{i}.attn.scores` [B, H, Tq, T] (scaled, biased and masked), `.pattern` [B, H, Tq, T]
#: (the softmax), `.out` [B, Tq, d] (the block's output, before the residual add);
#: `blocks.{i}.mlp.hidden` [B, T, hidden] (after the activation and gate), `.out` [B, T, d].
SITES = {"attn": ("scores", "pattern", "out"), "mlp": ("hidden", "out")}


class _Sites:
    """One forward pass's view of the named sites: `site(name, t)` records t in the cache and
    returns it, or what the hook on `name` makes of it. With neither, it returns t itself."""

    def __init__(self, cache: dict | None, hooks: dict | None, prefix: str = ""):
        self.cache, self.hooks, self.prefix = cache, hooks, prefix

    def at(self, block: int) -> "_Sites":
        return _Sites(self.cache, self.hooks, f"blocks.{block}.")

    def __call__(self, name: str, t: torch.Tensor) -> torch.Tensor:
        name = self.prefix + name if not name.startswith(("resid.", "blocks.")) else name
        if self.hooks and name in self.hooks:
            t = self.hooks[name](t)
        if self.cache is not None:
            self.cache[name] = t
        return t


def rotary(x: torch.Tensor, pos: torch.Tensor, omegas: torch.Tensor, convention: str) -> torch.Tensor:
    """Rotary embedding of x [B, T, H, hd] at positions pos [T] with frequencies omegas [hd/2].
    Public for the prover (verify/prove/weights.py), which bounds the rotated vectors from this
    very float computation rather than from a formula that may round differently."""
    return ROTARIES[convention].torch(x, pos[:, None] * omegas[None, :])  # angles [T, hd/2]
