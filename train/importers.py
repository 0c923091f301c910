"""Published trained checkpoints, read into a recipe's spec (`adder import FILE --as RECIPE`).

A trained model on the board is a file in its author's own format: a torch state dict under
its own tensor names (MicroAdder, the low-rank d=7 models, the split d=6 models, the arc
family), an MLX `.npz` (the Qwen3 d=3 122p/137p), or a submission file with its weights
written inline as a literal dict of `torch.tensor([...])` calls (dimopep's 140p). Each format that one of our recipes
covers exactly is a `Format`: a table saying which tensor of the file is which parameter of
the recipe (transposed, or a column range of a fused projection, as data), which tensors
are ties (several names, one parameter: they must be equal), which buffers hold a value the
recipe hard-codes (they must equal it), and which carry nothing (masks, index maps). One
loader reads every format; formats differ only in their tables.

Files are read with `torch.load(weights_only=True)` (no code is unpickled),
`numpy.load(allow_pickle=False)`, or, for a Python file, by parsing it (`ast`) and reading the
literal numbers of its weights dict: no code of any file ever runs. Every problem of a file is reported at once, on one line
(`CheckpointError`): missing, unexpected or mis-shaped tensors, broken ties, a hard-coded
value that differs (the file is another variant: try the `--as` it names). The imported
model is an ordinary checkpoint (compiler/checkpoint.py) whose meta records the source
file's name, sha256 and format, so `adder info/verify/prove/export` read it like any other.
How faithful each format is, measured against the original code: docs/import.md.
"""

from __future__ import annotations

import ast
import hashlib
import math
import pickle
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from ..compiler.checkpoint import FORMAT as ADDER_FORMAT
from ..compiler.errors import AdderError, CheckpointError
from ..compiler.module import AdderModel, compile_spec
from ..compiler.pysource import read_python
from .recipes import get_recipe
from .recipes.micro import SPIRAL_AMP, SPIRAL_SLOPE

#: Where a torch file's state dict may sit, when the file holds more than the state dict
#: (training step, optimizer, config): the first of these keys whose value is a dict of tensors.
STATE_KEYS = ("model_state_dict", "state_dict", "model_state", "model")
#: Containers a format can be stored in.
CONTAINERS = ("torch", "npz", "py")


@dataclass(frozen=True)
class Take:
    """One recipe parameter, read from the file: `sources` (several: a tie, all must be equal),
    optionally a column range `cols` of a 2-d source (a fused projection's part), then transposed."""

    param: str
    sources: tuple[str, ...]
    transpose: bool = False
    cols: tuple[int, int] | None = None


@dataclass(frozen=True)
class Fixed:
    """A tensor of the file that the recipe hard-codes: it must hold `value` (every entry)."""

    source: str
    value: float


@dataclass(frozen=True)
class Format:
    """A published checkpoint format, as a table onto one recipe's parameters."""

    name: str  # the published model (family), e.g. "microadder-57p"; the imported spec's name
    recipe: str
    container: str
    takes: tuple[Take, ...]
    author: str
    url: str
    params: int  # the count the author publishes
    fixed: tuple[Fixed, ...] = ()
    ignored: tuple[str, ...] = ()  # buffers a recipe does not need (causal masks, position index maps)

    def sources(self) -> set[str]:
        """Every tensor name the table reads or checks."""
        return {s for t in self.takes for s in t.sources} | {f.source for f in self.fixed}


def take(param: str, *sources: str, t: bool = False, cols: tuple[int, int] | None = None) -> Take:
    return Take(param, sources, transpose=t, cols=cols)


# ---------------------------------------------------------------------------- the tables
MICRO_URL = "https://github.com/evindor/MicroAdder"


