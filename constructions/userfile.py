"""A user's construction file: a Python file outside the package that builds a `ModelSpec`.

`adder build|info|verify|prove my.py` takes such a file. It either registers constructions
with the same decorator as the library's (`from adder.constructions.dsl import register`, or
`from adder.constructions import register`), or defines `build()` returning a `ModelSpec`:

    from adder import dsl

    @dsl.register("mine", claimed_params=40, author="me", source="-", summary="...")
    def build_mine():
        c = dsl.Construction("mine", ...)
        ...
        return c.build()

**Loading the file runs its code** (with importlib, as `python my.py` would, with its folder
on `sys.path` while it runs), with the user's rights: load only files you trust. What it
registers is captured (`Registry.capture`), not kept in the library's registry, so the same
file can be loaded again in one process; a name that is already registered (a built-in or
plugin construction) is a clash. `file.py:NAME` picks one of several registered
constructions. Every problem, an exception raised by the file included, is one line that
names the file.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from ..compiler.errors import AdderError, did_you_mean, exception_line
from ..compiler.spec import ModelSpec
from .registry import REGISTRY, Entry

#: What a construction file defines when it registers nothing.
BUILD_FUNCTION = "build"
#: Separates a construction file from the name it picks: `file.py:NAME`.
PICK_SEPARATOR = ":"
#: Prefix of the module name a construction file runs under (never left in sys.modules).
MODULE_PREFIX = "adder_construction_file_"


def construction_spec(path: Path, pick: str | None = None) -> ModelSpec:
    """The spec `path` builds: the construction it registers (the one named `pick` if it registers
    several), else what its `build()` returns. Runs the file (see the module docstring)."""
    with REGISTRY.capture(origin=str(path)) as registered:
        module = _run(path)
    if registered:
        entry = _picked(path, registered, pick)
        return _call(path, entry.spec, f"construction {entry.name!r}")
    if pick is not None:
        raise AdderError(f"{path} registers no constructions, so {path}{PICK_SEPARATOR}{pick} picks nothing; "
                         f"drop {PICK_SEPARATOR}{pick}")
    build = getattr(module, BUILD_FUNCTION, None)
    if not callable(build):
        raise AdderError(f"{path} registers no construction and defines no {BUILD_FUNCTION}(); "
                         f"register one with @register(...) or define {BUILD_FUNCTION}() returning a ModelSpec")
    spec = _call(path, build, f"{BUILD_FUNCTION}()")
    if not isinstance(spec, ModelSpec):
        raise AdderError(f"{path}: {BUILD_FUNCTION}() returned {type(spec).__name__}, not a ModelSpec; "
                         "end it with `return c.build()`")
    return spec


def _run(path: Path) -> ModuleType:
    """Execute the file as a fresh module (its folder on sys.path meanwhile, as for `python path`)."""
    name = MODULE_PREFIX + path.stem
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise AdderError(f"cannot load {path} as a Python module")
    module = importlib.util.module_from_spec(spec)
    folder = str(path.resolve().parent)
    sys.modules[name] = module  # dataclasses and typing look the running module up there
    sys.path.insert(0, folder)
    try:
        _call(path, lambda: spec.loader.exec_module(module), "running it")
    finally:
        sys.modules.pop(name, None)
        sys.path.remove(folder)
    return module


def _call(path: Path, fn, what: str):
    """`fn()`, any exception it raises turned into one line naming the file and `what` raised it."""
    try:
        return fn()
    except AdderError as e:
        raise AdderError(f"{path}: {e}") from None
    except (Exception, SystemExit) as e:
        raise AdderError(f"{path}: {what} raised {exception_line(e)}") from None


def _picked(path: Path, registered: dict[str, Entry], pick: str | None) -> Entry:
    names = ", ".join(sorted(registered))
    if pick is None:
        if len(registered) == 1:
            return next(iter(registered.values()))
        raise AdderError(f"{path} registers {len(registered)} constructions ({names}); "
                         f"pick one with {path}{PICK_SEPARATOR}NAME")
    if pick not in registered:
        raise AdderError(f"{path} registers no construction {pick!r}.{did_you_mean(pick, registered)} "
                         f"It registers: {names}.")
    return registered[pick]
