"""Code generation: a compiled `AdderModel` as the source of one self-contained PyTorch file.

`model_source(model)` writes a nanoGPT-style module that imports only torch (and `math`
where an infinity needs it) and reads top to bottom:

* the prompt format as data, the helper layers this model uses (RMSNorm, RoPE, attention,
  ...; nothing it does not use), then `class Adder(nn.Module)`;
* `__init__`: every declared parameter as an `nn.Parameter` holding the model's values,
  each written as the shortest decimal that reads back exactly in the model's dtype (frozen
  ones without gradient), so `sum(p.numel() for p in model.parameters())` in the file *is*
  the AdderBoard count; large hard-coded tables as buffers;
* `weights()`: the spec's weight expressions as torch code (Q is K turned by a phase, O is
  V transposed, ...), the same operations `evaluate.py`'s torch backend performs;
* `forward`: `AdderModel.forward` unrolled block by block, only the options each block uses;
* `build_model()` (model and AdderBoard metadata) and `add(model, a, b)` (generic greedy
  decoding in the model's prompt format).

Every operation mirrors `module.py` in order and dtype, so the logits are bit-identical to
`AdderModel`'s (tests/test_export.py checks every registered construction and a trained
checkpoint). The full forward pass is mirrored (`keep_last`, `cache` and `hooks` are not: greedy
decoding, here as in `decode.generate`, runs the whole pass).
"""

from __future__ import annotations

import json
import keyword
import math
import struct
import textwrap
from dataclasses import dataclass, field

import torch
from torch import nn

from .evaluate import exact_tensor
from .expr import TExpr
from .formats import PromptFormat
from .ledger import Ledger, ledger
from .module import AdderModel
from .ops import ACTIVATIONS, NORMS, ROTARIES, SOFTMAXES
from .scalars import scalar_to_float
from .spec import MLP, Attention, Linear, ModelSpec, Norm

#: Generated lines are broken to stay within this many characters where they can be.
WIDTH = 100
#: A hard-coded tensor with more values than this is a buffer made once, not a literal in `weights()`.
INLINE_CONST_MAX = 64
#: Bracketed items this short (names, numbers) are packed into lines rather than one per line.
SHORT = 24
#: The generated model class.
CLASS_NAME = "Adder"
#: Names the generated class already uses: a parameter called so gets a trailing underscore.
RESERVED = {"const", "device", "weights", "forward"} | set(dir(nn.Module))
#: Names the generated module binds at top level or in `weights()`: no local may take them.
MODULE_NAMES = {"w", "self", "torch", "nn", "F", "math", "place", "DTYPE", CLASS_NAME}


# ---------------------------------------------------------------------------- numbers
def float_literal(x: float, dtype: torch.dtype) -> str:
    """The shortest decimal that reads back as exactly `x` in `dtype` (via a Python float),
    or `math.inf` / `-math.inf` / `math.nan`."""
    if math.isnan(x):
        return "math.nan"
    if math.isinf(x):
        return "math.inf" if x > 0 else "-math.inf"
    if dtype != torch.float32:
        return repr(x)
    for digits in range(1, 10):  # 9 significant digits always round-trip a float32
        text = repr(float(f"{x:.{digits}g}"))
        if _as_float32(float(text)) == x:
            return text
    return repr(x)


def _as_float32(x: float) -> float | None:
    """`x` rounded to float32 as torch rounds a Python float (None beyond float32's range)."""
    try:
        return struct.unpack("f", struct.pack("f", x))[0]
    except OverflowError:
        return None


def _bits(x: float) -> str:
    return x.hex() if not math.isnan(x) else "nan"


# ---------------------------------------------------------------------------- layout
# Generated expressions are small documents: text, concatenations, and bracketed groups that
# are written on one line when they fit and otherwise one item (or, for numbers, one
# filled line) per line, closing bracket on its own line.
ADD, MUL, UNARY, ATOM = 1, 2, 3, 4  # operator precedence, loosest first


@dataclass
class _Text:
    text: str
    prec: int = ATOM


@dataclass
class _Join:
    parts: list
    prec: int = ATOM


@dataclass
class _Group:
    open: str
    items: list
    close: str
    fill: bool = False  # pack items into lines (numbers) instead of one per line
    prec: int = ATOM


def _flat(d) -> str:
    if isinstance(d, _Text):
        return d.text
    if isinstance(d, _Join):
        return "".join(_flat(p) for p in d.parts)
    return d.open + ", ".join(_flat(i) for i in d.items) + d.close


def render(d, col: int, indent: int, tail: int = 0) -> str:
    """`d` written from column `col` on a line indented by `indent`, broken where it is too wide
    (`tail`: how many characters will follow it on its last line)."""
    flat = _flat(d)
    if col + len(flat) + tail <= WIDTH or isinstance(d, _Text):
        return flat
    if isinstance(d, _Join):
        out = ""
        for k, p in enumerate(d.parts):
            piece = render(p, col, indent, tail + sum(len(_flat(q)) for q in d.parts[k + 1:]))
            out += piece
            col = len(piece) - piece.rfind("\n") - 1 if "\n" in piece else col + len(piece)
        return out
    inner = indent + 4
    if d.fill or all(isinstance(i, _Text) and len(i.text) <= SHORT for i in d.items):
        lines, line = [], ""
        for item in map(_flat, d.items):
            wider = f"{line} {item}," if line else f"{item},"
            if line and inner + len(wider) > WIDTH:
                lines.append(line)
                wider = f"{item},"
            line = wider
        lines.append(line)
    else:
        lines = [render(i, inner, inner, 1) + "," for i in d.items]
    return d.open + "\n" + "".join(" " * inner + ln + "\n" for ln in lines) + " " * indent + d.close