def _microadder(name: str, recipe: str, *, prefix: str, ffn: str, fc2: bool, tied_b: bool, learned_spiral: bool,
                params: int) -> Format:
    """MicroAdder's state dicts: the 57p submission's flat names (`prefix=""`), or the training
    code's `blocks.0.` names (67p, 74p). tok_arc_B, where stored, is tied to tok_arc_A."""
    blk = "blocks.0." if prefix else ""
    norms = (f"{blk}ln1.weight", f"{blk}ln2.weight", "ln_f.weight") if prefix else \
        ("norm1.weight", "norm2.weight", "norm_f.weight")
    takes = [take("tok.A", "tok_arc_A", *(["tok_arc_B"] if tied_b else [])),
             take("tok.start", "tok_arc_start"), take("tok.stride", "tok_arc_stride"),
             take("pos.equals", "special_pos_equals"), take("pos.top_digit", "z_hi_pos"),
             take("norm.weight", *norms), take("attn.qk", f"{prefix}q_proj.weight"),
             take("attn.q_phase", f"{prefix}q_phase_angle"), take("head", "head_proj.weight"),
             take("attn.out_a", f"{prefix}out_proj.A"), take("attn.out_b", f"{prefix}out_proj.B"),
             take("mlp.fc1", f"{ffn}fc1.weight")]
    if fc2:
        takes.append(take("mlp.fc2", f"{ffn}fc2.weight"))
    spiral = ("spiral_amp", "spiral_phase", "spiral_slope", "spiral_offset")
    fixed = [Fixed("_plus_pos", 0), Fixed("_eos_pos", 0)]
    if learned_spiral:
        takes += [take(f"pos.{s}", s) for s in spiral]
    else:
        fixed += [Fixed(s, float(v)) for s, v in zip(spiral, (SPIRAL_AMP, 0, SPIRAL_SLOPE, 0))]
    return Format(name, recipe, "torch", tuple(takes), author="evindor", url=MICRO_URL, params=params,
                  fixed=tuple(fixed), ignored=(f"{prefix}causal_mask", "causal_mask", "_pos_sources", "_pos_indices"))


def _mlx_qwen3(name: str, recipe: str, params: int) -> Format:
    """mlx_lm's Qwen3 (`mx.savez` of the model's parameters), one layer, tied embedding."""
    layer = "model.layers.0."
    takes = [take("embed", "model.embed_tokens.weight"), take("attn.norm", f"{layer}input_layernorm.weight"),
             take("mlp.norm", f"{layer}post_attention_layernorm.weight"), take("final_norm", "model.norm.weight")]
    takes += [take(f"attn.{p}", f"{layer}self_attn.{p}_proj.weight") for p in "qkvo"]
    takes += [take(f"attn.{p}_norm", f"{layer}self_attn.{p}_norm.weight") for p in "qk"]
    takes += [take(f"mlp.{p}", f"{layer}mlp.{p}_proj.weight") for p in ("gate", "up", "down")]
    return Format(name, recipe, "npz", tuple(takes), author="staghado",
                  url="https://github.com/staghado/minimal-ten-digit-addition-transformer", params=params)


def _dimopep_qwen3(name: str, recipe: str, params: int) -> Format:
    """dimopep's submission: a d=4 Qwen3 layer whose STATE_DICT is written inline (K=V `W_kv`, O = W_q^T)."""
    takes = [take("embed", "embedding.weight"), take("attn.norm", "norm1.weight"), take("attn.q", "W_q.weight"),
             take("attn.k", "W_kv.weight"), take("attn.q_norm", "q_norm.weight"), take("attn.k_norm", "k_norm.weight"),
             take("mlp.norm", "norm2.weight"), take("mlp.gate", "W_gate.weight"), take("mlp.up", "W_up.weight"),
             take("mlp.down", "W_down.weight"), take("final_norm", "norm_final.weight")]
    return Format(name, recipe, "py", tuple(takes), author="dimopep",
                  url="https://gist.github.com/dimopep/27158a2b0ed983e32ee8f39af6e5a134", params=params)


def _arc_qwen3(name: str, recipe: str, params: int, *, k: str | None, shared_norm: bool, qk: tuple[str, ...],
               down: str, author: str = "tbukic", url: str = "https://github.com/tbukic/M10S-Transformer") -> Format:
    """The PyTorch CircularArcQwen3 of the arc family (tied modules stored under each of their
    names; tie_groups' tied projections store only their own scalar, e.g. `k_proj.theta`)."""
    a, m = "block.attn.", "block.mlp."
    norms = ("block.ln1.weight", "block.ln2.weight", "final_norm.weight")
    takes = [take("embed.A", "arc_A"), take("embed.start", "arc_start"), take("embed.stride", "arc_stride"),
             take("attn.q", f"{a}q_proj.weight"), take("mlp.gate", f"{m}gate_proj.weight"),
             take("mlp.up", f"{m}up_proj.weight"), take(down, f"{m}down_proj.{'theta' if 'angle' in down else 'weight'}")]
    if k is not None:
        takes.append(take(k, f"{a}k_proj.{'theta' if 'angle' in k else 'weight'}"))
    if shared_norm:
        takes.append(take("norm", *norms))
    else:
        takes += [take(p, s) for p, s in zip(("attn.norm", "mlp.norm", "final_norm"), norms)]
    if len(qk) == 1:
        takes.append(take("attn.qk_norm", *(f"{a}{n}_norm.weight" for n in qk[0].split("+"))))
    else:
        takes += [take(f"attn.{n}_norm", f"{a}{n}_norm.weight") for n in qk]
    return Format(name, recipe, "torch", tuple(takes), author=author, url=url, params=params)


