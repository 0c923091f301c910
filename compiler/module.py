"""`AdderModel`: the one PyTorch module every spec compiles to.

Read `forward` top to bottom: embed, residual blocks (attention / MLP), final norm,
unembed. Nothing in it knows about addition: the prompt format, the greedy loop and the
answer check live outside (`formats.py`, `decode.py`, `adder.verify`).

Parameters and buffers (DESIGN invariant 2): every declared parameter is one
`nn.Parameter` in `self.params`; every constant leaf of a weight expression is a buffer in
`self.consts`. Weights are *computed* from them on each forward (cached while nothing
needs gradients), so a tied weight is literally the same Parameter and
`sum(p.numel() for p in model.parameters())` is the AdderBoard count.
"""

from __future__ import annotations

import math

import sympy
import torch
import torch.nn.functional as F
from torch import nn

from .errors import SpecError
from .expr import Backend, TExpr, evaluate, scalar_to_float
from .spec import MLP, Attention, Linear, ModelSpec, Norm, RoPE

DTYPES = {"float32": torch.float32, "float64": torch.float64}


def _silu_mlx(x: torch.Tensor) -> torch.Tensor:
    """SiLU as MLX evaluates it: x * sigmoid(x), sigmoid split at 0 (y = 1 / (1 + e^|x|);
    y for x < 0, 1 - y otherwise). Where e^|x| overflows, y is 0 as in MLX; the exponent is
    masked there so that gradients stay finite."""
    a = x.abs()
    with torch.no_grad():
        big = torch.isinf(torch.exp(a))
    y = torch.where(big, 0.0, 1 / (1 + torch.exp(torch.where(big, 0.0, a))))
    return x * torch.where(x < 0, y, 1 - y)


_ACT = {"relu": F.relu, "silu": F.silu, "silu_mlx": _silu_mlx, "gelu": F.gelu, "identity": lambda x: x}
_TORCH = Backend()


def param_key(name: str) -> str:
    """`nn.ParameterDict` keys cannot hold dots: "attn.w_qk" is stored as "attn__w_qk"."""
    return name.replace(".", "__")


def init_tensor(init: str, shape: tuple, gen: torch.Generator) -> torch.Tensor:
    """A float64 draw of a free tensor's initialiser (see `dsl.INITS`)."""
    if init == "zeros":
        return torch.zeros(shape, dtype=torch.float64)
    if init == "ones":
        return torch.ones(shape, dtype=torch.float64)
    if init == "linear":  # nn.Linear's default: U(+-1/sqrt(fan_in))
        bound = 1 / math.sqrt(shape[-1] if shape else 1)
        return (torch.rand(shape, generator=gen, dtype=torch.float64) * 2 - 1) * bound
    if init == "xavier":  # Glorot uniform of an [out, in] matrix (a vector: fan_in = fan_out = 1)
        fan_in, fan_out = (shape[-1], shape[0]) if len(shape) >= 2 else (1, 1)
        bound = math.sqrt(6 / (fan_in + fan_out))
        return (torch.rand(shape, generator=gen, dtype=torch.float64) * 2 - 1) * bound
    std = float(init.partition(":")[2] or 0.02)  # "normal" or "normal:S"
    return torch.randn(shape, generator=gen, dtype=torch.float64) * std