def _paren(d, min_prec: int):
    return d if d.prec >= min_prec else _Join([_Text("("), d, _Text(")")])


def statement(target: str, d, indent: int, comment: str = "") -> list[str]:
    """`target = d` as lines indented by `indent`; `comment` trails it, or heads it when it breaks."""
    text = " " * indent + target + render(d, indent + len(target), indent)
    if not comment:
        return [text]
    if "\n" not in text and len(text) + 2 + len(comment) <= WIDTH:
        return [f"{text}  # {comment}"]
    return comment_lines(comment, indent) + [text]


def comment_lines(text: str, indent: int) -> list[str]:
    """`# text` indented by `indent`, wrapped to the line width."""
    return [" " * indent + "# " + ln for ln in textwrap.wrap(text, WIDTH - indent - 2)]


def _str(text: str) -> str:
    """A double-quoted Python string literal."""
    return json.dumps(text, ensure_ascii=False)


def tensor_doc(values: list, shape: tuple[int, ...], dtype: torch.dtype):
    """A nested-list literal of `values` (flat, row-major) with `shape`."""
    if not shape:
        return _Text(float_literal(values[0], dtype))
    if len(shape) == 1:
        return _Group("[", [_Text(float_literal(v, dtype)) for v in values], "]", fill=True)
    step = math.prod(shape[1:])
    rows = [tensor_doc(values[i * step:(i + 1) * step], shape[1:], dtype) for i in range(shape[0])]
    return _Group("[", rows, "]")


def _shape(shape) -> str:
    return f"[{', '.join(map(str, shape))}]"


def _tuple(xs) -> str:
    xs = list(xs)
    return f"({xs[0]},)" if len(xs) == 1 else f"({', '.join(map(str, xs))})"


class _Names:
    """Python identifiers for declared names: dots and other marks become "_", clashes get a suffix."""

    def __init__(self, taken=()):
        self.taken = set(taken)

    def new(self, wanted: str) -> str:
        base = "".join(c if c.isalnum() or c == "_" else "_" for c in wanted) or "x"
        if base[0].isdigit():
            base = "p_" + base
        if keyword.iskeyword(base) or base in RESERVED or base in MODULE_NAMES:
            base += "_"
        name, k = base, 2
        while name in self.taken:
            name, k = f"{base}_{k}", k + 1
        self.taken.add(name)
        return name


# ---------------------------------------------------------------------------- weights
_BINARY = {"add": (" + ", ADD), "sub": (" - ", ADD), "mul": (" * ", MUL), "div": (" / ", MUL), "matmul": (" @ ", MUL)}
_INDENT = 8  # method bodies


