"""The same spec evaluated in high-precision arithmetic (mpmath, 50 significant digits).

This is an independent re-implementation of `AdderModel.forward`'s semantics over numpy
object arrays of `mpmath.mpf`, used to class failures: a case that is wrong here too is a
*construction* error (wrong in (nearly) real arithmetic), one that is right here but wrong
in float32/float64 is a *precision* error. Slow (tens of ms per case): it runs on failing
cases and a sample, never on whole suites.

Weights: a hand-set parameter whose tensor still equals its declared exact value (rounded
to the model's dtype) is evaluated from the exact value (so `2*pi/19` is 2π/19 to 50
digits); a trained or edited one is taken exactly as stored.
"""

from __future__ import annotations

import mpmath
import numpy as np
import torch

from ..compiler.evaluate import Backend, evaluate
from ..compiler.expr import TExpr
from ..compiler.module import AdderModel
from ..compiler.ops import ACTIVATIONS, NORMS, ROTARIES, SOFTMAXES, mp_cos, mp_exp, mp_sin, mp_sqrt
from ..compiler.spec import Attention, Linear, Norm

DIGITS = 50

_mp_log = np.vectorize(mpmath.log, otypes=[object])
_mp_abs = np.vectorize(abs, otypes=[object])


def _mp(x) -> np.ndarray:
    return np.vectorize(lambda v: mpmath.mpf(v), otypes=[object])(np.asarray(x, dtype=object))


class MpBackend(Backend):
    """Tensor-expression operations over numpy object arrays of mpf."""

    def matmul(self, x, y):
        return np.dot(x, y)

    def fn(self, name, x):
        return {"cos": mp_cos, "sin": mp_sin, "exp": mp_exp, "log": _mp_log, "sqrt": mp_sqrt, "abs": _mp_abs}[name](x)

    def stack(self, xs, axis):
        return np.stack(xs, axis=axis)

    def cat(self, xs, axis):
        return np.concatenate(xs, axis=axis)

    def place(self, shape, positions, values):
        out = _mp(np.zeros(shape))
        for pos, v in zip(positions, values):
            out[tuple(pos)] = v
        return out


