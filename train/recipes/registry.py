"""The recipe registry: name -> a learned spec builder, its hyperparameters and its AdderBoard count.

A recipe module registers a zero-argument function returning a `ModelSpec` with free tensors:

    @recipe("micro57", hyper=Hyper(...), summary="...", params=57)
    def build() -> ModelSpec: ...
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ...compiler.registry import Registry
from ...compiler.spec import ModelSpec
from .hyper import Hyper


@dataclass(frozen=True)
class Recipe:
    name: str
    build: Callable[[], ModelSpec]
    hyper: Hyper
    summary: str
    params: int
    notes: str = ""


RECIPES: Registry[Recipe] = Registry("recipe", hint="`adder train --list` shows them")


def recipe(name: str, *, hyper: Hyper, summary: str, params: int, notes: str = ""):
    """Register a zero-argument spec builder as recipe `name` (`params`: its AdderBoard count)."""
    def deco(fn):
        RECIPES.add(name, Recipe(name, fn, hyper, summary, params, notes))
        return fn

    return deco


def get_recipe(name: str) -> Recipe:
    """The registered recipe `name`, or a one-line error that suggests the closest names."""
    return RECIPES.lookup(name)