@dataclass
class _Weights:
    """The weight expressions forward uses, and the code that computes them.

    `ref(expr, name)` is how forward reads a weight: a parameter as is (`self.embed`), a large
    constant as a buffer, anything else as `w["name"]`, an entry of `weights()`. A weight used
    twice (a tie) is computed once, under the name of its first use.
    """

    model: AdderModel
    attrs: dict[str, str]  # declared parameter name -> attribute
    names: _Names
    keys: _Names = field(default_factory=_Names)  # the names of weights()' entries
    roots: dict[int, tuple[str, TExpr]] = field(default_factory=dict)
    buffers: dict[int, tuple[str, TExpr]] = field(default_factory=dict)
    uses_const: bool = False
    uses_place: bool = False

    def ref(self, e: TExpr, name: str) -> str:
        if e.op == "param":
            return f"self.{self.attrs[e.attrs['name']]}"
        if e.op == "const" and self._is_table(e):
            return self._doc(e, {}, name).text
        if id(e) not in self.roots:
            self.roots[id(e)] = (self.keys.new(name), e)
        return f'w["{self.roots[id(e)][0]}"]'

    def code(self) -> list[str]:
        """The body of `weights()`: shared sub-expressions as locals, each weight as `w[name] = ...`."""
        order, seen = [], set()
        for _, e in self.roots.values():
            for n in e.walk():
                if id(n) not in seen:
                    seen.add(id(n))
                    order.append(n)
        uses: dict[int, int] = {}
        for n in order:
            for a in n.args:
                uses[id(a)] = uses.get(id(a), 0) + 1
        named = {i: f'w["{name}"]' for i, (name, _) in self.roots.items()}
        locals_ = _Names(self.names.taken | set(self.attrs.values()))
        lines = [" " * _INDENT + "w = {}"]
        for n in order:
            if n.op in ("param", "const") and id(n) not in self.roots:
                continue
            if id(n) in self.roots:
                name = self.roots[id(n)][0]
                lines += statement(f'w["{name}"] = ', self._doc(n, named, name, top=True), _INDENT, _shape(n.shape))
            elif uses.get(id(n), 0) > 1:
                local = locals_.new(_local_name(n, self.attrs))
                lines += statement(f"{local} = ", self._doc(n, named, local, top=True), _INDENT, _shape(n.shape))
                named[id(n)] = local
        return lines + [" " * _INDENT + "return w"]

    def _doc(self, n: TExpr, named: dict[int, str], where: str, top: bool = False):
        if not top and id(n) in named:
            return _Text(named[id(n)])
        if n.op == "param":
            return _Text(f"self.{self.attrs[n.attrs['name']]}")
        if n.op == "const":
            return self._const(n, where)
        a = [self._doc(x, named, where) for x in n.args]
        if n.op in _BINARY:
            sym, prec = _BINARY[n.op]
            return _Join([_paren(a[0], prec), _Text(sym), _paren(a[1], prec + 1)], prec)
        if n.op == "neg":
            return _Join([_Text("-"), _paren(a[0], ATOM)], UNARY)
        if n.op == "transpose":
            return _Join([_paren(a[0], ATOM), _Text(".T")])
        if n.op == "reshape":
            return _Join([_paren(a[0], ATOM), _Text(f".reshape({', '.join(map(str, n.attrs['to'])) or '()'})")])
        if n.op == "index":
            return _Join([_paren(a[0], ATOM), _Text(_index(n.attrs["index"], n.args[0].shape))])
        if n.op == "fn":
            return _Join([_Text(f"torch.{n.attrs['name']}("), a[0], _Text(")")])
        if n.op in ("stack", "cat"):
            dim = f", dim={n.attrs['axis']}" if n.attrs["axis"] else ""
            return _Group(f"torch.{n.op}([", a, f"]{dim})")
        if n.op == "place":
            if not a:  # evaluate.py makes these in torch's default dtype
                return _Text(f"torch.zeros({_tuple(n.attrs['out_shape'])})")
            self.uses_place = True
            entries = [_Join([_Text(f"{_tuple(pos)}: "), v]) for pos, v in zip(n.attrs["positions"], a)]
            return _Group(f"place({_tuple(n.attrs['out_shape'])}, {{", _rows(entries, n.attrs["positions"]), "})")
        raise ValueError(f"no code for tensor op {n.op!r}")

    def _is_table(self, n: TExpr) -> bool:
        return len(n.attrs["values"]) > INLINE_CONST_MAX and not _uniform(self._values(n))

    def _values(self, n: TExpr) -> list[float]:
        return exact_tensor(n.attrs["values"], n.shape).to(self.model.dtype).reshape(-1).tolist()

    def _const(self, n: TExpr, where: str):
        """A constant leaf: a repeated value, a literal, or (large) a buffer named after its first use."""
        values = self._values(n)
        if self._is_table(n):
            if id(n) not in self.buffers:
                self.buffers[id(n)] = (self.names.new(where), n)
            return _Text(f"self.{self.buffers[id(n)][0]}")
        self.uses_const = True
        if len(values) > 1 and _uniform(values):
            return _Text(f"self.const({float_literal(values[0], self.model.dtype)}, {_tuple(n.shape)})")
        return _Join([_Text("self.const("), tensor_doc(values, n.shape, self.model.dtype), _Text(")")])

    def buffer_lines(self) -> list[str]:
        lines = []
        for name, n in self.buffers.values():
            doc = _Join([_Text(f'self.register_buffer("{name}", torch.tensor('),
                         tensor_doc(self._values(n), n.shape, self.model.dtype), _Text(", dtype=DTYPE))")])
            lines += statement("", doc, _INDENT, f"{_shape(n.shape)} hard-coded (not learned)")
        return lines


def _rows(entries: list, positions: list) -> list:
    """`place` entries, those of one leading index together on one line where they fit."""
    rows, row, key = [], [], None

    def close():
        rows.append(row[0] if len(row) == 1 else _Text(", ".join(map(_flat, row))))

    for entry, pos in zip(entries, positions):
        if row and (pos[0] != key or len(", ".join(map(_flat, row + [entry]))) > WIDTH - 2 * _INDENT):
            close()
            row = []
        row.append(entry)
        key = pos[0]
    if row:
        close()
    return rows


def _uniform(values: list[float]) -> bool:
    return len({_bits(v) for v in values}) == 1


def _local_name(n: TExpr, attrs: dict[str, str]) -> str:
    """A name for a shared sub-expression: `cos_attn_q_phase`, `head_T`, or `shared`."""
    a = n.args[0] if n.args else None
    leaf = attrs.get(a.attrs.get("name")) if a is not None and a.op == "param" else None
    if leaf and n.op == "fn":
        return f"{n.attrs['name']}_{leaf}"
    if leaf and n.op == "transpose":
        return f"{leaf}_T"
    if leaf and n.op == "neg":
        return f"minus_{leaf}"
    return "shared"


def _index(index: list, shape: tuple[int, ...]) -> str:
    """`[i, a:b]` for evaluate.py's index list; trailing whole-axis slices left out."""
    parts = [str(i) if isinstance(i, int) else (f"{i[0]}:{i[1]}" if i[2] == 1 else f"{i[0]}:{i[1]}:{i[2]}")
             for i in index]
    while parts and len(parts) <= len(shape) and index[len(parts) - 1] == [0, shape[len(parts) - 1], 1]:
        parts.pop()
    return f"[{', '.join(parts) or ':'}]"


# ---------------------------------------------------------------------------- helper layers
# The generated file's helper functions, each emitted only when the model uses it. They are
# `module.py`'s operations, written as plain functions.

def _linear_source(name: str, product: str, doc: str, bias: bool) -> str:
    sig = ", bias=None" if bias else ""
    tail = "    if bias is not None:\n        x = x + bias\n" if bias else ""
    doc = doc.format(bias=" (+ bias)" if bias else "")
    return (f"def {name}(x, *weights{sig}):\n    \"\"\"{doc}\"\"\"\n    for w in weights:\n"
            f"        x = {product}\n{tail}    return x\n")