def _lowrank_d7(name: str, recipe: str, params: int, *, fused: bool, layernorm: bool, author: str = "yinglunz",
                url: str = "https://github.com/yinglunz/A-456-Parameter-Transformer-Solves-10-Digit-Addition") -> Format:
    """yinglunz's TinyDecoderLM (and rezabyt's copy of it): low-rank factors stored as x @ A @ B (ours: B^T A^T x)."""
    b = "blocks.0."
    takes = [take("embed", "token_emb.weight", "lm_head.weight"), take("pos.a", "pos_emb.A"),
             take("pos.b", "pos_emb.B"), take("attn.o.a", f"{b}attn.proj.A", t=True),
             take("attn.o.b", f"{b}attn.proj.B", t=True)]
    takes += [take(f"mlp.{ours}.{f}", f"{b}mlp.{theirs}.{f.upper()}", t=True)
              for ours, theirs in (("up", "fc1"), ("down", "fc2")) for f in "ab"]
    if fused:  # q, k, v = (x @ A @ B).chunk(3)
        takes.append(take("attn.qkv_a", f"{b}attn.qkv.A", t=True))
        takes += [take(f"attn.{p}_b", f"{b}attn.qkv.B", t=True, cols=(7 * i, 7 * i + 7)) for i, p in enumerate("qkv")]
    else:  # shareA_tieKV
        takes += [take("attn.qkv_a", f"{b}attn.qkv_A", t=True), take("attn.q_b", f"{b}attn.qkv_Bq", t=True),
                  take("attn.kv_b", f"{b}attn.qkv_Bkv", t=True)]
    for ours, theirs in (("attn.norm", f"{b}ln1"), ("mlp.norm", f"{b}ln2"), ("final_norm", "ln_f")):
        takes.append(take(f"{ours}.weight", f"{theirs}.weight"))
        if layernorm:
            takes.append(take(f"{ours}.bias", f"{theirs}.bias"))
    return Format(name, recipe, "torch", tuple(takes), author=author, url=url, params=params)


def _split_d6(name: str, recipe: str, params: int, *, layernorm: bool) -> Format:
    """Jack Cai's SmallestAdditionTransformer (the 242p/260p submissions' state dicts)."""
    takes = [take("embed", "tok_emb.weight"), take("pos.digit", "digit_enc"), take("pos.top_digit", "z10_enc"),
             take("pos.special", "special_enc"), take("attn.q", "q_proj.weight"), take("attn.k", "k_proj.weight"),
             take("attn.v", "v_proj.weight"), take("attn.o", "out_proj.weight"), take("mlp.up", "ffn.0.weight"),
             take("mlp.up_bias", "ffn.0.bias"), take("mlp.down", "ffn.2.weight"), take("mlp.down_bias", "ffn.2.bias"),
             take("head", "head_proj.weight")]
    for ours, theirs in (("attn.norm", "ln1"), ("mlp.norm", "ln2"), ("final_norm", "ln_f")):
        takes.append(take(f"{ours}.weight", f"{theirs}.weight"))
        if layernorm:
            takes.append(take(f"{ours}.bias", f"{theirs}.bias"))
    return Format(name, recipe, "torch", tuple(takes), author="Jack Cai",
                  url="https://github.com/JackCai1206/smallest-addition-transformer", params=params,
                  ignored=("causal_mask", "_pos_sources", "_pos_indices"))


