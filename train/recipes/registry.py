"""The recipe registry: name -> a learned spec builder, its hyperparameters and its AdderBoard count.

A recipe module registers a zero-argument function returning a `ModelSpec` with free tensors:

    @recipe("micro57", hyper=Hyper(...), summary="...", params=57)
    def build() -> ModelSpec: ...

Installed packages add recipes through the entry-point group `adder.recipes` (see
compiler/registry.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ...compiler.registry import Entry, Registry
from ...compiler.spec import ModelSpec
from .hyper import Hyper


@dataclass(frozen=True)
class Recipe(Entry):
    """A recipe: its builder (a spec with free tensors), hyperparameters and AdderBoard count."""

    hyper: Hyper
    summary: str
    params: int
    notes: str = ""
    #: The layout with a learned difference on each of its ties (`train/bridge.py`), or None.
    bridge: Callable[[], ModelSpec] | None = None


#: The entry-point group through which installed packages add recipes.
PLUGIN_GROUP = "adder.recipes"

RECIPES: Registry[Recipe] = Registry("recipe", Recipe, hint="`adder train --list` shows them", plugins=PLUGIN_GROUP)
#: `@recipe(name, hyper=..., summary=..., params=..., notes=...)` on a spec builder.
recipe = RECIPES.register


def get_recipe(name: str) -> Recipe:
    """The registered recipe `name`, or a one-line error that suggests the closest names."""
    return RECIPES.lookup(name)