def _norm_source(name: str, first_line: str, doc: str, options: set[str]) -> str:
    sig = "".join(f", {o}=None" for o in ("weight", "bias") if o in options)
    body = "".join(f"    if {o} is not None:\n        x = x {op} {o}\n"
                   for o, op in (("weight", "*"), ("bias", "+")) if o in options)
    return f"def {name}(x, eps{sig}):\n    \"\"\"{doc}\"\"\"\n    {first_line}\n{body}    return x\n"


PLACE = '''def place(shape, entries):
    """Zeros of `shape` with each 0-d tensor of `entries` ({index: value}) at its index."""
    values = list(entries.values())
    out = torch.zeros(shape, dtype=values[0].dtype, device=values[0].device)
    index = tuple(torch.tensor(axis, device=out.device) for axis in zip(*entries))
    return out.index_put(index, torch.stack(values))
'''



#: `attend`'s keyword options with their defaults; a block passes those it uses.
ATTEND_DEFAULTS = {"scale": None, "divisor": None, "alibi": None, "bias": None, "causal": True, "softmax1": False}
#: The boolean ones: written into `attend` without an argument when every block agrees.
ATTEND_FLAGS = ("causal", "softmax1")


def _attention_options(att: Attention, scale: float) -> dict:
    """What `attend` needs to know of one attention block (None / False: not used)."""
    return {"scale": scale if att.scale_op == "mul" and scale != 1.0 else None,
            "divisor": scale if att.scale_op == "div" else None,
            "alibi": att.alibi is not None or None, "bias": att.bias is not None or None,
            "causal": att.causal, "softmax1": att.softmax == "softmax1", "gqa": att.n_kv_heads != att.n_heads}


def _usage(options: list[dict], key: str) -> str | None:
    """Whether "all" attention blocks use option `key`, "some", or none (None)."""
    n = sum(o[key] is not None and o[key] is not False for o in options)
    return "all" if n == len(options) else ("some" if n else None)


def _attend_keywords(options: list[dict]) -> dict[str, str]:
    """`attend`'s keyword parameters: option -> "name" or "name=default" (where some block omits it)."""
    kw = {}
    for key, default in ATTEND_DEFAULTS.items():
        used = _usage(options, key)
        if used == "some":
            kw[key] = f"{key}={default}"
        elif used == "all" and key not in ATTEND_FLAGS:
            kw[key] = key
    return kw


def _attend_source(options: list[dict]) -> str:
    """`attend(q, k, v, ...)`: the attention core with only the options some block uses, each
    under a test where not every block does."""
    used = {key: _usage(options, key) for key in options[0]}

    def when(key: str, lines: list[str]) -> list[str]:
        if used[key] != "some":
            return lines if used[key] else []
        test = key if key in ATTEND_FLAGS else f"{key} is not None"
        return [f"if {test}:", *("    " + ln for ln in lines)]

    mask = 'scores = scores.masked_fill(j > i, float("-inf"))  # causal: no looking ahead'
    softmax1 = SOFTMAXES["softmax1"].export.split("\n")
    softmax = SOFTMAXES["softmax"].export.split("\n")
    if used["softmax1"] == "some":
        softmax = when("softmax1", softmax1) + ["else:", *("    " + ln for ln in softmax)]
    elif used["softmax1"]:
        softmax = softmax1
    body = [
        "B, T = q.shape[:2]",
        "q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # [B, heads, T, head_dim]",
        *(["if k.shape[1] != q.shape[1]:  # grouped-query: each key/value head serves several query heads",
           "    k = k.repeat_interleave(q.shape[1] // k.shape[1], dim=1)",
           "    v = v.repeat_interleave(q.shape[1] // v.shape[1], dim=1)"] if used["gqa"] else []),
        "scores = torch.matmul(q, k.transpose(-2, -1))  # [B, heads, T, T]",
        *when("scale", ["scores = scores * scale"]),
        *when("divisor", ["scores = scores / divisor"]),
        *(["i = torch.arange(T, device=q.device)[:, None]  # query position",
           "j = torch.arange(T, device=q.device)[None, :]  # key position"] if used["alibi"] or used["causal"] else []),
        *when("alibi", ["scores = scores + alibi[:, None, None] * (j - i).to(q.dtype)  # linear distance bias"]),
        *when("bias", ["scores = scores + bias[:, :T, :T]  # fixed additive bias"]),
        *when("causal", [mask]),
        *softmax,
        "return torch.matmul(probs, v).transpose(1, 2).reshape(B, T, -1)  # [B, T, heads * v_head_dim]",
    ]
    kw = _attend_keywords(options)
    sig = ", *, " + ", ".join(kw.values()) if kw else ""
    kind = "Causal self-attention" if used["causal"] == "all" else "Self-attention"
    doc = (f'"""{kind} of q [B, T, heads, head_dim] over k, v [B, T, kv_heads, .]:\n'
           "    softmax over key positions of the scores q . k (scaled, biased, masked), times v.\"\"\"")
    return f"def attend(q, k, v{sig}):\n    {doc}\n" + "".join(f"    {ln}\n" for ln in body)