#: recipe name -> the published format it imports.
FORMATS: dict[str, Format] = {f.recipe: f for f in (
    _microadder("microadder-57p", "micro57", prefix="", ffn="", fc2=False, tied_b=False, learned_spiral=False,
                params=57),
    _microadder("microadder-67p", "micro67", prefix="blocks.0.attn.", ffn="blocks.0.ffn.", fc2=True, tied_b=True,
                learned_spiral=False, params=67),
    _microadder("microadder-74p", "micro74", prefix="blocks.0.attn.", ffn="blocks.0.ffn.", fc2=True, tied_b=True,
                learned_spiral=True, params=74),
    _mlx_qwen3("staghado-122p", "qwen3-d3", 122),
    _mlx_qwen3("staghado-137p", "qwen3-d3-2h", 137),
    _dimopep_qwen3("dimopep-140p", "qwen3-d4", 140),
    _arc_qwen3("tbukic-62p", "qwen3-arc-62", 62, k="attn.k", shared_norm=False, qk=("q", "k"), down="mlp.down"),
    _arc_qwen3("vijec-52p", "qwen3-arc-52", 52, k="attn.k", shared_norm=True, qk=("q+k",), down="mlp.down",
               author="Enara Vijil", url="https://github.com/vijec/AdderBoard-Submission"),
    _arc_qwen3("tbukic-44p", "qwen3-arc-44", 44, k=None, shared_norm=True, qk=("q", "k"), down="mlp.down"),
    _arc_qwen3("tbukic-36p", "qwen3-arc-36", 36, k="attn.k_angle", shared_norm=True, qk=("q",),
               down="mlp.down_angle"),
    _lowrank_d7("yinglunz-456p", "lowrank-d7", 456, fused=False, layernorm=False),
    _lowrank_d7("yinglunz-512p", "lowrank-d7-512", 512, fused=True, layernorm=True),
    _lowrank_d7("rezabyt-311p", "lowrank-d4", 311, fused=False, layernorm=False, author="rezabyt",
                url="https://github.com/rezabyt/digit-addition-311p"),
    _split_d6("jackcai-242p", "split-d6", 242, layernorm=False),
    _split_d6("jackcai-260p", "split-d6-260", 260, layernorm=True),
)}


def format_for(recipe: str) -> Format:
    """The format `--as recipe` imports, or one line naming the recipes that import."""
    if recipe not in FORMATS:
        get_recipe(recipe)  # an unknown name: the registry's did-you-mean line
        raise AdderError(f"recipe {recipe!r} has no importer; --as takes one of {', '.join(sorted(FORMATS))}")
    return FORMATS[recipe]


# ---------------------------------------------------------------------------- reading files
@dataclass(frozen=True)
class Source:
    """A published file as read: its tensors by name, and its sha256."""

    path: Path
    tensors: dict[str, torch.Tensor]
    sha256: str


def read_source(path: str | Path, container: str) -> Source:
    """The tensors of a torch file or an `.npz`, without running any code of the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no file at {path}" if not path.exists() else f"{path} is a folder, not a checkpoint file")
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    if container == "py":
        tensors = _read_py_literals(path)
    else:
        tensors = _read_npz(path) if container == "npz" else _state_dict(_read_torch(path), path)
    return Source(path, tensors, sha)


def _is_npz(path: Path) -> bool:
    """A zip archive of `.npy` arrays (what numpy.savez writes), rather than a torch file's pickle and storages."""
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
    except (zipfile.BadZipFile, OSError):
        return False
    return bool(names) and all(n.endswith(".npy") for n in names)


def _read_torch(path: Path) -> object:
    if not zipfile.is_zipfile(path):
        raise CheckpointError(f"{path} is truncated, corrupt or not a torch checkpoint (not a torch zip archive)")
    if _is_npz(path):
        raise CheckpointError(f"{path} is an .npz archive, not a torch checkpoint; this recipe's format is a torch file")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "weights only" not in str(e).lower() and "weights_only" not in str(e).lower():
            raise CheckpointError(f"{path} is corrupt or not a torch checkpoint") from None
        raise CheckpointError(f"{path} holds pickled Python objects beyond tensors and plain data; adder "
                              "refuses to unpickle code (torch.load weights_only=True)") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError, KeyError) as e:
        raise CheckpointError(f"{path} is truncated or not a torch checkpoint ({str(e).splitlines()[0][:80]})") from None


