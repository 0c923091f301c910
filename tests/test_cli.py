"""The command line: real runs of `adder`, and one-line errors (exit 2, no traceback) for bad input."""

import subprocess
import sys

import math

import pytest

from adder.compiler import checkpoint
from adder.compiler.errors import AdderError
from adder.train.recipes import Hyper, get_recipe


def adder_process(*args, cwd=None):
    """`adder ARGS` in a fresh Python process (for what needs one: signals, `python -m`, the start-up)."""
    return subprocess.run([sys.executable, "-m", "adder.cli", *args], capture_output=True, text=True, cwd=cwd)


def adder(*args, cwd=None) -> subprocess.CompletedProcess:
    """`adder ARGS` run in this process through the real entry point (`cli.main`: one-line errors,
    exit codes), with stdout and stderr captured: the same checks without a Python start-up each."""
    return adder_here(*args, cwd=cwd)


def adder_here(*args, cwd=None) -> subprocess.CompletedProcess:
    """`adder ARGS` run in this process through the real entry point (`cli.main`: one-line errors,
    exit codes), with stdout and stderr captured: the fail-fast checks without a Python start-up each."""
    import contextlib
    import io
    import os

    import torch

    from adder.cli import main

    out, err, threads, here = io.StringIO(), io.StringIO(), torch.get_num_threads(), os.getcwd()
    argv, sys.argv = sys.argv, ["adder", *map(str, args)]
    code = 0
    try:
        if cwd is not None:
            os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main()
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        sys.argv = argv
        os.chdir(here)
        torch.set_num_threads(threads)
    return subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())


def one_line_error(r, *needles):
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr + r.stdout
    err = r.stderr.strip()
    assert err.startswith("error:") and "\n" not in err, err
    for n in needles:
        assert n in err, err


@pytest.mark.integration
def test_list_shows_the_three_constructions_with_counts():
    r = adder("list", "--markdown")
    assert r.returncode == 0, r.stderr
    rows = {line.split("|")[1].strip(): line for line in r.stdout.splitlines() if line.startswith("| ") and "---" not in line}
    for name, count in (("param40", "40"), ("tinyadder36", "36"), ("qwen87", "87")):
        assert name in rows and f" {count} " in rows[name]


def test_build_info_add_round_trip(tmp_path):
    ck = tmp_path / "p.pt"
    r = adder("build", "param40", "-o", str(ck))
    assert r.returncode == 0 and ck.exists(), r.stderr
    r = adder("info", str(ck))
    assert r.returncode == 0 and "AdderBoard count (unique learned scalars): 40" in r.stdout, r.stdout
    r = adder("add", str(ck), "9999999999", "1", "--trace")
    assert r.returncode == 0 and "= 10000000000" in r.stdout
    one_line_error(adder("build", "param40", "-o", str(ck)), "already exists", "--force")
    assert adder("build", "param40", "-o", str(ck), "--force").returncode == 0


@pytest.mark.parametrize("args, needles", [
    (("add", "param40", "-5", "3"), ("A must be",)),
    (("add", "param40", "1", "10000000000"), ("B must be in",)),
    (("add", "param40", "1.5", "2"), ("A must be an integer",)),
    (("add", "parm40", "1", "2"), ("unknown construction 'parm40'", "param40")),
    (("info", "missing.pt"), ("no checkpoint at",)),
    (("build", "param40", "--dtype", "float16", "-o", "x.pt"), ("dtype",)),
    (("train", "micro57", "--lr", "inf"), ("--lr must be a positive finite number", "inf")),
    (("export", "param40", "-o", "s.txt"), ("must end in .py",)),
    (("export", "missing.pt", "-o", "s.py"), ("no checkpoint at",)),
])
def test_bad_input_is_one_line(args, needles, tmp_path):
    one_line_error(adder(*args, cwd=tmp_path), *needles)


def test_corrupt_checkpoint_is_one_line(tmp_path):
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    one_line_error(adder("info", str(tmp_path / "bad.pt")), "not a torch checkpoint")


