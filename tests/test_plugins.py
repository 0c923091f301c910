"""Constructions and recipes from outside the package: a user's construction file (`adder build
my.py`) and entry-point plugins of installed packages (`adder list` shows them)."""

import os
import subprocess
import sys
import types
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from adder.compiler.decode import add
from adder.compiler.errors import AdderError
from adder.compiler.registry import BUILTIN, Entry, Registry
from adder.constructions import REGISTRY
from adder.constructions.targets import CONSTRUCTION_FILE, resolve

#: A construction file: param40's circuit under a new name, with the DSL's one import.
MINE = '''from adder import dsl
from adder.constructions.param40 import build as param40


@dsl.register("{name}", claimed_params=40, author="me", source="https://example.org", summary="param40, mine")
def build_mine():
    spec = param40()
    spec.name = "{name}"
    return spec
'''
TWO = '''from adder.constructions import register
from adder.constructions.param40 import build as param40

for name in ("first40", "second40"):
    register(name, claimed_params=40, author="me", source="-", summary="-")(param40)
'''
BUILD_ONLY = "from adder.constructions.param40 import build as param40\n\n\ndef build():\n    return param40()\n"


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


def same_weights(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def one_line(e: pytest.ExceptionInfo, *needles: str) -> None:
    msg = str(e.value)
    assert "\n" not in msg, msg
    for n in needles:
        assert n in msg, msg


# ---------------------------------------------------------------- construction files
def test_a_registered_construction_in_a_file_builds_again_and_again_without_leaking(compiled, tmp_path):
    path = write(tmp_path, "mine.py", MINE.format(name="mine40"))
    before = set(REGISTRY)
    for _ in range(2):  # a second load in the same process is no double registration
        model = resolve(str(path)).model()
        assert model.spec.name == "mine40" and model.spec.meta["author"] == "me"
        assert same_weights(model, compiled("param40"))
    assert set(REGISTRY) == before and not any(m.startswith("adder_construction_file_") for m in sys.modules)
    assert str(tmp_path) not in sys.path
    assert add(model, [9999999999, 123], [1, 877]) == [10000000000, 1000]


def test_a_file_of_several_constructions_needs_a_pick(tmp_path):
    path = write(tmp_path, "two.py", TWO)
    with pytest.raises(AdderError) as e:
        resolve(str(path)).model()
    one_line(e, "registers 2 constructions (first40, second40)", f"{path}:NAME")
    target = resolve(f"{path}:second40")
    assert (target.kind, target.name, target.pick, target.path) == (CONSTRUCTION_FILE, "second40", "second40", path)
    assert target.spec().meta["claimed_params"] == 40
    with pytest.raises(AdderError) as e:
        resolve(f"{path}:secnd40").model()
    one_line(e, "registers no construction 'secnd40'", "Did you mean second40", "first40, second40")


def test_a_file_with_build_only(compiled, tmp_path):
    path = write(tmp_path, "plain.py", BUILD_ONLY)
    assert same_weights(resolve(str(path)).model(), compiled("param40"))
    with pytest.raises(AdderError) as e:
        resolve(f"{path}:param40").model()
    one_line(e, "registers no constructions", "picks nothing")


def test_a_file_imports_its_neighbours(tmp_path):
    write(tmp_path, "my_weights.py", "NAME = 'neighbour40'\n")
    path = write(tmp_path, "uses.py", "from my_weights import NAME\n" + MINE.format(name="neighbour40"))
    assert resolve(str(path)).model().spec.name == "neighbour40"


@pytest.mark.parametrize("text, needles", [
    (MINE.format(name="param40"), ("construction 'param40' is registered by adder and again by", "another name")),
    ("def build():\n    pass\n1 / 0\n", ("running it raised ZeroDivisionError: division by zero",)),
    ("import sys\nsys.exit(3)\ndef build():\n    pass\n", ("running it raised SystemExit: 3",)),
    ("def build():\n    raise ValueError('two\\nlines')\n", ("build() raised ValueError: two lines",)),
    ("def build():\n    return 3\n", ("build() returned int, not a ModelSpec",)),
    ("from adder.constructions.dsl import register\n\n@register('bad', claimed_params=1, author='-', source='-', summary='-')\n"
     "def build_bad():\n    return None\n", ("construction 'bad': its builder returned NoneType",)),
    ("from adder.constructions.dsl import Construction, PromptFormat\n\ndef build():\n"
     "    return Construction('x', vocab=['0'], fmt=PromptFormat(prompt=(0,)), slots=[('a', 1)]).build()\n",
     ("a prompt needs exactly one 'a' and one 'b' slot",)),
    ("if False:\n    register('never')\n", ("registers no construction and defines no build()",)),
])
def test_a_broken_file_is_one_line_naming_the_file(text, needles, tmp_path):
    path = write(tmp_path, "broken.py", text)
    before = set(REGISTRY)
    with pytest.raises(AdderError) as e:
        resolve(str(path)).model()
    one_line(e, str(path), *needles)
    assert set(REGISTRY) == before


def test_a_pick_needs_a_construction_file(tmp_path):
    sub = write(tmp_path, "sub.py", "def build_model():\n    return None, {}\n")
    with pytest.raises(AdderError) as e:
        resolve(f"{sub}:x")
    one_line(e, ":x picks a construction from a construction file", "is a submission")


# ---------------------------------------------------------------- entry-point plugins
GROUP = "adder_test.widgets"
HOLDER = "adder_test_widget_registry"


@dataclass(frozen=True)
class Widget(Entry):
    colour: str = "red"


def dist(site: Path, name: str, entry_points: dict[str, dict[str, str]], modules: dict[str, str]) -> None:
    """A tiny installed distribution: a `*.dist-info` folder (METADATA, entry_points.txt) and its modules."""
    info = site / f"{name.replace('-', '_')}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("".join(
        f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items()) + "\n" for group, eps in entry_points.items()))
    for module, text in modules.items():
        (site / f"{module}.py").write_text(text)