# ---------------------------------------------------------------------------- forward
class _Forward:
    """`forward`'s body, block by block, and the helper layers it calls."""

    def __init__(self, spec: ModelSpec, weights: _Weights):
        self.spec, self.w = spec, weights
        self.helpers: set[str] = set()
        self.linear_bias: set[str] = set()  # "linear" / "linear_sum" when some call passes a bias
        self.norm_options: dict[str, set[str]] = {f"{kind}_norm": set() for kind in NORMS}
        self.attention = [_attention_options(b.layer, scalar_to_float(b.layer.scale))
                          for b in spec.blocks if isinstance(b.layer, Attention)]
        self.activations: set[str] = set()

    def norm(self, x: str, norm: Norm | None, name: str) -> str:
        if norm is None:
            return x
        helper = f"{norm.kind}_norm"
        self.helpers.add(helper)
        args = [x, f"eps={norm.eps!r}"]
        for option in ("weight", "bias"):
            e = getattr(norm, option)
            if e is not None:
                self.norm_options[helper].add(option)
                args.append(f"{option}={self.w.ref(e, f'{name}_{option}')}")
        return f"{helper}({', '.join(args)})"

    def linear(self, x: str, lin: Linear, name: str) -> str:
        helper = "linear_sum" if lin.reduce == "sum" else "linear"
        self.helpers.add(helper)
        args = [x] + [self.w.ref(m, name if len(lin.weights) == 1 else f"{name}{j}") for j, m in enumerate(lin.weights)]
        if lin.bias is not None:
            self.linear_bias.add(helper)
            args.append(f"bias={self.w.ref(lin.bias, f'{name}_bias')}")
        return f"{helper}({', '.join(args)})"

    def lines(self) -> list[str]:
        spec = self.spec
        d, V = spec.d_model, len(spec.vocab)
        out = ["B, T = tokens.shape"]
        prefixes = _Names()  # one per block, for the names of its weights
        attn = [b.layer for b in spec.blocks if isinstance(b.layer, Attention)]
        if any(a.rope is not None for a in attn):
            out.append("pos = torch.arange(T, dtype=DTYPE, device=tokens.device)  # token positions, for RoPE")
        out.append(f"h = F.embedding(tokens, {self.w.ref(spec.embed, 'embed')})  # [B, T, {d}]: the residual stream")
        if spec.pos is not None:
            out.append(f"h = h + {self.w.ref(spec.pos, 'pos')}[:T]  # position vectors")
        for i, block in enumerate(spec.blocks):
            kind = "attn" if isinstance(block.layer, Attention) else "mlp"
            p = prefixes.new(block.name or f"{kind}{i}")
            x = self.norm("h", block.norm, f"{p}_norm")
            comment = comment_lines(f"block {i} ({block.name or p}): {_summary(block.layer)}", _INDENT)
            out += [""] + [ln.lstrip() for ln in comment]  # `forward` indents every line
            if x != "h":
                out.append(f"x = {x}")
                x = "x"
            out += self._attention(x, block.layer, p) if kind == "attn" else self._mlp(x, block.layer, p)
        out.append("")
        h = self.norm("h", spec.final_norm, "final_norm")
        if h != "h":
            out.append(f"h = {h}")
        out.append(f"return {self.linear('h', spec.unembed, 'unembed')}  # [B, T, {V}]: logits")
        return out

    def _attention(self, x: str, att: Attention, p: str) -> list[str]:
        H, Hkv, hd, vd = att.n_heads, att.n_kv_heads, att.head_dim, att.vd
        self.helpers.add("attend")
        out = [f"q = {self.linear(x, att.q, f'{p}_q')}.view(B, T, {H}, {hd})  # [B, T, heads, head_dim]",
               f"k = {self.linear(x, att.k, f'{p}_k')}.view(B, T, {Hkv}, {hd})",
               f"v = {self.linear(x, att.v, f'{p}_v')}.view(B, T, {Hkv}, {vd})"]
        for name, norm in (("q", att.q_norm), ("k", att.k_norm)):
            if norm is not None:
                out.append(f"{name} = {self.norm(name, norm, f'{p}_{name}_norm')}  # QK-norm")
        if att.rope is not None:
            helper = ROTARIES[att.rope.convention].export
            self.helpers.add(helper)
            omegas = self.w.ref(att.rope.omegas, f"{p}_rope_omegas")
            out += [f"q = {helper}(q, pos, {omegas})  # rotary positions", f"k = {helper}(k, pos, {omegas})"]
        scale = scalar_to_float(att.scale)
        if att.scale_op == "mul_q":
            out.append(f"q = {scale!r} * q  # the query scaled before q . k (MLX's order)")
        options, keywords = _attention_options(att, scale), _attend_keywords(self.attention)
        values = {"scale": repr(scale), "divisor": repr(scale),
                  "alibi": att.alibi is not None and self.w.ref(att.alibi, f"{p}_alibi_slopes"),
                  "bias": att.bias is not None and self.w.ref(att.bias, f"{p}_score_bias"),
                  "causal": repr(att.causal), "softmax1": repr(options["softmax1"])}
        kw = [f"{key}={values[key]}" for key, default in ATTEND_DEFAULTS.items()
              if key in keywords and options[key] is not None and options[key] is not default]
        out.append(f"y = attend(q, k, v{''.join(', ' + k for k in kw)})  # [B, T, {H * vd}]")
        out.append(f"h = h + {self.linear('y', att.o, f'{p}_o')}")
        return out

    def _mlp(self, x: str, mlp: MLP, p: str) -> list[str]:
        self.activations.add(mlp.act)
        act = ACTIVATIONS[mlp.act].export
        hidden = mlp.up.out_features
        up = self.linear(x, mlp.up, f"{p}_up")
        if mlp.gate is not None:
            out = [f"up = {up}  # [B, T, {hidden}]",
                   f"hidden = {act.format(self.linear(x, mlp.gate, f'{p}_gate'))} * up  # gated"]
        else:
            out = [f"hidden = {act.format(up)}  # [B, T, {hidden}]"]
        return out + [f"h = h + {self.linear('hidden', mlp.down, f'{p}_down')}"]

    def helper_sources(self) -> list[str]:
        """The helper functions forward calls (and `weights()`'s `place`), in reading order."""
        out = []
        for name, product, doc in (
                ("linear", "torch.matmul(x, w.T)",
                 "x @ W1.T @ W2.T ...{bias}: a chain of matrices, applied in order."),
                ("linear_sum", "(x[..., None, :] * w).sum(-1)",
                 "`linear` with each product written out as (x * W).sum(-1): hand-written code's rounding.")):
            if name in self.helpers:
                out.append(_linear_source(name, product, doc, name in self.linear_bias))
        for kind, op in NORMS.items():
            if f"{kind}_norm" in self.helpers:
                out.append(_norm_source(f"{kind}_norm", op.export, op.helper, self.norm_options[f"{kind}_norm"]))
        for op in ROTARIES.values():
            if op.export in self.helpers:
                out.append(op.helper)
        if "attend" in self.helpers:
            out.append(_attend_source(self.attention))
        out += [ACTIVATIONS[a].helper for a in sorted(self.activations) if ACTIVATIONS[a].helper]
        if self.w.uses_place:
            out.append(PLACE)
        return out


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _summary(layer: Attention | MLP) -> str:
    """One line saying what a block is: heads, head size, options; or hidden units and activation."""
    if isinstance(layer, MLP):
        gated = "gated " if layer.gate is not None else ""
        return f"{gated}MLP, {layer.up.out_features} hidden units, {ACTIVATIONS[layer.act].title}"
    heads = (_count(layer.n_heads, "head") if layer.n_heads == layer.n_kv_heads
             else f"{_count(layer.n_heads, 'query head')} / {_count(layer.n_kv_heads, 'key-value head')}")
    parts = [f"{'causal ' if layer.causal else ''}self-attention, {heads} of dim {layer.head_dim}"]
    if layer.vd != layer.head_dim:
        parts.append(f"values of dim {layer.vd}")
    if layer.q_norm is not None or layer.k_norm is not None:
        parts.append("QK-norm")
    if layer.rope is not None:
        parts.append(f"RoPE ({layer.rope.convention})")
    if layer.alibi is not None:
        parts.append("ALiBi")
    if layer.bias is not None:
        parts.append("fixed score bias")
    if layer.softmax == "softmax1":
        parts.append("softmax1")
    return ", ".join(parts)


