"""The README's tour runs as written: each command in one folder (in this process, through the
real entry point), and the Python block with the results its comments promise. The tour's
seconds-long lines run in the integration tier; the "longer runs" (minutes: training, a float64
adversarial run) are exercised by the train, compare and verify tests instead."""

import re
import subprocess
from pathlib import Path

import pytest

from test_cli import adder

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()
#: Tour lines that take tens of seconds: the integration tier runs them.
HEAVY = ("--adversarial", "prove tinyadder36", "prove param40")
#: Commands that report a wrong model: exit 1 by design.
FINDS_A_BUG = ("verify tinyadder36", "prove tinyadder36")


def tour() -> list[str]:
    block = README.split("## A five-minute tour", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    return [line.split("#", 1)[0].strip() for line in block.strip().splitlines()]


def run(command: str, cwd: Path) -> subprocess.CompletedProcess:
    args = command.split()
    assert args[0] == "adder"
    return adder(*args[1:], cwd=cwd)


def test_the_tour_is_found():
    assert len(tour()) >= 10 and all(c.startswith("adder ") for c in tour())


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("tour")  # one folder: later lines read what earlier ones wrote


def _check(command: str, folder: Path):
    r = run(command, folder)
    expected = 1 if any(k in command for k in FINDS_A_BUG) else 0
    assert r.returncode == expected, (command, r.returncode, r.stdout[-2000:], r.stderr[-2000:])
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("command", [c for c in tour() if not any(k in c for k in HEAVY)])
def test_a_fast_tour_command_runs(command, folder):
    _check(command, folder)


@pytest.mark.integration
@pytest.mark.parametrize("command", [c for c in tour() if any(k in c for k in HEAVY)])
def test_a_heavier_tour_command_runs(command, folder):
    _check(command, folder)


def test_the_python_block_gives_what_its_comments_say(tmp_path, monkeypatch):
    code = README.split("In Python:", 1)[1].split("```python", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    lines = code.strip().splitlines()
    for line in lines:
        stmt, _, comment = line.partition("#")
        if not stmt.strip():
            continue
        promised = re.match(r"\s*->\s*(.+)", comment)
        if promised:  # "expr  # -> value": the expression evaluates to the value
            assert eval(stmt, namespace) == eval(promised.group(1), {}), line
        else:
            exec(stmt, namespace)
    assert (tmp_path / "p40.pt").exists()