class ExactModel:
    """`logits(tokens)` of a compiled model's spec, in 50-digit arithmetic."""

    def __init__(self, model: AdderModel, digits: int = DIGITS):
        self.model, self.spec, self.digits = model, model.spec, digits
        with mpmath.workdps(digits):
            self.params = {p.name: self._param_value(p) for p in self.spec.params}
            backend = MpBackend()
            self.W = {id(e): evaluate(e, self._leaf, backend) for _, e in self.spec.all_exprs()}

    def _param_value(self, p) -> np.ndarray:
        stored = self.model.param(p.name).detach().cpu().double()
        if p.values is not None:
            exact = np.array([mpmath.mpmathify(str(v.evalf(self.digits + 5))) if v.is_finite else
                              mpmath.mpf("inf") * (1 if v > 0 else -1) for v in p.values], dtype=object).reshape(p.shape)
            rounded = torch.tensor([float(v) for v in exact.reshape(-1)], dtype=torch.float64).to(
                self.model.dtype).double().reshape(p.shape)
            if torch.equal(rounded, stored):
                return exact
        return _mp(stored.numpy())

    def _leaf(self, n: TExpr):
        if n.op == "param":
            return self.params[n.attrs["name"]]
        vals = [mpmath.mpmathify(str(v.evalf(self.digits + 5))) if v.is_finite else
                mpmath.mpf("inf") * (1 if v > 0 else -1) for v in n.attrs["values"]]
        return np.array(vals, dtype=object).reshape(n.shape)

    # ----------------------------------------------------------------- forward
    def logits(self, tokens: list[int]) -> np.ndarray:
        """tokens [T] -> logits [T, V] (object array of mpf)."""
        with mpmath.workdps(self.digits):
            spec, W = self.spec, self.W
            T = len(tokens)
            h = np.array(W[id(spec.embed)])[tokens]
            if spec.pos is not None:
                h = h + np.array(W[id(spec.pos)])[:T]
            for block in spec.blocks:
                x = self._norm(h, block.norm)
                h = h + (self._attention(x, block.layer) if isinstance(block.layer, Attention) else self._mlp(x, block.layer))
            return self._linear(self._norm(h, spec.final_norm), spec.unembed)

    def _linear(self, x, lin: Linear):
        for m in lin.weights:
            x = np.dot(x, np.asarray(self.W[id(m)]).T)
        if lin.bias is not None:
            x = x + self.W[id(lin.bias)]
        return x

    def _norm(self, x, norm: Norm | None):
        if norm is None:
            return x
        x = NORMS[norm.kind].exact(x, mpmath.mpf(norm.eps))
        if norm.weight is not None:
            x = x * self.W[id(norm.weight)]
        if norm.bias is not None:
            x = x + self.W[id(norm.bias)]
        return x

    def _mlp(self, x, mlp):
        up = self._linear(x, mlp.up)
        act = ACTIVATIONS[mlp.act].exact
        hidden = act(self._linear(x, mlp.gate)) * up if mlp.gate is not None else act(up)
        return self._linear(hidden, mlp.down)

    def _attention(self, x, att: Attention):
        T = x.shape[0]
        H, Hkv, hd = att.n_heads, att.n_kv_heads, att.head_dim
        q = self._linear(x, att.q).reshape(T, H, hd)
        k = self._linear(x, att.k).reshape(T, Hkv, hd)
        v = self._linear(x, att.v).reshape(T, Hkv, att.vd)
        q, k = self._norm(q, att.q_norm), self._norm(k, att.k_norm)
        if att.rope is not None:
            om = np.asarray(self.W[id(att.rope.omegas)])
            ang = _mp(np.arange(T))[:, None] * om[None, :]  # [T, hd/2]
            turn = ROTARIES[att.rope.convention].exact
            q, k = turn(q, ang), turn(k, ang)
        rep = H // Hkv
        scale = mpmath.mpmathify(str(att.scale.evalf(self.digits + 5)))
        out = np.empty((T, H * att.vd), dtype=object)
        alibi = None if att.alibi is None else np.asarray(self.W[id(att.alibi)])
        bias = None if att.bias is None else np.asarray(self.W[id(att.bias)])
        for h in range(H):
            kv = h // rep
            s = np.dot(q[:, h], k[:, kv].T)  # [T, T]
            s = s / scale if att.scale_op == "div" else s * scale  # "mul_q": the same in exact arithmetic
            i, j = np.arange(T)[:, None], np.arange(T)[None, :]
            if alibi is not None:
                s = s + alibi[h] * _mp(j - i)
            if bias is not None:
                s = s + bias[h, :T, :T]
            if att.causal:
                s = np.where(j > i, mpmath.mpf("-inf"), s)
            p = SOFTMAXES[att.softmax].exact(s)
            out[:, h * att.vd:(h + 1) * att.vd] = np.dot(p, v[:, kv])
        return self._linear(out, att.o)


def exact_check(exact: ExactModel, a: int, b: int) -> tuple[bool, float]:
    """Teacher-forced verdict and worst margin of one addition in exact arithmetic."""
    fmt = exact.spec.format
    at, bt = torch.tensor([a]), torch.tensor([b])
    answer = fmt.answer(at, bt)[0].tolist()
    tokens = fmt.encode(at, bt)[0].tolist() + answer[:-1]
    logits = exact.logits(tokens)[-fmt.out_digits:]
    ok, worst = True, mpmath.mpf("inf")
    for row, right in zip(logits, answer):
        best_other = max(v for t, v in enumerate(row) if t != right)
        margin = row[right] - best_other
        worst = min(worst, margin)
        first_max = max(range(len(row)), key=lambda t: (row[t], -t))
        ok = ok and first_max == right
    return ok, float(worst)
