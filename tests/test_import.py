"""`adder import`: published checkpoint formats into recipe specs.

The tests write their own small files in each published layout, from a freshly initialised
recipe model (never the published weights), and read them back: the imported model's logits
equal the model the file was written from. One layout (the 512p's fused low-rank QKV) is
also checked against a forward pass written here from the original's mathematics, so a
transpose or a column range wrong in both writer and table would still be caught. Broken
files are refused in one line that names the problem.
"""

import hashlib
import math
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from adder.cli import app
from adder.compiler import checkpoint, compile_spec
from adder.compiler.errors import AdderError, CheckpointError
from adder.train.importers import FORMATS, import_checkpoint
from adder.train.recipes import get_recipe

TOKENS = torch.tensor([[3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9, 3, 2, 3, 8, 4, 6, 2, 6, 4]])


def fresh(recipe: str, seed: int = 3):
    """A recipe model with every parameter away from its initial value (so ties and zeros show)."""
    m = compile_spec(get_recipe(recipe).build(), seed=seed)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.2 * torch.randn(p.shape, generator=g))
    return m


def foreign_state(fmt, model) -> dict[str, torch.Tensor]:
    """`model`'s parameters written in `fmt`'s layout: every tied name, fused columns, hard-coded buffers."""
    state: dict[str, torch.Tensor] = {}
    for tk in fmt.takes:
        v = model.param(tk.param).detach().clone()
        if tk.transpose:
            v = v.T
        for name in tk.sources:
            if tk.cols is not None:
                whole = state.setdefault(name, torch.zeros(v.shape[0], 3 * v.shape[1]))
                whole[:, tk.cols[0]:tk.cols[1]] = v
            else:
                state[name] = v.clone().contiguous()
    for f in fmt.fixed:
        state[f.source] = torch.full((1, 3) if "pos" in f.source else (), float(f.value))
    if fmt.name == "microadder-57p":
        state["q_phase_angle"] = state["q_phase_angle"].reshape(1)  # stored as [1], declared as a scalar
    for name in fmt.ignored[:1]:
        state[name] = torch.ones(1, 1, 4, 4)  # a causal mask: carried, not needed
    return state


def py_source(state: dict[str, torch.Tensor], before: str = "") -> str:
    """A submission file with its weights inline, as dimopep's 140p writes them (repr of each float32 is exact)."""
    rows = ",\n".join(f"    {k!r}: torch.tensor({v.tolist()!r}, dtype=torch.float32)" for k, v in state.items())
    return f"import torch\n{before}\nSTATE_DICT = {{\n{rows},\n}}\n\ndef build_model():\n    raise SystemExit\n"


def write(fmt, state, path):
    if fmt.container == "py":
        path.with_suffix(".py").write_text(py_source(state))
        return path.with_suffix(".py")
    if fmt.container == "npz":
        np.savez(path, **{k: v.numpy() for k, v in state.items()})
    else:
        torch.save({"model_state_dict": state, "step": 7, "config": {"d_model": 3}}, path)
    return path


def logits(model):
    n = len(model.spec.vocab)
    return model(TOKENS.clamp(max=n - 1)[:, :model.spec.format.total_len - 1])


