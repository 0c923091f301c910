"""The layering of docs/architecture.md, checked on the code: every import (lazy ones inside
functions included) goes down or sideways, never up, and no two modules import each other.

The rules are data: each layer lists the layers it may import. A layer is a dotted prefix of
the module name; the longest matching prefix decides (so `verify.prove` is its own layer
inside `verify`).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "adder"
#: Folders of the repository that are not part of the package.
OUTSIDE = {"tests", "bench", "docs", ".ci", ".venv", "build", "adder.egg-info"}

#: layer -> the layers (or single modules, such as the verifier's public `verify.api`) its
#: modules may import, besides their own layer.
MAY_IMPORT: dict[str, set[str]] = {
    "compiler": set(),
    "constructions": {"compiler"},
    "verify": {"compiler"},
    "verify.checker": {"compiler"},  # the trusted base: nothing of the search (tests/test_checker.py)
    "verify.prove": {"compiler", "verify", "verify.checker"},
    "verify.compare": {"compiler", "verify"},
    "verify.board": {"compiler", "constructions", "verify", "verify.prove"},
    "train": {"compiler", "constructions", "verify.api"},
    "cli": {"compiler", "constructions", "verify", "verify.checker", "verify.prove", "verify.compare", "verify.board", "train"},
    "__main__": {"cli"},
    "": set(),  # the package's own __init__
}


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = [p for p in rel.parts if p != "__init__"]
    return ".".join(parts)


def package_modules() -> dict[str, Path]:
    out = {}
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT)
        if rel.parts[0] in OUTSIDE or any(p.startswith(".") for p in rel.parts):
            continue
        out[module_name(path)] = path
    return out


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The package modules `name` imports, anywhere in the file, as dotted names without 'adder.'."""
    is_pkg = path.name == "__init__.py"
    here = name.split(".") if name else []
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        targets = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here if is_pkg else here[:-1]
                base = base[:len(base) - (node.level - 1)]
                stem = ".".join(base + ([node.module] if node.module else []))
            else:
                stem = node.module or ""
            # `from pkg import mod` imports a module when `pkg.mod` is one
            targets = [f"{stem}.{a.name}" if f"{stem}.{a.name}".removeprefix(PACKAGE + ".") in known else stem
                       for a in node.names]
            if node.level:
                targets = [PACKAGE + "." + t if t else PACKAGE for t in targets]
        for t in targets:
            if t == PACKAGE or t.startswith(PACKAGE + "."):
                mod = t.removeprefix(PACKAGE).lstrip(".")
                while mod and mod not in known:  # a name imported from a module: keep the module
                    mod = mod.rpartition(".")[0]
                if mod != name:
                    found.add(mod)
    return found


def layer_of(module: str) -> str:
    best = ""
    for layer in MAY_IMPORT:
        if layer and (module == layer or module.startswith(layer + ".")) and len(layer) > len(best):
            best = layer
    return best


MODULES = package_modules()
GRAPH = {name: imports_of(name, path, set(MODULES)) for name, path in MODULES.items()}


def test_the_package_is_found():
    assert {"compiler.module", "verify.prove.api", "train.loop"} <= set(MODULES)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_go_down_or_sideways(module):
    own = layer_of(module)
    allowed = MAY_IMPORT[own] | {own}
    for target in sorted(GRAPH[module]):
        layer = layer_of(target)
        ok = layer in allowed or target in allowed  # a layer, or one module named as a layer's door
        assert ok, f"{module} (layer {own or 'adder'}) imports {target} (layer {layer or 'adder'}): not allowed"


def test_no_import_cycles():
    """Depth-first search for a back edge in the module graph."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str):
        state[m] = 1
        stack.append(m)
        for t in sorted(GRAPH.get(m, ())):
            if state.get(t) == 1:
                cycle = stack[stack.index(t):] + [t]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if t in GRAPH and not state.get(t):
                visit(t)
        stack.pop()
        state[m] = 2

    for m in sorted(GRAPH):
        if not state.get(m):
            visit(m)


def test_the_rules_catch_an_upward_import(tmp_path):
    """The checker itself: a compiler module importing the verifier is reported."""
    bad = tmp_path / "bad.py"
    bad.write_text("from ..verify.cases import SUITES\n")
    found = imports_of("compiler.bad", bad, set(MODULES) | {"compiler.bad"})
    assert found == {"verify.cases"} and layer_of("verify.cases") not in MAY_IMPORT["compiler"]


def test_docs_architecture_names_every_module():
    """docs/architecture.md is where a newcomer finds things: every module is named there
    (a family of constructions or recipes, which registers itself, is found by its registry)."""
    doc = (ROOT / "docs" / "architecture.md").read_text()
    for name, path in MODULES.items():
        registers = "@register(" in path.read_text() or "@recipe(" in path.read_text()
        if path.name in ("__init__.py", "__main__.py") or registers:
            continue
        assert f"`{path.name}`" in doc, f"{path.relative_to(ROOT)} is not in docs/architecture.md"
