"""Training recipes: a learned spec (free tensors in the DSL) plus its hyperparameters.

A recipe is registered by name; `adder train --list` shows them. The spec is an ordinary
`ModelSpec`, so what trains is the same module the compiler builds from constructions,
and the checkpoint is read by `adder info`, `adder verify` and `adder compare`.
"""

from . import lowrank_d7, micro, qwen3_arc, qwen3_d3, split_d6  # noqa: F401  (registration side effects)
from .hyper import Hyper
from .registry import RECIPES, Recipe, get_recipe, recipe

__all__ = ["RECIPES", "Hyper", "Recipe", "get_recipe", "recipe"]
