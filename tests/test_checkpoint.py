"""Checkpoints: bit-identical round trips, self-contained loading, refusal of bad files."""

import os
import subprocess
import sys
import zipfile

import pytest
import torch

from adder.compiler import checkpoint
from adder.compiler.errors import CheckpointError

from conftest import CORE


def _logits(m):
    fmt = m.spec.format
    a, b = torch.tensor([123456789, 9_999_999_999, 0]), torch.tensor([987654321, 1, 0])
    tokens = torch.cat([fmt.encode(a, b), fmt.answer(a, b)[:, :-1]], 1)
    with torch.no_grad():
        return m(tokens)


@pytest.mark.parametrize("name", CORE)
def test_build_save_load_gives_bit_identical_logits(compiled, name, tmp_path):
    m = compiled(name)
    p = checkpoint.save(m, tmp_path / f"{name}.pt")
    back = checkpoint.load(p)
    assert back.dtype == m.dtype
    assert torch.equal(_logits(m), _logits(back))
    ck = torch.load(p, weights_only=True)
    assert ck["meta"]["counted_params"] == sum(x.numel() for x in m.parameters())
    assert ck["meta"]["weights_sha256"] == checkpoint.weights_hash(m)
    assert m.spec_text is None and back.spec_text == ck["spec"]  # a loaded model keeps the text it was read from


def test_loads_in_a_fresh_process_without_construction_code(compiled, tmp_path):
    p = checkpoint.save(compiled("param40"), tmp_path / "p.pt")
    code = ("import sys; from adder.compiler import load, add; m = load(sys.argv[1]); "
            "assert 'adder.constructions' not in sys.modules; print(add(m, 9999999999, 1)[0])")
    out = subprocess.run([sys.executable, "-c", code, str(p)], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "10000000000"


def test_refuses_to_overwrite_without_force(compiled, tmp_path):
    p = tmp_path / "x.pt"
    p.write_text("mine")
    with pytest.raises(CheckpointError, match="--force"):
        checkpoint.save(compiled("param40"), p)
    assert p.read_text() == "mine"
    checkpoint.save(compiled("param40"), p, force=True)
    assert zipfile.is_zipfile(p)


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo should-never-run",))


def test_bad_files_give_one_clear_error(compiled, tmp_path):
    good = checkpoint.save(compiled("param40"), tmp_path / "good.pt")
    cases = {}
    cases["missing"] = (tmp_path / "nope.pt", "no checkpoint at")
    torch.save({"x": _Evil()}, tmp_path / "evil.pt")
    cases["pickle"] = (tmp_path / "evil.pt", "pickled Python objects")
    (tmp_path / "trunc.pt").write_bytes(good.read_bytes()[:400])
    cases["truncated"] = (tmp_path / "trunc.pt", "truncated")
    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pt")
    cases["foreign"] = (tmp_path / "other.pt", "not an adder checkpoint")
    ck = torch.load(good, weights_only=True)
    ck["format_version"] = 99
    torch.save(ck, tmp_path / "v99.pt")
    cases["version"] = (tmp_path / "v99.pt", "format version 99")
    ck = torch.load(good, weights_only=True)
    ck["state"]["embed"] = ck["state"]["embed"] + 1
    torch.save(ck, tmp_path / "edited.pt")
    cases["hash"] = (tmp_path / "edited.pt", "recorded hash")
    for what, (path, msg) in cases.items():
        with pytest.raises(CheckpointError, match=msg) as e:
            checkpoint.load(path)
        assert "\n" not in str(e.value), what


def test_older_spec_text_without_newer_defaulted_fields_still_loads(compiled, tmp_path):
    """A file written before a field existed keeps loading, and keeps its own hash."""
    import hashlib
    import json

    p = checkpoint.save(compiled("param40"), tmp_path / "new.pt")
    ck = torch.load(p, weights_only=True)
    spec = json.loads(ck["spec"])
    for b in spec["blocks"]:
        b["layer"].pop("v_head_dim", None)  # as an older adder wrote it
    ck["spec"] = json.dumps(spec)
    h = hashlib.sha256(ck["spec"].encode())
    for name in sorted(ck["state"]):
        t = ck["state"][name].contiguous()
        h.update(name.encode()); h.update(str(t.dtype).encode()); h.update(t.numpy().tobytes())
    ck["meta"]["weights_sha256"] = h.hexdigest()
    torch.save(ck, tmp_path / "old.pt")
    m = checkpoint.load(tmp_path / "old.pt")
    assert checkpoint.weights_hash(m) == ck["meta"]["weights_sha256"]
    assert torch.equal(_logits(m), _logits(compiled("param40")))
