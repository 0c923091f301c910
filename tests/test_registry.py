"""The one registry type behind constructions and recipes: lookups, typos, double registration."""

from dataclasses import dataclass

import pytest

from adder.compiler.errors import AdderError
from adder.compiler.registry import Entry, Registry
from adder.constructions import REGISTRY
from adder.train.recipes import RECIPES


@dataclass(frozen=True)
class Widget(Entry):
    colour: str = "red"


def registry_of(*names):
    r = Registry("widget", Widget, hint="`widgets --list` shows them")
    for name in names:
        r.register(name, colour=name.upper())(lambda: name)
    return r


def test_a_registry_is_a_mapping_filled_once_per_name():
    r = registry_of("alpha", "beta")
    assert sorted(r) == ["alpha", "beta"] and len(r) == 2 and "alpha" in r
    assert r.lookup("beta").colour == "BETA" and r["alpha"].name == "alpha"
    with pytest.raises(AdderError, match="registered twice"):
        r.register("alpha")(lambda: None)
    assert r["alpha"].colour == "ALPHA"


def test_an_unknown_name_is_one_line_with_the_closest_names_and_how_to_list():
    r = registry_of("micro57", "micro67", "qwen3-d3")
    with pytest.raises(AdderError) as e:
        r.lookup("micro75")
    msg = str(e.value)
    assert "\n" not in msg and "unknown widget 'micro75'" in msg and "Did you mean" in msg
    assert "micro57" in msg and "widgets --list" in msg


@pytest.mark.parametrize("registry, kind", [(REGISTRY, "construction"), (RECIPES, "recipe")])
def test_constructions_and_recipes_share_the_type(registry, kind):
    assert isinstance(registry, Registry) and registry.kind == kind and len(registry) >= 10
    name = sorted(registry)[0]
    assert registry.lookup(name) is registry[name]