@pytest.fixture
def widgets(tmp_path, monkeypatch):
    """A fresh registry with plugins in group GROUP, reachable by the plugins' modules as HOLDER.r."""
    r = Registry("widget", Widget, hint="-", plugins=GROUP)
    holder = types.ModuleType(HOLDER)
    holder.r = r
    monkeypatch.setitem(sys.modules, HOLDER, holder)
    monkeypatch.syspath_prepend(str(tmp_path))
    for module in ("widgets_a", "widgets_b", "widgets_half"):
        monkeypatch.delitem(sys.modules, module, raising=False)
    dist(tmp_path, "widgets-plugin", {GROUP: {"a": "widgets_a", "b": "widgets_b:setup", "missing": "widgets_nowhere",
                                              "half": "widgets_half"}},
         {"widgets_a": f"from {HOLDER} import r\nr.register('blue', colour='blue')(lambda: None)\n",
          "widgets_b": f"from {HOLDER} import r\n\ndef setup():\n    r.register('green', colour='green')(lambda: None)\n",
          "widgets_half": f"from {HOLDER} import r\nr.register('half')(lambda: None)\nraise RuntimeError('oops')\n"})
    r.register("builtin")(lambda: None)
    return r


def test_plugins_load_once_lazily_and_a_broken_one_is_a_warning(widgets, capsys):
    assert "widgets_a" not in sys.modules  # nothing loads before the registry is listed or looked up
    assert sorted(widgets) == ["blue", "builtin", "green"]
    assert widgets["blue"].origin == widgets.lookup("green").origin == "widgets-plugin"
    assert widgets["builtin"].origin == BUILTIN
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and len(widgets.plugin_failures) == 2
    assert err[0].startswith("warning: widget plugin") and "ModuleNotFoundError" in "".join(err)
    assert any("'half'" in line and "RuntimeError: oops" in line for line in err)  # and kept nothing it registered
    assert len(widgets) == 3 and capsys.readouterr().err == ""  # loaded once


