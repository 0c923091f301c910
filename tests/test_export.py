"""Export as PyTorch source: the generated file computes AdderModel's logits bit for bit,
runs without `adder`, and `write_submission` refuses bad output paths in one line."""

import ast
import importlib.util
import math
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from adder.compiler import AdderError, compile_spec, ledger
from adder.compiler.checkpoint import load
from adder.compiler.codegen import float_literal, model_source
from adder.compiler.submission import check_submission_output, write_submission
from adder.constructions import REGISTRY, build_spec
from conftest import as_tensors, official_cases

pytestmark = pytest.mark.usefixtures("one_thread")

REFERENCE = Path(__file__).resolve().parents[1] / "train" / "reference" / "micro57.pt"
RANDOM_PAIRS = 2_000  # after the 10 edge cases: AdderBoard's own Random(2025) draws
#: The only modules a generated file may import.
ALLOWED_IMPORTS = {"torch", "math"}


def load_file(path: Path):
    """Import a generated file by path (as AdderBoard's verify.py does)."""
    spec = importlib.util.spec_from_file_location(f"exported_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def export(model, tmp_path: Path, name: str):
    """`model` written by `write_submission` and imported back: (module, its model, its metadata)."""
    module = load_file(write_submission(model, tmp_path / f"{name}.py"))
    exported, meta = module.build_model()
    return module, exported, meta


@pytest.fixture(scope="module")
def teacher_forced_prompts():
    """prompt + answer[:-1] token batches, per prompt format (the edge cases and random pairs)."""
    a, b = as_tensors(official_cases(RANDOM_PAIRS))
    cache = {}

    def get(fmt):
        key = repr(fmt)
        if key not in cache:
            cache[key] = torch.cat([fmt.encode(a, b), fmt.answer(a, b)[:, :-1]], dim=1)
        return cache[key]

    return get


def assert_same_logits(model, exported, tokens):
    with torch.no_grad():
        want, got = model(tokens), exported(tokens)
    assert got.dtype == want.dtype and got.shape == want.shape
    assert torch.equal(got, want), f"max |diff| {(got - want).abs().max().item():.3g}"


@pytest.mark.parametrize("name", list(REGISTRY.keys()))
def test_every_construction_exports_bit_identical_logits(name, compiled, teacher_forced_prompts, tmp_path):
    model = compiled(name)
    _, exported, meta = export(model, tmp_path, name)
    assert_same_logits(model, exported, teacher_forced_prompts(model.spec.format))
    assert meta["name"] == name and meta["author"] == model.spec.meta["author"]
    assert meta["params"] == ledger(model).adderboard == sum(p.numel() for p in exported.parameters())
    assert [p.requires_grad for p in exported.parameters()] == [p.trainable for p in model.spec.params]


def test_a_float64_compilation_exports_in_float64(teacher_forced_prompts, tmp_path):
    model = compile_spec(build_spec("param40"), dtype="float64")
    module, exported, _ = export(model, tmp_path, "param40_f64")
    assert module.DTYPE == torch.float64
    assert_same_logits(model, exported, teacher_forced_prompts(model.spec.format))


def test_a_trained_checkpoint_exports_bit_identical_logits(teacher_forced_prompts, tmp_path):
    model = load(REFERENCE)
    module, exported, meta = export(model, tmp_path, "micro57")
    assert_same_logits(model, exported, teacher_forced_prompts(model.spec.format))
    assert meta["params"] == ledger(model).adderboard
    assert module.add(exported, 1234567890, 9876543210) == 1234567890 + 9876543210


@pytest.mark.parametrize("name", ["param40", "qwen87", "tinyadder36"])
def test_the_file_imports_only_torch(name, compiled):
    tree = ast.parse(model_source(compiled(name)))
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert imported <= ALLOWED_IMPORTS, imported


@pytest.mark.integration
def test_the_file_runs_where_adder_cannot_be_imported(compiled, tmp_path):
    """A fresh interpreter in which `import adder` fails: build_model() and add() still work, and
    add() decodes what adder decodes (including a wrong answer of a broken construction)."""
    pairs = [(0, 0), (9_999_999_999, 1), (1_234_567_890, 9_876_543_210), (9_999_999_999, 9_999_999_999)]
    files = {name: write_submission(compiled(name), tmp_path / f"{name}.py") for name in ("param40", "qwen87")}
    code = (
        "import importlib.util, sys\n"
        "sys.modules['adder'] = None  # any `import adder` now raises ImportError\n"
        "for path in sys.argv[1:]:\n"
        "    spec = importlib.util.spec_from_file_location('submission', path)\n"
        "    m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
        "    model, meta = m.build_model()\n"
        f"    print(meta['params'], *[m.add(model, a, b) for a, b in {pairs!r}])\n"
    )
    run = subprocess.run([sys.executable, "-c", code, *map(str, files.values())], capture_output=True, text=True,
                         cwd=tmp_path, timeout=300)
    assert run.returncode == 0, run.stderr
    sums = [str(a + b) for a, b in pairs]
    assert run.stdout.split("\n")[:2] == [" ".join(["40", *sums]), " ".join(["87", *sums])]


def test_add_matches_adders_greedy_decoding_on_a_failing_case(compiled, tmp_path):
    from adder.compiler import add

    model = compiled("tinyadder36")  # a known counterexample (docs/prove.md)
    module, exported, _ = export(model, tmp_path, "tinyadder36")
    a, b = 1_999_999_999, 2_999_999_999
    assert module.add(exported, a, b) == add(model, a, b)[0] != a + b
    with pytest.raises(ValueError, match="addends must be integers"):
        module.add(exported, -1, 2)


def test_add_computes_the_weights_once_per_sum(compiled, tmp_path):
    """`add` hands one weights() to all its decoding steps; its answers are those of adder's decoding."""
    from adder.compiler import add

    model = compiled("qwen87")  # its Q/K/O matrices are computed from parameters in weights()
    module, exported, _ = export(model, tmp_path, "qwen87")
    calls = []
    inner = type(exported).weights
    type(exported).weights = lambda self: calls.append(1) or inner(self)
    try:
        pairs = [(9_999_999_999, 1), (1_234_567_890, 9_876_543_210), (5_000_000_000, 5_000_000_000)]
        assert [module.add(exported, a, b) for a, b in pairs] == [add(model, a, b)[0] for a, b in pairs]
    finally:
        type(exported).weights = inner
    assert len(calls) == len(pairs)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_float_literals_read_back_exactly(dtype):
    gen = torch.Generator().manual_seed(0)
    bits = torch.randint(-2**31, 2**31 - 1, (20_000,), generator=gen, dtype=torch.int64)
    values = bits.to(torch.int32).view(torch.float32).to(dtype) if dtype == torch.float32 else \
        torch.randn(20_000, generator=gen, dtype=dtype) * 10.0 ** torch.randint(-300, 300, (20_000,), generator=gen)
    special = torch.tensor([0.0, -0.0, 1.0, -1.0, 1e-45, 3.4028234e38, math.inf, -math.inf], dtype=dtype)
    values = torch.cat([values[torch.isfinite(values)], special])
    texts = [float_literal(v, dtype) for v in values.tolist()]
    back = torch.tensor([eval(t, {"math": math}) for t in texts], dtype=dtype)
    assert torch.equal(back.view(torch.int32 if dtype == torch.float32 else torch.int64),
                       values.view(torch.int32 if dtype == torch.float32 else torch.int64))
    assert float_literal(struct.unpack("f", struct.pack("f", 0.1))[0], torch.float32) == "0.1"


# ---------------------------------------------------------------------------- output paths
@pytest.mark.parametrize("name, needle", [
    ("sub.txt", "must end in .py"),
    ("missing/sub.py", "no folder"),
    ("folder.py", "is a folder"),
    ("taken.py", "already exists; pass --force"),
])
def test_bad_output_paths_are_one_line_errors(name, needle, compiled, tmp_path, monkeypatch):
    (tmp_path / "folder.py").mkdir()
    (tmp_path / "taken.py").write_text("keep me")
    monkeypatch.setattr("adder.compiler.submission.model_source", pytest.fail)  # checked before any work
    with pytest.raises(AdderError, match=needle) as err:
        write_submission(compiled("param40"), tmp_path / name)
    assert "\n" not in str(err.value)
    assert (tmp_path / "taken.py").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder.py", "taken.py"]


def test_force_overwrites_and_leaves_nothing_else(compiled, tmp_path):
    out = tmp_path / "sub.py"
    out.write_text("old")
    check_submission_output(out, force=True)
    assert write_submission(compiled("param40"), out, force=True) == out
    assert out.read_text().startswith('"""param40') and sorted(tmp_path.iterdir()) == [out]


def options_no_construction_uses():
    """A random-weight spec with what the registered constructions leave out: LayerNorm with a
    bias, a non-causal block beside causal ones, softmax1 beside softmax, scaled queries beside
    scaled scores, value heads wider than key heads, GELU and identity activations, an
    unembedding bias, two derived weights whose natural names coincide."""
    from adder.compiler.builder import Construction, layernorm, linear, rope
    from adder.compiler.formats import PromptFormat

    c = Construction("options", vocab=[str(d) for d in range(10)], slots=[("x", 4)],
                     fmt=PromptFormat(prompt=(0, ("a", "msb"), 0, ("b", "lsb"), 0), out_order="msb"))
    c.embed(c.free("embed", [10, 4]))
    c.attention(norm=layernorm(weight=c.free("ln0.w", [4]), bias=c.free("ln0.b", [4])), heads=2, kv_heads=1,
                head_dim=2, v_head_dim=3, q=c.free("a0.q", [4, 4]), k=c.free("a0.k", [2, 4]),
                v=c.free("a0.v", [3, 4]), o=c.free("a0.o", [4, 6]), softmax="softmax1", scale=0.5, scale_at="q")
    c.mlp(norm=layernorm(weight=2 * c.free("m1.ln", [4])), up=c.free("m1.up", [3, 4]), down=c.free("m1.down", [4, 3]),
          act="gelu", name="final")  # its norm weight and the final norm's are both "final_norm_weight"
    c.attention(head_dim=2, q=c.free("a2.q", [2, 4]), k=c.free("a2.k", [2, 4]), v=c.free("a2.v", [2, 4]),
                o=c.free("a2.o", [4, 2]), k_norm=layernorm(), rope=rope(theta=10000, convention="interleaved"))
    c.mlp(up=c.free("m3.up", [2, 4]), gate=c.free("m3.gate", [2, 4]), down=c.free("m3.down", [4, 2]), act="identity")
    c.unembed(linear(c.free("head", [10, 4]), bias=c.free("head.bias", [10])),
              final_norm=layernorm(weight=3 * c.free("lnf.w", [4]), bias=c.free("lnf.b", [4])))
    spec = c.build()
    spec.blocks[2].layer.causal = False
    return spec


def test_options_no_construction_uses_export_exactly(teacher_forced_prompts, tmp_path):
    model = compile_spec(options_no_construction_uses(), seed=3)
    module, exported, _ = export(model, tmp_path, "options")
    assert_same_logits(model, exported, teacher_forced_prompts(model.spec.format))
    source = (tmp_path / "options.py").read_text()
    assert all(needle in source for needle in ("causal=False", "softmax1=True", "def layer_norm", "bias=None"))
