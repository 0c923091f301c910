"""The construction registry: name -> how to build its spec, with its published claim.

A construction module registers a zero-argument function returning a `ModelSpec`:

    @register("param40", claimed_params=40, author="Wonderfall", source="https://...")
    def build() -> ModelSpec: ...

Installed packages add constructions through the entry-point group `adder.constructions`
(see compiler/registry.py); a user's own file registers with the same decorator
(`constructions/userfile.py`).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..compiler.errors import AdderError
from ..compiler.registry import Entry as BaseEntry
from ..compiler.registry import Registry
from ..compiler.spec import ModelSpec

#: The entry-point group through which installed packages add constructions.
PLUGIN_GROUP = "adder.constructions"


@dataclass(frozen=True)
class Entry(BaseEntry):
    """A construction: its builder and its published claim (count, author, source)."""

    claimed_params: int
    author: str
    source: str
    summary: str

    def spec(self) -> ModelSpec:
        """The spec its builder returns, named as registered and carrying the registered claim (a
        builder copied from another construction keeps that one's name inside: the registration
        is what the user wrote, so it wins); author and source fill in what the spec leaves open."""
        spec = self.build()
        if not isinstance(spec, ModelSpec):
            raise AdderError(f"construction {self.name!r}: its builder returned {type(spec).__name__}, not a "
                             "ModelSpec; end it with `return c.build()`")
        spec.name = self.name
        spec.meta["claimed_params"] = self.claimed_params
        spec.meta.setdefault("author", self.author)
        spec.meta.setdefault("source", self.source)
        return spec


REGISTRY: Registry[Entry] = Registry("construction", Entry, hint="`adder list` shows them", plugins=PLUGIN_GROUP)
#: `@register(name, claimed_params=..., author=..., source=..., summary=...)` on a spec builder.
register = REGISTRY.register


def get(name: str) -> Entry:
    """The registered construction `name`, or a one-line error that suggests the closest names."""
    return REGISTRY.lookup(name)


def build_spec(name: str) -> ModelSpec:
    """The spec of the registered construction `name`."""
    return get(name).spec()