# ---------------------------------------------------------------------------- the file
def _prompt_text(fmt: PromptFormat) -> str:
    """`[0] a0..a9 [0]*9 b0..b9 [0]`: the prompt layout in one line (digits least significant first)."""
    parts, run = [], []

    def flush():
        if run:
            parts.append(f"[{run[0]}]" + (f"*{len(run)}" if len(run) > 1 else ""))
            run.clear()

    for item in fmt.prompt:
        if isinstance(item, int):
            if run and run[0] != item:
                flush()
            run.append(item)
            continue
        flush()
        name, digit_order = item
        first, last = (0, fmt.digits - 1) if digit_order == "lsb" else (fmt.digits - 1, 0)
        parts.append(f"{name}{first}..{name}{last}")
    flush()
    order = "least" if fmt.out_order == "lsb" else "most"
    return f"{' '.join(parts)}, then {fmt.out_digits} sum digits, {order} significant first"


def _architecture(spec: ModelSpec, dtype: torch.dtype) -> str:
    """AdderBoard's architecture column: layers, width, heads, MLP size, positions, norms, dtype."""
    attn = [b.layer for b in spec.blocks if isinstance(b.layer, Attention)]
    mlps = [b.layer for b in spec.blocks if isinstance(b.layer, MLP)]
    heads = sorted({f"{a.n_heads}h" + (f"/{a.n_kv_heads}kv" if a.n_kv_heads != a.n_heads else "") for a in attn})
    parts = [f"{len(attn)}L decoder", f"d={spec.d_model}"]
    if heads:
        parts += ["+".join(heads), "hd=" + "/".join(sorted({str(a.head_dim) for a in attn}))]
    if mlps:
        parts.append("ff=" + "/".join(sorted({str(m.up.out_features) for m in mlps})))
        parts += sorted({("gated " if m.gate is not None else "") + ACTIVATIONS[m.act].title for m in mlps})
    if any(a.rope is not None for a in attn):
        parts.append("RoPE")
    if any(a.alibi is not None for a in attn):
        parts.append("ALiBi")
    if spec.pos is not None:
        parts.append("absolute positions")
    norms = [b.norm for b in spec.blocks] + [spec.final_norm]
    parts += sorted({NORMS[n.kind].title for n in norms if n is not None})
    if any(a.q_norm is not None or a.k_norm is not None for a in attn):
        parts.append("QK-norm")
    parts.append(str(dtype).replace("torch.", ""))
    return ", ".join(parts)


def _tricks(spec: ModelSpec, led: Ledger) -> list[str]:
    """AdderBoard's tricks column, read from the spec: ties, factored maps, frozen and hard-coded values."""
    tricks = []
    tied = [r.name for r in led.rows if len(r.used_in) > 1]
    if tied:
        tricks.append(f"tied tensors: {', '.join(tied)}")
    if any(len(lin.weights) > 1 for lin in _linears(spec)):
        tricks.append("factored projections (chains of matrices)")
    frozen = sum(r.scalars for r in led.rows if not r.trainable)
    if frozen:
        tricks.append(f"{frozen} frozen-but-counted scalars")
    if led.hard_coded:
        tricks.append(f"{_count(len(led.hard_coded), 'hard-coded value')} (strict count {led.strict})")
    return tricks + ["weights computed from the parameters in weights()", "generic greedy decoding",
                     "exported by adder"]