def _is_state(obj: object) -> bool:
    return isinstance(obj, dict) and bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


def _state_dict(obj: object, path: Path) -> dict[str, torch.Tensor]:
    """The state dict in a loaded torch file: the object itself, or under one of STATE_KEYS."""
    if isinstance(obj, dict) and obj.get("format") == ADDER_FORMAT:
        raise CheckpointError(f"{path} is already an adder checkpoint; use it directly (adder info {path})")
    if _is_state(obj):
        return dict(obj)
    if isinstance(obj, dict):
        for key in STATE_KEYS:
            if _is_state(obj.get(key)):
                return dict(obj[key])
    kind = f"a dict without a state dict (keys {sorted(map(str, obj))[:6]})" if isinstance(obj, dict) \
        else f"a {type(obj).__name__}"
    raise CheckpointError(f"{path} holds {kind}, not a state dict of tensors")


def _read_npz(path: Path) -> dict[str, torch.Tensor]:
    if not _is_npz(path):
        raise CheckpointError(f"{path} is truncated, corrupt or not an .npz archive (a torch file? this recipe's "
                              "format is an .npz)")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError) as e:
        raise CheckpointError(f"{path} is truncated, corrupt or not an .npz archive ({str(e).splitlines()[0][:80]})") \
            from None
    if not arrays:
        raise CheckpointError(f"{path} is an .npz archive without arrays")
    return {k: torch.from_numpy(np.ascontiguousarray(a)) for k, a in arrays.items()}


# ---------------------------------------------------------------------------- matching
def _squeezed(shape) -> tuple[int, ...]:
    return tuple(n for n in shape if n != 1)


def match(fmt: Format, tensors: dict[str, torch.Tensor], shapes: dict[str, tuple[int, ...]],
          where: str) -> dict[str, torch.Tensor]:
    """`fmt`'s table applied to a file's tensors: parameter -> value, or one CheckpointError that
    names every problem (missing, unexpected, mis-shaped, not floating point, broken tie, wrong
    hard-coded value). `shapes`: the recipe's parameter shapes."""
    problems: list[str] = []
    missing = sorted(fmt.sources() - set(tensors))
    if missing:
        problems.append(f"missing tensors {', '.join(missing)}")
    unexpected = sorted(set(tensors) - fmt.sources() - set(fmt.ignored))
    if unexpected:
        problems.append(f"unexpected tensors {', '.join(unexpected)}")
    values = {}
    for tk in fmt.takes:
        present = [s for s in tk.sources if s in tensors]
        if not present:
            continue
        t = _value(tk, tensors[present[0]], present[0], shapes[tk.param], problems)
        if t is None:
            continue
        for other in present[1:]:
            if tensors[other].shape != tensors[present[0]].shape or not torch.equal(tensors[other], tensors[present[0]]):
                problems.append(f"{other} differs from {present[0]}, but {fmt.recipe} ties them")
        values[tk.param] = t
    for f in fmt.fixed:
        t = tensors.get(f.source)
        if t is not None and not (t.is_floating_point() and torch.all(t == torch.tensor(f.value, dtype=t.dtype))):
            shown = ", ".join(f"{v:.6g}" for v in t.flatten()[:3].tolist())
            problems.append(f"{f.source} is [{shown}{', ...' if t.numel() > 3 else ''}], {fmt.recipe} hard-codes {f.value:g}")
    if problems:
        raise CheckpointError(f"{where} does not fit {fmt.recipe} ({fmt.name}): {'; '.join(problems)}")
    return values


def _value(tk: Take, t: torch.Tensor, name: str, want: tuple[int, ...], problems: list[str]) -> torch.Tensor | None:
    """One take's tensor in the recipe's shape, or None (and a problem) when it cannot be."""
    if not t.is_floating_point():
        problems.append(f"{name} is {str(t.dtype).replace('torch.', '')}, not floating point")
        return None
    if tk.cols is not None:
        if t.dim() != 2 or t.shape[1] < tk.cols[1]:
            problems.append(f"{name} is {list(t.shape)}, {tk.param} reads its columns {tk.cols[0]}:{tk.cols[1]}")
            return None
        t = t[:, tk.cols[0]:tk.cols[1]]
    if tk.transpose:
        if t.dim() != 2:
            problems.append(f"{name} is {list(t.shape)}, {tk.param} needs a matrix")
            return None
        t = t.T
    if tuple(t.shape) != want:
        if _squeezed(t.shape) != _squeezed(want) or t.numel() != math.prod(want):
            problems.append(f"{name} is {list(t.shape)}{' transposed' if tk.transpose else ''}, "
                            f"{tk.param} needs {list(want)}")
            return None
        t = t.reshape(want)
    return t.detach().to(torch.float32).clone()