class AdderModel(nn.Module):
    """A compiled spec. `forward(tokens[B, T]) -> logits[B, T, V]`."""

    def __init__(self, spec: ModelSpec, dtype: str | torch.dtype = "float32", device: str | torch.device = "cpu",
                 seed: int = 0):
        super().__init__()
        self.spec = spec
        torch_dtype = DTYPES[dtype] if isinstance(dtype, str) else dtype
        self.params = nn.ParameterDict()
        gen = torch.Generator().manual_seed(seed)  # initialises free tensors, in declaration order
        for p in spec.params:
            if p.values is not None:
                t = torch.tensor([scalar_to_float(v) for v in p.values], dtype=torch.float64).reshape(p.shape)
            else:
                t = init_tensor(p.init, p.shape, gen)
            self.params[param_key(p.name)] = nn.Parameter(t.to(torch_dtype), requires_grad=p.trainable)
        self.consts = nn.Module()
        self._const_key: dict[int, str] = {}
        for _, e in spec.all_exprs():
            for n in e.walk():
                if n.op == "const" and id(n) not in self._const_key:
                    key = f"c{len(self._const_key)}"
                    self._const_key[id(n)] = key
                    vals = [scalar_to_float(v) for v in n.attrs["values"]]
                    self.consts.register_buffer(
                        key, torch.tensor(vals, dtype=torch.float64).reshape(n.shape).to(torch_dtype), persistent=False)
        self._last_attention = max((i for i, b in enumerate(spec.blocks) if isinstance(b.layer, Attention)), default=-1)
        self._scales = {id(b.layer): scalar_to_float(b.layer.scale) for b in spec.blocks if isinstance(b.layer, Attention)}
        self._cache: tuple | None = None
        self.to(device)

    # ------------------------------------------------------------------ weights
    def _leaf(self, n: TExpr) -> torch.Tensor:
        if n.op == "param":
            return self.params[param_key(n.attrs["name"])]
        return getattr(self.consts, self._const_key[id(n)])

    def w(self, e: TExpr | None) -> torch.Tensor | None:
        """Evaluate one weight expression in the module's dtype and device."""
        return None if e is None else evaluate(e, self._leaf, _TORCH)

    def weights(self) -> dict[int, torch.Tensor]:
        """All weight expressions, evaluated: id(expr) -> tensor. Cached while no gradient flows."""
        needs_grad = torch.is_grad_enabled() and any(p.requires_grad for p in self.params.values())
        key = tuple((k, p._version, p.data_ptr(), p.dtype) for k, p in self.params.items())
        if not needs_grad and self._cache is not None and self._cache[0] == key:
            return self._cache[1]
        with torch.set_grad_enabled(needs_grad):
            out = {id(e): self.w(e) for _, e in self.spec.all_exprs()}
        self._cache = None if needs_grad else (key, out)
        return out

    @property
    def dtype(self) -> torch.dtype:
        return next(iter(self.consts.buffers()), next(iter(self.params.values()))).dtype

    @property
    def device(self) -> torch.device:
        return next(iter(self.consts.buffers()), next(iter(self.params.values()))).device

    def _apply(self, fn, recurse=True):  # .to()/.double()/.cuda() invalidate the weight cache
        self._cache = None
        return super()._apply(fn, recurse)

    # ------------------------------------------------------------------ forward
    def forward(self, tokens: torch.Tensor, keep_last: int | None = None, trace: dict | None = None) -> torch.Tensor:
        """tokens [B, T] -> logits [B, T, V] (or [B, keep_last, V]: only the last positions).

        `trace`, when a dict, is filled with what interpretability tools need: the residual
        stream after the embedding and after every block (`trace["residual"]`), attention
        probabilities per attention block (`trace["attn"][i]`, [B, H, T, T]) and MLP hidden
        activations (`trace["mlp"][i]`, [B, T, hidden]).

        `keep_last` is the usual "logits to keep" shortcut: layers after the last attention
        only run on the positions whose logits are wanted. The result equals slicing the full
        output up to floating-point summation order (a matmul over fewer rows may accumulate
        in another order: ~1 ulp); `generate` therefore runs the full pass.
        """
        W = self.weights()
        spec = self.spec
        T = tokens.shape[1]
        h = F.embedding(tokens, W[id(spec.embed)])  # [B, T, d]
        if spec.pos is not None:
            h = h + W[id(spec.pos)][:T]
        if trace is not None:
            trace["residual"] = [h]
        for i, block in enumerate(spec.blocks):
            x = self._norm(h, block.norm, W)
            if trace is not None:
                trace["block"] = i
            if isinstance(block.layer, Attention):
                rows = keep_last if (keep_last is not None and i == self._last_attention) else None
                out = self._attention(x, block.layer, W, rows, trace)
                h = (h if rows is None else h[:, -rows:]) + out
            else:
                h = h + self._mlp(x, block.layer, W, trace)
            if trace is not None:
                trace["residual"].append(h)
        if keep_last is not None and self._last_attention < 0:
            h = h[:, -keep_last:]
        h = self._norm(h, spec.final_norm, W)
        return self._linear(h, spec.unembed, W)  # [B, T, V]

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
        if norm.kind == "layer":
            x = F.layer_norm(x, x.shape[-1:], eps=norm.eps)
        else:
            x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + norm.eps)
        if norm.weight is not None:
            x = x * W[id(norm.weight)]
        if norm.bias is not None:
            x = x + W[id(norm.bias)]
        return x

    def _mlp(self, x: torch.Tensor, mlp: MLP, W: dict, trace: dict | None = None) -> torch.Tensor:
        up = self._linear(x, mlp.up, W)
        act = _ACT[mlp.act]
        hidden = act(self._linear(x, mlp.gate, W)) * up if mlp.gate is not None else act(up)
        if trace is not None:
            trace.setdefault("mlp", {})[trace["block"]] = hidden
        return self._linear(hidden, mlp.down, W)

    def _attention(self, x: torch.Tensor, att: Attention, W: dict, rows: int | None,
                   trace: dict | None = None) -> torch.Tensor:
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
            q = _rotate(q, pos[T - Tq:], W[id(att.rope.omegas)], att.rope.convention)
            k = _rotate(k, pos, W[id(att.rope.omegas)], att.rope.convention)
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
        if att.softmax == "softmax1":
            e = scores.exp()
            probs = e / (1 + e.sum(dim=-1, keepdim=True))
        else:
            probs = F.softmax(scores, dim=-1)
        if trace is not None:
            trace.setdefault("attn", {})[trace["block"]] = probs
        out = torch.matmul(probs, v).transpose(1, 2).reshape(B, Tq, H * att.vd)
        return self._linear(out, att.o, W)