@pytest.mark.parametrize("recipe", sorted(FORMATS))
def test_a_file_in_each_published_layout_imports_to_the_model_it_was_written_from(recipe, tmp_path):
    fmt = FORMATS[recipe]
    src = fresh(recipe)
    path = write(fmt, foreign_state(fmt, src), tmp_path / ("w.npz" if fmt.container == "npz" else "w.pt"))
    model, meta = import_checkpoint(path, recipe)
    assert torch.equal(logits(model), logits(src))
    assert meta["source_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert meta["source_format"] == fmt.name and meta["recipe"] == recipe
    assert model.spec.meta["claimed_params"] == fmt.params == get_recipe(recipe).params


@pytest.mark.parametrize("recipe", sorted(FORMATS))
def test_each_table_sets_every_parameter_of_its_recipe_once(recipe):
    fmt = FORMATS[recipe]
    declared = [p.name for p in get_recipe(recipe).build().params]
    assert sorted(t.param for t in fmt.takes) == sorted(declared)


def reference_512(state: dict, tokens: torch.Tensor) -> torch.Tensor:
    """yinglunz's 512p forward, written from the original's mathematics: x @ A @ B factors, the fused
    QKV output chunked into q, k, v, pre-LayerNorm, GELU, learned low-rank positions, tied head."""
    def lr(x, name):
        return x @ state[f"{name}.A"] @ state[f"{name}.B"]

    def ln(x, name):
        return F.layer_norm(x, (7,), state[f"{name}.weight"], state[f"{name}.bias"], eps=1e-5)

    T = tokens.shape[1]
    x = state["token_emb.weight"][tokens] + (state["pos_emb.A"] @ state["pos_emb.B"])[:T]
    q, k, v = lr(ln(x, "blocks.0.ln1"), "blocks.0.attn.qkv").chunk(3, dim=-1)
    att = (q @ k.transpose(-2, -1)) / math.sqrt(7)
    att = att.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf")).softmax(-1)
    x = x + lr(att @ v, "blocks.0.attn.proj")
    x = x + lr(F.gelu(lr(ln(x, "blocks.0.ln2"), "blocks.0.mlp.fc1")), "blocks.0.mlp.fc2")
    return ln(x, "ln_f") @ state["lm_head.weight"].T


def test_the_fused_low_rank_layout_matches_the_originals_forward_pass(tmp_path):
    g = torch.Generator().manual_seed(1)
    shapes = {"token_emb.weight": (14, 7), "pos_emb.A": (33, 3), "pos_emb.B": (3, 7), "blocks.0.attn.qkv.A": (7, 3),
              "blocks.0.attn.qkv.B": (3, 21), "blocks.0.attn.proj.A": (7, 3), "blocks.0.attn.proj.B": (3, 7),
              "blocks.0.mlp.fc1.A": (7, 3), "blocks.0.mlp.fc1.B": (3, 14), "blocks.0.mlp.fc2.A": (14, 3),
              "blocks.0.mlp.fc2.B": (3, 7)}
    state = {k: torch.randn(s, generator=g) for k, s in shapes.items()}
    for norm in ("blocks.0.ln1", "blocks.0.ln2", "ln_f"):
        state[f"{norm}.weight"] = 1 + 0.1 * torch.randn(7, generator=g)
        state[f"{norm}.bias"] = 0.1 * torch.randn(7, generator=g)
    state["lm_head.weight"] = state["token_emb.weight"]
    torch.save({"model_state": state, "model_config": {"d_model": 7}}, tmp_path / "512.pt")
    model, _ = import_checkpoint(tmp_path / "512.pt", "lowrank-d7-512")
    tokens = torch.tensor([[1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 11, 3, 5]])
    assert torch.allclose(model(tokens), reference_512(state, tokens), atol=1e-5)


def reference_arc36(state: dict, tokens: torch.Tensor) -> torch.Tensor:
    """tbukic's 36p forward, written from the original's mathematics: arc embedding with a zero third
    column, one RMSNorm (eps 1e-6) everywhere, K = Q's projection with each pair (2i, 2i+1) turned by
    theta, V = Q's projection, one q/k norm, interleaved RoPE theta 3, O = Q^T, SwiGLU whose down
    projection is up^T after turning the hidden pair, head tied to the arc table."""
    def rms(x, w):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * w

    def turn(x, a):  # each pair (2i, 2i+1) by angle a
        x0, x1 = x[..., 0::2], x[..., 1::2]
        return torch.stack([x0 * a.cos() - x1 * a.sin(), x0 * a.sin() + x1 * a.cos()], -1).flatten(-2)

    def rope(x):
        ang = torch.arange(x.shape[0])[:, None] * (1.0 / 3 ** (torch.arange(0, 4, 2) / 4))[None, :]
        x0, x1 = x[..., 0::2], x[..., 1::2]
        return torch.stack([x0 * ang.cos() - x1 * ang.sin(), x0 * ang.sin() + x1 * ang.cos()], -1).flatten(-2)

    a = state["arc_start"] + torch.arange(10) * state["arc_stride"]
    emb = torch.stack([state["arc_A"] * a.cos(), state["arc_A"] * a.sin(), torch.zeros(10)], 1)
    n, wq, wu = state["block.ln1.weight"], state["block.attn.q_proj.weight"], state["block.mlp.up_proj.weight"]
    x = emb[tokens[0]]
    p = rms(x, n) @ wq.T
    qn = state["block.attn.q_norm.weight"]
    q, k = rope(rms(p, qn)), rope(rms(turn(p, state["block.attn.k_proj.theta"]), qn))
    T = x.shape[0]
    att = (q @ k.T / 2).masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf")).softmax(-1)
    x = x + (att @ p) @ wq
    h = rms(x, n)
    x = x + turn(F.silu(h @ state["block.mlp.gate_proj.weight"].T) * (h @ wu.T), state["block.mlp.down_proj.theta"]) @ wu
    return (rms(x, n) @ emb.T)[None]


def test_the_arc_family_layout_matches_the_originals_forward_pass(tmp_path):
    g = torch.Generator().manual_seed(2)
    state = {"arc_A": torch.tensor(2.5), "arc_start": torch.tensor(-1.2), "arc_stride": torch.tensor(0.29),
             "block.attn.q_proj.weight": torch.randn(4, 3, generator=g), "block.attn.k_proj.theta": torch.tensor(0.7),
             "block.attn.q_norm.weight": 1 + 0.2 * torch.randn(4, generator=g),
             "block.mlp.gate_proj.weight": torch.randn(2, 3, generator=g),
             "block.mlp.up_proj.weight": torch.randn(2, 3, generator=g), "block.mlp.down_proj.theta": torch.tensor(-0.4)}
    norm = 1 + 0.2 * torch.randn(3, generator=g)
    state.update({k: norm for k in ("block.ln1.weight", "block.ln2.weight", "final_norm.weight")})
    torch.save({"model_state_dict": state}, tmp_path / "36.pt")
    model, _ = import_checkpoint(tmp_path / "36.pt", "qwen3-arc-36")
    assert torch.allclose(model(TOKENS), reference_arc36(state, TOKENS), atol=1e-5)


def micro57_file(tmp_path, edit=None):
    fmt = FORMATS["micro57"]
    state = foreign_state(fmt, fresh("micro57"))
    if edit:
        edit(state)
    return write(fmt, state, tmp_path / "m.pt")


@pytest.mark.parametrize("edit, says", [
    (lambda s: s.pop("q_proj.weight"), r"missing tensors q_proj\.weight"),
    (lambda s: s.update({"fc2.weight": torch.zeros(5, 2)}), r"unexpected tensors fc2\.weight"),
    (lambda s: s.update({"head_proj.weight": torch.zeros(5, 2)}), r"head_proj\.weight is \[5, 2\], head needs \[2, 5\]"),
    (lambda s: s.update({"norm2.weight": s["norm1.weight"] + 1}), r"norm2\.weight differs from norm1\.weight"),
    (lambda s: s.update({"spiral_amp": torch.tensor(3.6)}), r"spiral_amp is \[3\.6.*micro57 hard-codes 3\.5"),
    (lambda s: s.update({"tok_arc_A": torch.tensor(3)}), r"tok_arc_A is int64, not floating point"),
])
def test_a_partial_or_wrong_file_is_refused_in_one_line_naming_the_tensor(tmp_path, edit, says):
    with pytest.raises(CheckpointError, match=says) as e:
        import_checkpoint(micro57_file(tmp_path, edit), "micro57")
    assert "\n" not in str(e.value) and "does not fit micro57" in str(e.value)


def test_every_problem_of_a_file_is_named_at_once(tmp_path):
    def two(s):
        s.pop("fc1.weight")
        s["norm_f.weight"] = s["norm1.weight"] * 2
    with pytest.raises(CheckpointError, match=r"missing tensors fc1\.weight.*norm_f\.weight differs"):
        import_checkpoint(micro57_file(tmp_path, two), "micro57")


class Code:
    pass


@pytest.mark.parametrize("content, says", [
    (b"not a zip at all", "not a torch zip archive"),
    ("truncated", "truncated"),
    ([1, 2, 3], "holds a list, not a state dict"),
    ({"step": 3, "config": {"a": 1}}, r"holds a dict without a state dict \(keys \['config', 'step'\]\)"),
    (Code(), "refuses to unpickle code"),
])
def test_a_file_that_is_not_a_state_dict_is_refused_in_one_line(tmp_path, content, says):
    path = tmp_path / "f.pt"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content == "truncated":
        torch.save({"w": torch.zeros(100)}, path)
        path.write_bytes(path.read_bytes()[:300])
    else:
        torch.save(content, path)
    with pytest.raises(CheckpointError, match=says) as e:
        import_checkpoint(path, "micro57")
    assert "\n" not in str(e.value)


def test_the_wrong_container_or_an_adder_checkpoint_is_refused(tmp_path):
    np.savez(tmp_path / "a.npz", w=np.zeros(3, dtype=np.float32))
    with pytest.raises(CheckpointError, match=r"is an \.npz archive, not a torch checkpoint"):
        import_checkpoint(tmp_path / "a.npz", "micro57")
    torch.save({"w": torch.zeros(3)}, tmp_path / "t.pt")
    with pytest.raises(CheckpointError, match=r"not an \.npz archive"):
        import_checkpoint(tmp_path / "t.pt", "qwen3-d3")
    checkpoint.save(compile_spec(get_recipe("micro57").build()), tmp_path / "ours.pt")
    with pytest.raises(CheckpointError, match="already an adder checkpoint"):
        import_checkpoint(tmp_path / "ours.pt", "micro57")
    with pytest.raises(CheckpointError, match="no file at"):
        import_checkpoint(tmp_path / "nothing.pt", "micro57")


def test_inline_weights_are_read_from_the_source_without_running_it(tmp_path):
    """A submission with its weights inline is parsed, never run: a top-level side effect does not happen."""
    fmt = FORMATS["qwen3-d4"]
    model = fresh("qwen3-d4")
    marker = tmp_path / "ran"
    path = tmp_path / "sub.py"
    path.write_text(py_source(foreign_state(fmt, model), before=f"open({str(marker)!r}, 'w').write('x')"))
    imported, meta = import_checkpoint(path, "qwen3-d4")
    assert not marker.exists()
    assert torch.equal(logits(imported), logits(model)) and meta["source_format"] == "dimopep-140p"


@pytest.mark.parametrize("text, says", [
    ("import torch\nW = {'a': torch.tensor(make(), dtype=torch.float32)}\n", "not a literal list of numbers"),
    ("import torch\nW = {'a': torch.tensor([1.0], dtype=torch.int64)}\n", "dtype must be torch.float32"),
    ("import torch\nW = {'a': torch.tensor([1.0], device='cuda')}\n", "takes one literal list"),
    ("import torch\nW = {k: torch.tensor([1.0])}\n", "not a string literal"),
    ("def build_model(:\n", "not a Python file that parses"),
    ("import torch\nW = torch.load('w.pt')\n", "no top-level dict of torch.tensor"),
])
def test_inline_weights_that_are_not_literals_are_refused_in_one_line(tmp_path, text, says):
    path = tmp_path / "sub.py"
    path.write_text(text)
    with pytest.raises(CheckpointError, match=says) as e:
        import_checkpoint(path, "qwen3-d4")
    assert "\n" not in str(e.value)


def test_a_wrong_as_names_the_recipes_that_import(tmp_path):
    with pytest.raises(AdderError, match="has no importer; --as takes one of .*micro57"):
        import_checkpoint(tmp_path / "x.pt", "qwen3-d3-tied")
    with pytest.raises(AdderError, match="Did you mean .*micro57"):
        import_checkpoint(tmp_path / "x.pt", "micro75")


def test_the_command_writes_a_checkpoint_that_records_its_source(tmp_path):
    src = micro57_file(tmp_path)
    out = tmp_path / "imported.pt"
    r = CliRunner().invoke(app, ["import", str(src), "--as", "micro57", "-o", str(out)])
    assert r.exit_code == 0, r.output
    meta = checkpoint.read(out)["meta"]
    assert meta["source_sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()
    assert meta["imported_from"] == "m.pt" and meta["source_format"] == "microadder-57p"
    info = CliRunner().invoke(app, ["info", str(out)])
    assert re.search(r"imported from m\.pt, source format microadder-57p, source sha256 " + meta["source_sha256"],
                     info.output)
    again = CliRunner().invoke(app, ["import", str(src), "--as", "micro57", "-o", str(out)])
    assert again.exit_code != 0 and "already exists" in str(again.exception or again.output)