def test_export_writes_a_working_submission(tmp_path):
    ck = tmp_path / "m.pt"
    assert adder("build", "qwen87", "-o", str(ck)).returncode == 0
    sub = tmp_path / "sub.py"
    r = adder("export", str(ck), "-o", str(sub))
    assert r.returncode == 0, r.stderr
    code = ("import importlib.util,sys; s=importlib.util.spec_from_file_location('s', sys.argv[1]); "
            "m=importlib.util.module_from_spec(s); s.loader.exec_module(m); model, meta = m.build_model(); "
            "print(meta['params'], m.add(model, 1234567890, 9876543210), m.add(model, 9999999999, 9999999999))")
    out = subprocess.run([sys.executable, "-c", code, str(sub)], capture_output=True, text=True, cwd=tmp_path)
    assert out.stdout.split() == ["87", str(1234567890 + 9876543210), str(2 * 9999999999)], out.stderr
    one_line_error(adder("export", str(ck), "-o", str(sub)), "already exists")
    r = adder("export", "param40", "-o", str(tmp_path / "p40.py"))  # a construction name exports too
    assert r.returncode == 0 and (tmp_path / "p40.py").exists(), r.stderr


def test_python_dash_m_adder_runs_the_cli():
    r = subprocess.run([sys.executable, "-m", "adder", "info", "param40", "--json"], capture_output=True, text=True)
    assert r.returncode == 0 and '"adderboard": 40' in r.stdout, r.stderr


def test_hyperparameter_overrides_are_checked():
    h = get_recipe("micro57").hyper
    assert h.override() == h
    short = h.override(steps=100, lr=0.5, curriculum="1-10:rest")
    assert (short.steps, short.eval_every, short.lr, short.curriculum) == (100, 25, 0.5, "1-10:rest")
    for bad in (dict(steps=0), dict(lr=math.inf), dict(lr=math.nan), dict(lr=0.0), dict(curriculum="1-99:5")):
        with pytest.raises(AdderError):
            h.override(**bad)


def test_a_resumed_run_takes_the_hyperparameters_its_checkpoint_recorded(compiled, tmp_path):
    default, recorded = get_recipe("micro57").hyper, get_recipe("micro57").hyper.override(steps=123)
    plain = checkpoint.save(compiled("param40"), tmp_path / "plain.pt")
    assert Hyper.recorded_in(plain, default) == default  # a construction's checkpoint records none
    run = checkpoint.save(compiled("param40"), tmp_path / "run.pt", meta={"hyper": recorded.to_json()})
    assert Hyper.recorded_in(run, default) == recorded


def test_square_brackets_in_an_error_survive_rich_markup():
    """Errors print through rich: a bracketed name (or `pip install 'adder[plot]'`) must not vanish."""
    r = adder("verify", "param40", "--suite", "carry[plot]")
    one_line_error(r, "unknown suite 'carry[plot]'")



_FAULTS = """
import resource, sys, torch
from adder.cli.heap import keep_freed_memory
agreed = keep_freed_memory() if sys.argv[1] == "keep" else None
from adder.compiler import compile_spec
from adder.compiler.decode import teacher_forced
from adder.constructions import build_spec
torch.set_num_threads(1)
model = compile_spec(build_spec("param40"))
g = torch.Generator().manual_seed(0)
a, b = (torch.randint(0, 10**10, (4096,), generator=g) for _ in range(2))
first = teacher_forced(model, a, b).margin
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):  # the verifier's loop: one batched pass per chunk of 4,096 additions
    assert torch.equal(teacher_forced(model, a, b).margin, first)
print(agreed, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before, float(first.sum()))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc only")
def test_the_command_line_keeps_freed_tensors_pages_for_reuse():
    """`cli/heap.py`: with glibc told to keep freed memory, the verifier's batched passes (param40,
    chunks of 4,096 additions) reuse their tensors' pages instead of faulting them in again every
    pass (a fifth of `verify --adversarial`'s time went to those faults), and compute the same
    margins bit for bit."""
    procs = {mode: subprocess.Popen([sys.executable, "-c", _FAULTS, mode], stdout=subprocess.PIPE, text=True)
             for mode in ("keep", "default")}  # side by side: each counts its own faults
    runs = {mode: p.communicate()[0].split() for mode, p in procs.items()}
    assert all(p.returncode == 0 for p in procs.values())
    assert runs["keep"][0] == "True"
    kept, default = int(runs["keep"][1]), int(runs["default"][1])
    assert kept * 5 < default, (kept, default)
    assert runs["keep"][2] == runs["default"][2]  # the same margins
