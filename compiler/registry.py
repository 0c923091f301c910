"""A named registry: what both the construction library and the training recipes are.

Entries register themselves with a decorator when their module is imported, and users look
them up by name. The two registries differ only in what an entry holds (a construction's
published claim, a recipe's hyperparameters), so they share this one type:

    RECIPES = Registry("recipe", Recipe, hint="adder train --list shows them")

    @RECIPES.register("micro57", hyper=Hyper(...), summary="...", params=57)
    def build() -> ModelSpec: ...

    RECIPES.lookup("micro75")   # AdderError: unknown recipe 'micro75'. Did you mean micro57, ...?

A `Registry` is a read-only mapping (`name in r`, `r[name]`, `sorted(r)`, `r.values()`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

from .errors import AdderError, did_you_mean
from .spec import ModelSpec


@dataclass(frozen=True)
class Entry:
    """What every registered thing has: its name and a zero-argument builder of its spec."""

    name: str
    build: Callable[[], ModelSpec]


T = TypeVar("T", bound=Entry)


class Registry(Mapping[str, T], Generic[T]):
    """Entries of one `kind` (each an `entry_type`, a subclass of `Entry`) by name; `hint`
    tells a user how to list them."""

    def __init__(self, kind: str, entry_type: type[T], *, hint: str) -> None:
        self.kind = kind
        self.entry_type = entry_type
        self.hint = hint
        self._entries: dict[str, T] = {}

    def register(self, name: str, **fields) -> Callable[[Callable[[], ModelSpec]], Callable[[], ModelSpec]]:
        """Decorator: register the spec builder it decorates as `name`, with the entry's other `fields`."""
        def deco(build: Callable[[], ModelSpec]) -> Callable[[], ModelSpec]:
            self.add(name, self.entry_type(name=name, build=build, **fields))
            return build

        return deco

    def add(self, name: str, entry: T) -> T:
        """Register `entry` as `name`; a name is registered once (a second one is a mistake, not an override)."""
        if name in self._entries:
            raise AdderError(f"{self.kind} {name!r} is registered twice; give one of them another name")
        self._entries[name] = entry
        return entry

    def lookup(self, name: str) -> T:
        """The entry `name`, or a one-line error that suggests the closest names."""
        if name not in self._entries:
            raise AdderError(f"unknown {self.kind} {name!r}.{did_you_mean(name, self._entries)} "
                             f"Known: {', '.join(sorted(self._entries))} ({self.hint}).")
        return self._entries[name]

    def __getitem__(self, name: str) -> T:
        return self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)
