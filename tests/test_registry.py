"""The one registry type behind constructions and recipes: lookups, typos, double registration."""

import pytest

from adder.compiler.errors import AdderError
from adder.compiler.registry import Registry
from adder.constructions import REGISTRY
from adder.train.recipes import RECIPES


def test_a_registry_is_a_mapping_filled_once_per_name():
    r = Registry("widget", hint="`widgets --list` shows them")
    r.add("alpha", 1)
    r.add("beta", 2)
    assert dict(r) == {"alpha": 1, "beta": 2} and len(r) == 2 and "alpha" in r
    assert r.lookup("beta") == 2
    with pytest.raises(AdderError, match="registered twice"):
        r.add("alpha", 3)
    assert r["alpha"] == 1


def test_an_unknown_name_is_one_line_with_the_closest_names_and_how_to_list():
    r = Registry("widget", hint="`widgets --list` shows them")
    for name in ("micro57", "micro67", "qwen3-d3"):
        r.add(name, name)
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
