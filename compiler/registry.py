"""A named registry: what both the construction library and the training recipes are.

Entries register themselves with a decorator when their module is imported, and users look
them up by name. The two registries differ only in what an entry holds (a construction's
published claim, a recipe's hyperparameters), so they share this one type:

    RECIPES = Registry("recipe", Recipe, hint="adder train --list shows them", plugins="adder.recipes")

    @RECIPES.register("micro57", hyper=Hyper(...), summary="...", params=57)
    def build() -> ModelSpec: ...

    RECIPES.lookup("micro75")   # AdderError: unknown recipe 'micro75'. Did you mean micro57, ...?

A `Registry` is a read-only mapping (`name in r`, `r[name]`, `sorted(r)`, `r.values()`).

Where entries come from (each entry's `origin`):
* the package itself (`BUILTIN`), registered when its modules are imported;
* installed packages, through the entry-point group `plugins` (an entry point names a module
  whose import registers entries, or a zero-argument callable that does). They are loaded
  once, the first time the registry is listed or looked up; a plugin that fails to load is
  skipped with a one-line warning on stderr (and noted in `plugin_failures`), keeping
  nothing it registered;
* a user's file, loaded inside `capture(origin)`: what it registers is handed back to the
  caller and never kept, so the same file can be loaded again in the same process.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from types import ModuleType
from typing import Generic, TypeVar

from .errors import AdderError, did_you_mean, exception_line
from .spec import ModelSpec

#: The origin of the entries the package registers itself.
BUILTIN = "adder"


@dataclass(frozen=True)
class Entry:
    """What every registered thing has: its name, a zero-argument builder of its spec, and
    where it comes from (`BUILTIN`, a plugin's distribution name, or a user's file)."""

    name: str
    build: Callable[[], ModelSpec]
    origin: str = field(default=BUILTIN, kw_only=True)


T = TypeVar("T", bound=Entry)


class Registry(Mapping[str, T], Generic[T]):
    """Entries of one `kind` (each an `entry_type`, a subclass of `Entry`) by name; `hint`
    tells a user how to list them; `plugins` is the entry-point group installed packages
    add entries through (None: no plugins)."""

    def __init__(self, kind: str, entry_type: type[T], *, hint: str, plugins: str | None = None) -> None:
        self.kind = kind
        self.entry_type = entry_type
        self.hint = hint
        self.plugins = plugins
        #: One line per plugin that failed to load (each also printed on stderr once).
        self.plugin_failures: list[str] = []
        self._entries: dict[str, T] = {}
        self._origin = BUILTIN
        self._captured: dict[str, T] | None = None
        self._plugins_loaded = plugins is None

    def register(self, name: str, **fields) -> Callable[[Callable[[], ModelSpec]], Callable[[], ModelSpec]]:
        """Decorator: register the spec builder it decorates as `name`, with the entry's other `fields`."""
        def deco(build: Callable[[], ModelSpec]) -> Callable[[], ModelSpec]:
            self.add(name, self.entry_type(name=name, build=build, origin=self._origin, **fields))
            return build

        return deco

    def add(self, name: str, entry: T) -> T:
        """Register `entry` as `name`; a name is registered once (a second one is a mistake, not an override)."""
        old = self._entries.get(name) or (self._captured or {}).get(name)
        if old is not None:
            where = (f"twice in {entry.origin}" if old.origin == entry.origin
                     else f"by {old.origin} and again by {entry.origin}")
            raise AdderError(f"{self.kind} {name!r} is registered {where}; give one of them another name")
        (self._entries if self._captured is None else self._captured)[name] = entry
        return entry

    @contextmanager
    def capture(self, origin: str) -> Iterator[dict[str, T]]:
        """Registrations made inside go into the dict this yields, with `origin`, not into the
        registry (a name the registry has is a clash): a user's file registers without leaking."""
        self._load_plugins()
        saved = self._captured, self._origin
        self._captured, self._origin = {}, origin
        try:
            yield self._captured
        finally:
            self._captured, self._origin = saved

    def lookup(self, name: str) -> T:
        """The entry `name`, or a one-line error that suggests the closest names."""
        self._load_plugins()
        if name not in self._entries:
            raise AdderError(f"unknown {self.kind} {name!r}.{did_you_mean(name, self._entries)} "
                             f"Known: {', '.join(sorted(self._entries))} ({self.hint}).")
        return self._entries[name]

    def __getitem__(self, name: str) -> T:
        self._load_plugins()
        return self._entries[name]

    def __iter__(self) -> Iterator[str]:
        self._load_plugins()
        return iter(self._entries)

    def __len__(self) -> int:
        self._load_plugins()
        return len(self._entries)

    # ------------------------------------------------------------ plugins
    def _load_plugins(self) -> None:
        """Load every entry point of the `plugins` group, once."""
        if self._plugins_loaded:
            return
        self._plugins_loaded = True
        for ep in entry_points(group=self.plugins):
            self._load_plugin(ep)

    def _load_plugin(self, ep: EntryPoint) -> None:
        """Import (and call, if it is a callable) one entry point, its registrations marked with its
        distribution; on failure keep none of them and warn in one line."""
        origin = ep.dist.name if ep.dist is not None else ep.value
        before = set(self._entries)
        saved, self._origin = self._origin, origin
        try:
            loaded = ep.load()
            if callable(loaded) and not isinstance(loaded, ModuleType):
                loaded()
        except Exception as e:  # a broken plugin must not break the registry (nor `adder list`)
            for name in set(self._entries) - before:
                del self._entries[name]
            failure = (f"{self.kind} plugin {ep.name!r} ({ep.value}, from {origin}) failed to load and is "
                       f"skipped: {exception_line(e)}")
            self.plugin_failures.append(failure)
            print(f"warning: {failure}", file=sys.stderr)
        finally:
            self._origin = saved