def _rotate(x: torch.Tensor, pos: torch.Tensor, omegas: torch.Tensor, convention: str) -> torch.Tensor:
    """Rotary embedding of x [B, T, H, hd] at positions pos [T] with frequencies omegas [hd/2]."""
    ang = pos[:, None] * omegas[None, :]  # [T, hd/2]
    if convention == "interleaved" and x.dtype in (torch.float32, torch.float64):
        # Meta Llama's reference form: adjacent pairs as complex numbers times e^{i angle}
        rot = torch.polar(torch.ones_like(ang), ang)[None, :, None, :]
        xc = torch.view_as_complex(x.reshape(*x.shape[:-1], -1, 2).contiguous())
        return torch.view_as_real(xc * rot).flatten(-2)
    c, s = torch.cos(ang)[None, :, None, :], torch.sin(ang)[None, :, None, :]
    half = x.shape[-1] // 2
    if convention == "interleaved":
        x0, x1 = x[..., 0::2], x[..., 1::2]
        return torch.stack([x0 * c - x1 * s, x0 * s + x1 * c], dim=-1).flatten(-2)
    x0, x1 = x[..., :half], x[..., half:]  # GPT-NeoX / HF form: first half pairs with second half
    return torch.cat([x0 * c - x1 * s, x0 * s + x1 * c], dim=-1)


def compile_spec(spec: ModelSpec, dtype: str | None = None, device: str = "cpu", seed: int = 0) -> AdderModel:
    """Compile a spec into an `AdderModel` (dtype defaults to the spec's own; `seed`
    initialises free tensors)."""
    dtype = dtype or spec.dtype
    if dtype not in DTYPES:
        raise SpecError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
    return AdderModel(spec, dtype=dtype, device=device, seed=seed).eval()