# ---------------------------------------------------------------------------- importing
def import_checkpoint(path: str | Path, recipe: str) -> tuple[AdderModel, dict]:
    """The model a published file holds, in `recipe`'s spec, and the provenance to save with it
    (`checkpoint.save(model, out, meta=...)`)."""
    fmt = format_for(recipe)
    source = read_source(path, fmt.container)
    spec = get_recipe(recipe).build()
    shapes = {p.name: tuple(p.shape) for p in spec.params}
    values = match(fmt, source.tensors, shapes, str(path))
    assert set(values) == set(shapes), f"{fmt.name}'s table leaves {sorted(set(shapes) - set(values))} unset"
    file = source.path.name
    spec = replace(spec, name=fmt.name, meta={
        **spec.meta, "author": fmt.author, "source": fmt.url, "claimed_params": fmt.params,
        "description": f"{fmt.name}: {fmt.author}'s published weights ({file}) in recipe {recipe}'s layout"})
    model = compile_spec(spec)
    with torch.no_grad():
        for name, value in values.items():
            model.param(name).copy_(value)
    return model, {"recipe": recipe, "imported_from": file, "source_format": fmt.name, "source_sha256": source.sha256}


def _read_py_literals(path: Path) -> dict[str, torch.Tensor]:
    """The weights a submission file writes inline: its top-level `NAME = {"key": torch.tensor([...], dtype=...),
    ...}`, read by parsing the file (the numbers are literals; nothing is executed)."""
    try:
        tree = read_python(path)
    except AdderError:
        raise CheckpointError(f"{path} is not a Python file that parses; this recipe's format is a submission with "
                              "its weights inline") from None
    for node in tree.body:
        value = node.value if isinstance(node, (ast.Assign, ast.AnnAssign)) else None
        if isinstance(value, ast.Dict) and value.keys and all(_is_tensor_call(v) for v in value.values):
            return {_literal_key(k, path): _literal_tensor(v, path) for k, v in zip(value.keys, value.values)}
    raise CheckpointError(f"{path} has no top-level dict of torch.tensor([...]) literals (the inline weights this "
                          "recipe's format reads)")


def _is_tensor_call(node: ast.expr) -> bool:
    f = node.func if isinstance(node, ast.Call) else None
    return (isinstance(f, ast.Attribute) and f.attr == "tensor" and isinstance(f.value, ast.Name)
            and f.value.id == "torch")


def _literal_key(node: ast.expr | None, path: Path) -> str:
    if not (isinstance(node, ast.Constant) and isinstance(node.value, str)):
        raise CheckpointError(f"{path}: the weights dict has a key that is not a string literal (line "
                              f"{getattr(node, 'lineno', '?')})")
    return node.value


def _literal_tensor(node: ast.Call, path: Path) -> torch.Tensor:
    """torch.tensor(LIST[, dtype=torch.float32 | torch.float64]) from its literal numbers."""
    dtypes = {"float32": torch.float32, "float64": torch.float64}
    where = f"{path}, line {node.lineno}"
    if len(node.args) != 1 or any(k.arg != "dtype" for k in node.keywords):
        raise CheckpointError(f"{where}: torch.tensor(...) takes one literal list and at most dtype=; got another form")
    dtype = torch.float32
    for k in node.keywords:
        d = k.value
        if not (isinstance(d, ast.Attribute) and isinstance(d.value, ast.Name) and d.value.id == "torch"
                and d.attr in dtypes):
            raise CheckpointError(f"{where}: dtype must be torch.float32 or torch.float64")
        dtype = dtypes[d.attr]
    try:
        values = ast.literal_eval(node.args[0])
        return torch.tensor(values, dtype=dtype)
    except (ValueError, TypeError, SyntaxError, RuntimeError) as e:
        raise CheckpointError(f"{where}: the tensor is not a literal list of numbers ({type(e).__name__})") from None