def test_a_capture_sees_plugins_and_keeps_nothing(widgets):
    with widgets.capture(origin="my.py") as found:
        widgets.register("mine")(lambda: None)
        with pytest.raises(AdderError, match="'blue' is registered by widgets-plugin and again by my.py"):
            widgets.register("blue")(lambda: None)
    assert list(found) == ["mine"] and found["mine"].origin == "my.py" and "mine" not in widgets


# ---------------------------------------------------------------- through the command line
PLUGIN_MODULE = MINE.format(name="plugin40") + '''

def add_recipes():
    from adder.train.recipes import get_recipe, recipe

    micro = get_recipe("micro57")
    recipe("plugin57", hyper=micro.hyper, summary="micro57, from a plugin", params=57)(micro.build)
'''


def adder(*args, cwd, pythonpath=()):
    env = dict(os.environ, COLUMNS="200")
    env["PYTHONPATH"] = os.pathsep.join([*map(str, pythonpath), env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-m", "adder.cli", *args], capture_output=True, text=True, cwd=cwd, env=env)


@pytest.mark.integration
def test_a_construction_file_builds_verifies_exports_and_shows_info_through_the_cli(tmp_path):
    path = write(tmp_path, "mine.py", MINE.format(name="mine40"))
    r = adder("build", str(path), cwd=tmp_path)
    assert r.returncode == 0 and (tmp_path / "mine40.pt").exists(), r.stderr
    r = adder("info", str(path), cwd=tmp_path)
    assert r.returncode == 0 and "mine40" in r.stdout and "AdderBoard count (unique learned scalars): 40" in r.stdout
    r = adder("verify", str(path), "--suite", "adderboard", cwd=tmp_path)
    assert r.returncode == 0 and "10,010/10,010" in r.stdout, r.stdout + r.stderr
    r = adder("export", str(path), "-o", "mine_sub.py", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    code = ("import sys; sys.modules['adder'] = None; import importlib.util as u; "
            "s = u.spec_from_file_location('m', 'mine_sub.py'); m = u.module_from_spec(s); s.loader.exec_module(m); "
            "model, meta = m.build_model(); print(meta['params'], m.add(model, 9999999999, 1))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert out.stdout.split() == ["40", "10000000000"], out.stderr
    r = adder("build", str(write(tmp_path, "two.py", TWO)), cwd=tmp_path)
    assert r.returncode == 2 and "pick one with" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.integration
def test_an_entry_point_plugin_shows_up_in_adder_list(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    dist(site, "adder-demo-plugin", {"adder.constructions": {"demo": "adder_demo_plugin", "broken": "adder_demo_nowhere"},
                                     "adder.recipes": {"demo": "adder_demo_plugin:add_recipes"}},
         {"adder_demo_plugin": PLUGIN_MODULE})
    r = adder("list", cwd=tmp_path, pythonpath=[site])
    assert r.returncode == 0, r.stderr
    row = next(line for line in r.stdout.splitlines() if "plugin40" in line)
    assert "adder-demo-plugin" in row and " 40 " in row
    assert next(line for line in r.stdout.splitlines() if "param40" in line).rstrip(" │").endswith("adder")
    warning = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(warning) == 1 and warning[0].startswith("warning: construction plugin 'broken'"), r.stderr
    assert "No module named 'adder_demo_nowhere'" in warning[0]
    r = adder("train", "--list", cwd=tmp_path, pythonpath=[site])
    assert r.returncode == 0 and "plugin57" in r.stdout, r.stderr
    r = adder("info", "plugin40", cwd=tmp_path, pythonpath=[site])
    assert r.returncode == 0 and "author me" in r.stdout, r.stderr
