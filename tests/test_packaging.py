"""What `pip install .` installs: the package's own modules and its shipped data, nothing else.

The package is the repository root, so a stray `submission.py` exported into the checkout
would otherwise be installed as `adder.submission` (.ci/build_py.py filters it out).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: What the copy of the checkout leaves behind: environments, build output, VCS data.
NOT_SOURCE = shutil.ignore_patterns(".venv", ".git", "build", "*.egg-info", "__pycache__", "runs", ".pytest_cache")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> list[str]:
    """The file list of a wheel built from a copy of the checkout holding two stray files."""
    pytest.importorskip("setuptools")
    src = tmp_path_factory.mktemp("checkout") / "adder"
    shutil.copytree(ROOT, src, ignore=NOT_SOURCE)
    (src / "submission.py").write_text("def build_model():\n    return None, {}\n")
    (src / "param40.pt").write_bytes(b"not a package file")
    out = src.parent / "dist"
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                           "-w", str(out), str(src)], capture_output=True, text=True)
    if done.returncode and "No module named pip" in done.stderr:
        pytest.skip("pip is not installed in this environment")
    assert done.returncode == 0, done.stderr
    (whl,) = out.glob("adder-*.whl")
    return zipfile.ZipFile(whl).namelist()


def test_a_stray_file_in_the_checkout_is_not_installed(wheel):
    assert "adder/submission.py" not in wheel
    assert "adder/param40.pt" not in wheel
    assert sorted(n for n in wheel if n.count("/") == 1 and n.endswith(".py")) == ["adder/__init__.py",
                                                                                  "adder/__main__.py"]


def test_every_module_of_the_package_is_installed(wheel):
    tracked = subprocess.run(["git", "ls-files", "*.py"], cwd=ROOT, capture_output=True, text=True)
    if tracked.returncode:
        pytest.skip("not a git checkout")
    outside = ("tests/", "bench/", ".ci/", "docs/")
    expected = {f"adder/{p}" for p in tracked.stdout.split() if not p.startswith(outside)}
    assert expected <= set(wheel), sorted(expected - set(wheel))


def test_the_reference_run_ships_as_package_data(wheel):
    shipped = {n for n in wheel if n.startswith("adder/train/reference/")}
    assert shipped == {f"adder/{p.relative_to(ROOT).as_posix()}" for p in (ROOT / "train/reference").iterdir()}
    assert {n.rsplit(".", 1)[-1] for n in shipped} == {"pt", "xz"}  # checkpoints and the proof's certificate