def _linears(spec: ModelSpec):
    """Every projection of the spec."""
    for b in spec.blocks:
        fields = ("q", "k", "v", "o") if isinstance(b.layer, Attention) else ("up", "gate", "down")
        yield from (getattr(b.layer, f) for f in fields if getattr(b.layer, f) is not None)
    yield spec.unembed


def _parameter_lines(model: AdderModel, attrs: dict[str, str]) -> list[str]:
    out = []
    for p in model.spec.params:
        t = model.param(p.name).detach().cpu()
        frozen = "" if p.trainable else ", requires_grad=False"
        doc = _Join([_Text("nn.Parameter(torch.tensor("), tensor_doc(t.reshape(-1).tolist(), tuple(t.shape), t.dtype),
                     _Text(f", dtype=DTYPE){frozen})")])
        note = " ".join(p.note.split())
        comment = f"{p.name} {_shape(p.shape)}" + (", frozen (counted)" if not p.trainable else "") + (
            f": {note}" if note else "")
        out += statement(f"self.{attrs[p.name]} = ", doc, _INDENT, comment)
    return out


def _header(model: AdderModel, led: Ledger) -> str:
    """The module docstring: what the model is, where it comes from, its counts and prompt."""
    spec = model.spec
    dtype = str(model.dtype).replace("torch.", "")
    title = f"{spec.name}: {spec.meta['description']}" if spec.meta.get("description") else spec.name
    rows = [("author", spec.meta.get("author", "unknown")), ("source", spec.meta.get("source", "")),
            ("parameters", f"{led.adderboard} (AdderBoard: sum(p.numel() for p in model.parameters())); "
                           f"strict count {led.strict}"),
            ("arithmetic", dtype), ("prompt", _prompt_text(spec.format))]
    paragraphs = [
        textwrap.fill(title, WIDTH - 3),  # after the opening quotes
        textwrap.fill("An AdderBoard submission written by `adder export`: one self-contained PyTorch file "
                      "(it needs only torch) that computes the same logits as adder's compiled model, bit "
                      f"for bit, in {dtype}.", WIDTH),
        "\n".join(textwrap.fill(str(v), WIDTH, initial_indent=f"    {k:<11}", subsequent_indent=" " * 15)
                  for k, v in rows if v),
        textwrap.fill("Read it top to bottom: the prompt format, the layers, the model (its parameters, the "
                      "weights computed from them, the forward pass), then build_model() and add(). "
                      "`python <this file>` adds a few numbers; AdderBoard's `python verify.py <this file>` "
                      "checks it.", WIDTH)]
    text = "\n\n".join(paragraphs).replace("\\", "\\\\").replace('"""', '\\"""')
    return f'"""{text}\n"""\n'


def _format_lines(fmt: PromptFormat, vocab: list[str]) -> list[str]:
    prompt = _Group("PROMPT = [", [_Text(repr(p) if isinstance(p, int) else f'("{p[0]}", "{p[1]}")')
                                   for p in fmt.prompt], "]", fill=True)
    return [f"# {_prompt_text(fmt)}", "# PROMPT: token ids, and (operand, digit order) where an operand's digits go",
            render(prompt, 0, 0),
            f"OPERAND_DIGITS = {fmt.digits}",
            f"ANSWER_DIGITS = {fmt.out_digits}",
            f'ANSWER_ORDER = "{fmt.out_order}"  # "lsb": the sum is written least significant digit first',
            f"DIGIT_TOKENS = {list(fmt.digit_tokens)}  # the token id of each digit 0..9",
            render(_Group("VOCAB = [", [_Text(_str(v)) for v in vocab], "]", fill=True), 0, 0)
            + "  # token strings, for reading"]


DECODING = '''def encode(a, b):
    """The prompt tokens for a + b."""
    tokens = []
    for item in PROMPT:
        if isinstance(item, int):
            tokens.append(item)
            continue
        operand, order = item
        x = a if operand == "a" else b
        digits = [x // 10**i % 10 for i in range(OPERAND_DIGITS)]  # least significant first
        tokens += [DIGIT_TOKENS[d] for d in (digits if order == "lsb" else digits[::-1])]
    return tokens


@torch.no_grad()
def add(model, a, b):
    """a + b as the model computes it: greedy decoding, ANSWER_DIGITS times the most likely next
    token, read as a number (None if the model writes a token that is not a digit)."""
    for x in (a, b):
        if not isinstance(x, int) or not 0 <= x < 10**OPERAND_DIGITS:
            raise ValueError(f"addends must be integers in [0, 10**{OPERAND_DIGITS}), got {x!r}")
    seq = torch.tensor([encode(a, b)], device=model.device)  # [1, prompt]
    for _ in range(ANSWER_DIGITS):
        next_token = model(seq)[:, -1].argmax(dim=-1)  # [1]
        seq = torch.cat([seq, next_token[:, None]], dim=1)
    answer = seq[0, -ANSWER_DIGITS:].tolist()
    if any(t not in DIGIT_TOKENS for t in answer):
        return None
    digits = [DIGIT_TOKENS.index(t) for t in answer]
    if ANSWER_ORDER == "lsb":
        digits.reverse()
    return int("".join(map(str, digits)))
'''


