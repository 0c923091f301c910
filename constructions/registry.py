"""The construction registry: name -> how to build its spec, with its published claim.

A construction module registers a zero-argument function returning a `ModelSpec`:

    @register("param40", claimed_params=40, author="Wonderfall", source="https://...")
    def build() -> ModelSpec: ...
"""

from __future__ import annotations

from dataclasses import dataclass

from ..compiler.registry import Entry as BaseEntry
from ..compiler.registry import Registry
from ..compiler.spec import ModelSpec


@dataclass(frozen=True)
class Entry(BaseEntry):
    """A construction: its builder and its published claim (count, author, source)."""

    claimed_params: int
    author: str
    source: str
    summary: str


REGISTRY: Registry[Entry] = Registry("construction", Entry, hint="`adder list` shows them")
#: `@register(name, claimed_params=..., author=..., source=..., summary=...)` on a spec builder.
register = REGISTRY.register


def get(name: str) -> Entry:
    """The registered construction `name`, or a one-line error that suggests the closest names."""
    return REGISTRY.lookup(name)


def build_spec(name: str) -> ModelSpec:
    e = get(name)
    spec = e.build()
    spec.meta.setdefault("claimed_params", e.claimed_params)
    spec.meta.setdefault("author", e.author)
    spec.meta.setdefault("source", e.source)
    return spec
