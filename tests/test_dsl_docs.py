"""docs/dsl.md is a tutorial that runs: its Python blocks, executed in order in one namespace,
build a model that adds; saved in order as one file, they are a construction file."""

import ast
import builtins
import re
import subprocess
import sys
from pathlib import Path

import pytest

from adder.compiler.decode import add
from adder.compiler.ledger import ledger
from adder.constructions import REGISTRY
from adder.constructions.targets import CONSTRUCTION_FILE, resolve

DOC = Path(__file__).resolve().parents[1] / "docs" / "dsl.md"
PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
#: The name the tutorial registers its construction under, and pairs its model must add.
TUTORIAL_NAME = "my40"
PAIRS = [(0, 0), (1234567890, 9876543210), (9999999999, 1), (9999999999, 9999999999), (5000000000, 4999999999)]


def python_blocks() -> list[str]:
    return PYTHON_BLOCK.findall(DOC.read_text())


@pytest.fixture(scope="module")
def namespace():
    """The page's blocks run in order in one namespace; what they register is captured, not kept."""
    ns: dict = {}
    with REGISTRY.capture(origin=str(DOC)) as registered:
        for i, block in enumerate(python_blocks()):
            exec(compile(block, f"{DOC.name} block {i + 1}", "exec"), ns)
    ns["registered"] = registered
    return ns


def test_every_block_imports_what_it_uses():
    """A block takes from the blocks before it only what the walk-through defines (constants, `c`,
    parameters), never an import: each block imports what it uses, and no name is left undefined."""
    defined_before: set[str] = set()
    for i, block in enumerate(python_blocks()):
        tree = ast.parse(block)
        imported = {(a.asname or a.name).split(".")[0] for n in ast.walk(tree)
                    if isinstance(n, (ast.Import, ast.ImportFrom)) for a in n.names}
        defined = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
        defined |= {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
        used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
        missing = used - imported - defined - defined_before - set(dir(builtins))
        assert not missing, f"block {i + 1} of {DOC.name} uses {sorted(missing)} without importing or defining them"
        defined_before |= defined


def test_the_tutorial_model_builds_and_adds(namespace):
    model = namespace["model"]
    assert ledger(model).adderboard == 40
    a, b = zip(*PAIRS)
    assert add(model, list(a), list(b)) == [x + y for x, y in PAIRS]


def test_the_tutorial_registers_its_construction_without_keeping_it(namespace):
    assert list(namespace["registered"]) == [TUTORIAL_NAME] and TUTORIAL_NAME not in REGISTRY
    spec = namespace["registered"][TUTORIAL_NAME].spec()
    assert spec.name == TUTORIAL_NAME and spec.meta["claimed_params"] == 40


def test_the_blocks_saved_as_one_file_are_a_construction_file(tmp_path):
    path = tmp_path / f"{TUTORIAL_NAME}.py"
    path.write_text("\n\n".join(python_blocks()))
    target = resolve(str(path))
    assert target.kind == CONSTRUCTION_FILE
    model = target.model()
    assert model.spec.name == TUTORIAL_NAME and str(model.dtype) == "torch.float32"
    a, b = zip(*PAIRS)
    assert add(model, list(a), list(b)) == [x + y for x, y in PAIRS]


def test_the_attention_arguments_are_all_documented():
    """Every keyword of `Construction.attention` has a row in the page's table."""
    import inspect

    from adder.constructions.dsl import Construction

    table = DOC.read_text().split("### `c.attention(...)`")[1].split("###")[0]
    documented = {name for cell in re.findall(r"^\| (.+?) \|", table, re.M) for name in re.findall(r"`(\w+)`", cell)}
    arguments = set(inspect.signature(Construction.attention).parameters) - {"self"}
    assert arguments <= documented, arguments - documented


def test_adder_build_compiles_the_tutorial_file(tmp_path):
    (tmp_path / f"{TUTORIAL_NAME}.py").write_text("\n\n".join(python_blocks()))
    r = subprocess.run([sys.executable, "-m", "adder.cli", "build", f"{TUTORIAL_NAME}.py"], capture_output=True,
                       text=True, cwd=tmp_path)
    assert r.returncode == 0 and (tmp_path / f"{TUTORIAL_NAME}.pt").exists(), r.stderr
    assert "40 AdderBoard" in r.stdout