def _build_model(model: AdderModel, led: Ledger) -> str:
    spec = model.spec
    tricks = _Group("[", [_Text(_str(t)) for t in _tricks(spec, led)], "]")
    meta = [f'"name": {_str(spec.name)},', f'"author": {_str(spec.meta.get("author", "unknown"))},',
            f'"params": sum(p.numel() for p in model.parameters()),  # {led.adderboard}',
            f'"architecture": {_str(_architecture(spec, model.dtype))},',
            '"tricks": ' + render(tricks, 20, 8) + ","]
    return ("def build_model():\n"
            '    """The model (on the CPU, in eval mode) and its AdderBoard metadata."""\n'
            f"    model = {CLASS_NAME}().eval()\n"
            "    metadata = {\n" + "".join(f"        {m}\n" for m in meta) + "    }\n"
            "    return model, metadata\n")


MAIN = '''if __name__ == "__main__":
    model, metadata = build_model()
    print(metadata)
    for a, b in [(1234567890, 9876543210), (9999999999, 1), (5000000000, 5000000000)]:
        print(f"{a} + {b} = {add(model, a, b)}")
'''


def _section(title: str) -> str:
    return f"# {'-' * (WIDTH - 3 - len(title))} {title}"


def _class_lines(model: AdderModel, led: Ledger, attrs: dict[str, str], weights: _Weights,
                 forward_lines: list[str]) -> list[str]:
    """`class Adder`: parameters and buffers, `device`, `const`, `weights()` and `forward`."""
    spec, V = model.spec, len(model.spec.vocab)
    weight_lines = weights.code() if weights.roots else []
    out = [f"class {CLASS_NAME}(nn.Module):",
           f'    """{spec.name}: tokens [B, T] -> logits [B, T, {V}] (pre-norm residual stream of width {spec.d_model})."""',
           "", "    def __init__(self):", "        super().__init__()",
           f"        # parameters: AdderBoard counts every scalar of them ({led.adderboard}), frozen ones too"]
    out += _parameter_lines(model, attrs) + weights.buffer_lines()
    first = f"self.{attrs[spec.params[0].name]}.device" if spec.params else 'torch.device("cpu")'
    out += ["", "    @property", "    def device(self):", f"        return {first}"]
    if weights.uses_const:
        out += ["", "    def const(self, values, shape=None):",
                '        """A hard-coded (not learned) tensor: `values`, or one value repeated to `shape`."""',
                "        if shape is not None:", "            return torch.full(shape, values, dtype=DTYPE, device=self.device)",
                "        return torch.tensor(values, dtype=DTYPE, device=self.device)"]
    if weight_lines:
        out += ["", "    def weights(self):",
                '        """The weight matrices that are not a parameter as is, computed from the parameters."""']
        out += weight_lines
        # add() passes the weights it computed once, for all its decoding steps
        out += ["", "    def forward(self, tokens, w=None):",
                f'        """tokens [B, T] -> logits [B, T, {V}]; `w`: this model\'s weights(), if the caller has them."""',
                "        w = self.weights() if w is None else w"]
    else:
        out += ["", "    def forward(self, tokens):", f'        """tokens [B, T] -> logits [B, T, {V}]."""']
    return out + [("        " + ln) if ln else "" for ln in forward_lines]


def _decoding(*, computed_weights: bool) -> str:
    """`encode` and `add`. With a `weights()` method, `add` computes the weights once and hands them
    to every decoding step: they are the same parameters each time, and recomputing them was
    about 40% of an exported qwen87's time."""
    if not computed_weights:
        return DECODING
    step = "    for _ in range(ANSWER_DIGITS):\n        next_token = model(seq)["
    assert step in DECODING, "DECODING's loop changed: update _decoding with it"
    return DECODING.replace(step, "    w = model.weights()  # once: the parameters do not change while decoding\n"
                                  "    for _ in range(ANSWER_DIGITS):\n        next_token = model(seq, w)[")

def model_source(model: AdderModel) -> str:
    """The source text of one self-contained PyTorch file computing `model` (see the module docstring)."""
    spec, led = model.spec, ledger(model)
    if model.dtype not in (torch.float32, torch.float64):
        raise ValueError(f"cannot export a model in {model.dtype}")
    names = _Names(MODULE_NAMES)
    attrs = {p.name: names.new(p.name) for p in spec.params}
    weights = _Weights(model, attrs, names)
    forward = _Forward(spec, weights)
    forward_lines = forward.lines()  # registers the weights forward reads, and the helpers it calls
    cls = _class_lines(model, led, attrs, weights, forward_lines)  # registers the constants weights() uses

    imports = ["import torch", "import torch.nn.functional as F", "from torch import nn", "",
               f"DTYPE = torch.{str(model.dtype).replace('torch.', '')}  # the arithmetic of every tensor below"]
    sections = [_header(model, led) + "\n" + "\n".join(imports),
                "\n".join([_section("the prompt format")] + _format_lines(spec.format, spec.vocab)),
                _section("layers") + "\n" + "\n\n".join(forward.helper_sources()).rstrip("\n"),
                _section("the model") + "\n" + "\n".join(cls),
                _section("AdderBoard's interface") + "\n" + _decoding(computed_weights=bool(weights.roots)).rstrip("\n"),
                _build_model(model, led).rstrip("\n"),
                MAIN.rstrip("\n")]
    text = "\n\n\n".join(sections) + "\n"
    if "math." in text.split('"""', 2)[2]:  # an infinity among the values: `math.inf`
        text = text.replace("\nimport torch\n", "\nimport math\n\nimport torch\n", 1)
    return text
