"""The construction registry: name -> how to build its spec, with its published claim.

A construction module registers a zero-argument function returning a `ModelSpec`:

    @register("param40", claimed_params=40, author="Wonderfall", source="https://...")
    def build() -> ModelSpec: ...
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..compiler.errors import AdderError, did_you_mean
from ..compiler.spec import ModelSpec


@dataclass(frozen=True)
class Entry:
    name: str
    build: Callable[[], ModelSpec]
    claimed_params: int
    author: str
    source: str
    summary: str


REGISTRY: dict[str, Entry] = {}


def register(name: str, *, claimed_params: int, author: str, source: str, summary: str):
    def deco(fn: Callable[[], ModelSpec]) -> Callable[[], ModelSpec]:
        if name in REGISTRY:
            raise ValueError(f"construction {name!r} registered twice")
        REGISTRY[name] = Entry(name, fn, claimed_params, author, source, summary)
        return fn

    return deco


def get(name: str) -> Entry:
    """The registered construction `name`, or a one-line error that suggests the closest names."""
    if name not in REGISTRY:
        raise AdderError(f"unknown construction {name!r}.{did_you_mean(name, REGISTRY)} Run `adder list` to see all "
                         f"({', '.join(sorted(REGISTRY))}).")
    return REGISTRY[name]


def build_spec(name: str) -> ModelSpec:
    e = get(name)
    spec = e.build()
    spec.meta.setdefault("claimed_params", e.claimed_params)
    spec.meta.setdefault("author", e.author)
    spec.meta.setdefault("source", e.source)
    return spec
