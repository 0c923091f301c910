"""`resolve(target)`: each kind of target string, classified once, and one-line errors for the rest."""

from pathlib import Path

import pytest

from adder.compiler import checkpoint, ledger
from adder.compiler.errors import AdderError
from adder.constructions.targets import (CHECKPOINT, CONSTRUCTION, CONSTRUCTION_FILE, SUBMISSION, check_device,
                                         resolve)

SUBMISSION_FILE = "def build_model():\n    return None, {}\n\ndef add(model, a, b):\n    return a + b\n"
CONSTRUCTION_FILE_TEXT = ("from adder.constructions.registry import register\n\n"
                          "@register('mine', claimed_params=1, author='me', source='-', summary='-')\n"
                          "def build():\n    raise SystemExit('a construction file must not run when resolved')\n")


def test_a_registered_name_is_a_construction():
    t = resolve("param40")
    assert (t.kind, t.name, t.path) == (CONSTRUCTION, "param40", None)
    assert ledger(t.model()).adderboard == 40
    assert str(t.model(dtype="float64").dtype) == "torch.float64"


def test_a_checkpoint_file_loads(compiled, tmp_path):
    path = checkpoint.save(compiled("param40"), tmp_path / "p.pt")
    t = resolve(str(path))
    assert (t.kind, t.name, t.path) == (CHECKPOINT, "p", path)
    assert checkpoint.weights_hash(t.model()) == checkpoint.weights_hash(compiled("param40"))


def test_a_submission_file_is_read_not_run_and_is_no_model(tmp_path):
    sub = tmp_path / "sub.py"
    sub.write_text("raise SystemExit('a submission must not run when resolved')\n" + SUBMISSION_FILE)
    t = resolve(str(sub))
    assert (t.kind, t.name, t.path) == (SUBMISSION, "sub", sub)
    with pytest.raises(AdderError, match="submission file, which runs as a black box"):
        t.model()


def test_a_construction_file_is_read_when_resolved_and_run_when_built(tmp_path):
    """Resolving reads the syntax tree only; building runs the file (tests/test_plugins.py: the rest)."""
    for text, needle in ((CONSTRUCTION_FILE_TEXT, "construction 'mine' raised SystemExit"),
                         ("def build():\n    pass\n", "build() returned NoneType, not a ModelSpec")):
        f = tmp_path / "mine.py"
        f.write_text(text)
        t = resolve(str(f))
        assert (t.kind, t.name, t.path, t.pick) == (CONSTRUCTION_FILE, "mine", f, None)
        with pytest.raises(AdderError) as e:
            t.model()
        assert str(e.value).startswith(f"{f}: ") and needle in str(e.value) and "\n" not in str(e.value)


def test_a_checkpoint_has_no_spec_to_build(compiled, tmp_path):
    path = checkpoint.save(compiled("param40"), tmp_path / "p.pt")
    with pytest.raises(AdderError, match="is a checkpoint file, not a construction"):
        resolve(str(path)).spec()


@pytest.mark.parametrize("text, needle", [
    ("parm40", "unknown construction 'parm40'. Did you mean param40?"),
    ("missing.pt", "no checkpoint at missing.pt"),
    (str(Path("no_folder") / "model"), "no checkpoint at"),
    ("missing.py", "no file at missing.py"),
])
def test_typos_and_missing_files_are_one_line_errors(text, needle, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(AdderError) as e:
        resolve(text)
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_a_python_file_that_is_neither_kind_or_not_python(tmp_path):
    plain = tmp_path / "plain.py"
    plain.write_text("def add(model, a, b):\n    return a + b\n")
    with pytest.raises(AdderError, match=r"defines no build_model\(\)"):
        resolve(str(plain))
    broken = tmp_path / "broken.py"
    broken.write_text("def build_model(:\n")
    with pytest.raises(AdderError, match="is not valid Python"):
        resolve(str(broken))


def test_devices_are_checked():
    assert check_device("cpu") == "cpu"
    with pytest.raises(AdderError, match="--device must be cpu or cuda"):
        check_device("tpu")
    with pytest.raises(AdderError, match="--device must be cpu or cuda"):
        resolve("param40").model(device="gpu")
