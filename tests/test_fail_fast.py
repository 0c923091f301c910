"""Fail fast, lose nothing: bad output paths and options are refused before any work (one line, exit 2,
no traceback, no file written); a crafted checkpoint is refused at once; a diverging run stops with
one line; Ctrl-C keeps what a run did; the Hypothesis search writes nothing where adder runs."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sympy
import torch

from adder.compiler import checkpoint
from adder.compiler.errors import SpecError
from adder.compiler.scalars import MAX_DEPTH, MAX_DIGITS, scalar_from_json

from test_cli import adder, one_line_error

#: A spec value that would take for ever to evaluate: 10^(10^100).
HUGE_POWER = {"o": "pow", "a": [{"i": "10"}, {"o": "pow", "a": [{"i": "10"}, {"i": "100"}]}]}
#: A crafted checkpoint is refused within this many seconds (the CLI's start-up included).
INSTANT_S = 30


def _setup(tmp_path):
    """The files the matrix refers to: an existing file, an empty and a non-empty folder."""
    (tmp_path / "taken.json").write_text("mine")
    (tmp_path / "empty").mkdir()
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")


# (arguments, what the error says, the output path that must not appear)
MATRIX = [
    (("prove", "param40", "--json", "missing/report.json"), ("folder missing does not exist",), "missing"),
    (("prove", "param40", "--certificate", "missing/c.json"), ("folder missing does not exist",), "missing"),
    (("prove", "param40", "--json", "taken.json"), ("taken.json already exists", "--force"), None),
    (("prove", "param40", "--certificate", "taken.json"), ("already exists",), None),
    (("prove", "param40", "--json", "empty", "--force"), ("it is a folder",), None),
    (("compare", "param40", "qwen87", "--out", "taken.json"), ("exists and is not a folder",), None),
    (("compare", "param40", "qwen87", "--out", "full"), ("already holds files", "--force"), None),
    (("compare", "param40", "qwen87", "--out", "taken.json/sub"), ("not a writable folder",), None),
    (("compare", "param40", "qwen87", "--probes", "10", "--out", "new"), ("--probes must be at least",), "new"),
    (("train", "micro57", "--out", "taken.json"), ("exists and is not a folder",), None),
    (("train", "micro57", "--threads", "0", "--out", "run"), ("--threads must be between 1 and",), "run"),
    (("train", "micro57", "--seeds", "1,2", "--jobs", "0", "--out", "sweep"), ("--jobs must be between 1 and",), "sweep"),
    (("train", "micro57", "--lr", "inf", "--out", "run"), ("--lr must be a positive finite number",), "run"),
    (("list", "--markdown", "--json"), ("choose one",), None),
    # the hostile matrix of issue 26: sizes, seeds and counts a run cannot honour, refused before work
    (("add", "param40", "9" * 5000, "1"), ("A must be in [0, 9999999999]", "5,000 digits"), None),
    (("verify", "param40", "--seed", str(2**64), "--json", "v.json"), ("--seed must be an integer in [0, 2^63 - 1]",),
     "v.json"),
    (("train", "micro57", "--seed", str(2**64), "--out", "run"), ("--seed must be an integer",), "run"),
    (("train", "micro57", "--seeds", f"1,{2**64}", "--out", "sweep"), ("--seeds must list distinct seeds",), "sweep"),
    (("train", "micro57", "--seed", str(2**63 - 2), "--population", "4", "--out", "pop"),
     ("--seed + --population - 1 must be an integer",), "pop"),
    (("compare", "param40", "param40", "--seed", str(2**64), "--out", "cmp"), ("--seed must be an integer",), "cmp"),
    (("compare", "param40", "param40", "--probes", "100000000000", "--out", "cmp"), ("--probes must be between",),
     "cmp"),
    (("train", "micro57", "--set", "batch=1000000000000", "--out", "run"), ("batch must be between 1 and",), "run"),
    (("train", "micro57", "--set", "clip=nan", "--out", "run"), ("clip (0: off) must be a finite number >= 0",), "run"),
    (("train", "micro57", "--set", "carry_mix=5", "--out", "run"), ("carry_mix (a share of the batch) must be",),
     "run"),
    (("verify", "param40", "--threads", "100000", "--json", "v.json"), ("--threads must be between 1 and",), "v.json"),
    (("train", "micro57", "--threads", "100000", "--out", "run"), ("--threads must be between 1 and",), "run"),
    (("board", "--threads", "100000", "--out", "b.md"), ("--threads must be between 1 and",), "b.md"),
    (("prove", "param40", "--timeout", "nan", "--json", "p.json"), ("--timeout must be a positive finite",), "p.json"),
    (("prove", "param40", "--timeout", "inf", "--json", "p.json"), ("--timeout must be a positive finite",), "p.json"),
    (("prove", "param40", "--timeout", "0", "--json", "p.json"), ("--timeout must be a positive finite",), "p.json"),
    (("verify", "param40", "--prove", "--prove-timeout", "nan"), ("--prove-timeout must be a finite number > 0",),
     None),
    (("train", "micro57", "--warm-start", "param40", "--finetune", "--out", "ft"),
     ("has no parameter of the same name and shape for", "--partial-warm-start"), "ft"),
    (("train", "micro57", "--warm-start", "param40", "--out", "run"), ("--partial-warm-start",), "run"),
    (("train", "micro57", "--partial-warm-start", "--out", "run"), ("applies to --warm-start without --finetune",), "run"),
]


@pytest.mark.parametrize("args, needles, absent", MATRIX, ids=[" ".join(m[0]) for m in MATRIX])
def test_bad_output_paths_and_options_are_refused_before_work(args, needles, absent, tmp_path):
    _setup(tmp_path)
    one_line_error(adder(*args, cwd=tmp_path), *needles)
    assert (tmp_path / "taken.json").read_text() == "mine"  # nothing overwritten
    assert [p.name for p in (tmp_path / "full").iterdir()] == ["keep.txt"] and not any((tmp_path / "empty").iterdir())
    if absent:
        assert not (tmp_path / absent).exists()


def test_a_diverging_run_stops_with_one_line_and_keeps_its_best_checkpoint(tmp_path):
    r = adder("train", "micro57", "--steps", "200", "--lr", "1e9", "--out", "run", cwd=tmp_path)
    progress, error = r.stderr.strip().rpartition("\n")[::2]  # plain progress lines, then the error
    one_line_error(subprocess.CompletedProcess(r.args, r.returncode, r.stdout, error), "training loss is nan",
                   "a lower --lr")
    assert "Traceback" not in progress
    rows = (tmp_path / "run" / "metrics.csv").read_text().splitlines()
    assert rows[-1].split(",")[1] == "nan"  # the step that diverged is recorded
    assert "No checkpoint was written" in r.stderr or "best checkpoint so far" in r.stderr
    if (tmp_path / "run" / "best.pt").exists():
        checkpoint.load(tmp_path / "run" / "best.pt")  # whole


def _crafted(compiled, tmp_path, rehash: bool):
    """param40's checkpoint with one spec value replaced by 10^(10^100); its hash recomputed or not."""
    ck = checkpoint.to_checkpoint(compiled("param40"))
    value = '{"i":"1000"}'
    assert value in ck["spec"]
    ck["spec"] = ck["spec"].replace(value, json.dumps(HUGE_POWER, separators=(",", ":")), 1)
    if rehash:
        ck["meta"]["weights_sha256"] = checkpoint.state_hash(ck["spec"], ck["state"])
    path = tmp_path / "crafted.pt"
    torch.save(ck, path)
    return path


@pytest.mark.parametrize("rehash, needle", [(False, "do not match the recorded hash"),
                                            (True, "beyond the bound")])
def test_a_crafted_checkpoint_is_refused_at_once(compiled, tmp_path, rehash, needle):
    """The hash is checked before the spec is read; a forged hash still meets the bounds on exact values."""
    path = _crafted(compiled, tmp_path, rehash)
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "adder.cli", "info", str(path)], capture_output=True, text=True,
                       timeout=INSTANT_S)
    assert time.perf_counter() - t0 < INSTANT_S
    one_line_error(r, needle)


@pytest.mark.parametrize("node, needle", [
    (HUGE_POWER, "exponent"),
    ({"i": "9" * (MAX_DIGITS + 1)}, "digits"),
    ({"q": ["1", "1" + "0" * (MAX_DIGITS + 1)]}, "digits"),
    ({"o": "pow", "a": [{"i": "7"}, {"i": "999"}]}, "digits"),
    ({"o": "exp", "a": [{"o": "exp", "a": [{"o": "exp", "a": [{"i": "1000"}]}]}]}, "beyond 10\\^"),
    ({"o": "sin", "a": [{"c": "oo"}]}, "not a finite real number"),
    ({"q": ["1", "0"]}, "denominator 0"),
    ({"f": "0x1p999999"}, "malformed"),
    ({"o": "exp", "a": []}, "wrong number of arguments"),
])
def test_exact_values_are_bounded(node, needle):
    t0 = time.perf_counter()
    with pytest.raises(SpecError, match=needle):
        scalar_from_json(node)
    assert time.perf_counter() - t0 < 1


def test_exact_values_are_bounded_in_depth():
    node = {"i": "1"}
    for _ in range(MAX_DEPTH + 1):
        node = {"o": "abs", "a": [node]}
    with pytest.raises(SpecError, match="deep"):
        scalar_from_json(node)


def test_exact_values_within_the_bounds_read_back():
    node = {"o": "pow", "a": [{"i": "2"}, {"q": ["3", "4"]}]}
    assert scalar_from_json(node) == sympy.Integer(2) ** sympy.Rational(3, 4)
    assert scalar_from_json({"i": "-" + "9" * MAX_DIGITS}) == -(10 ** MAX_DIGITS - 1)


def test_a_checkpoint_is_written_whole_or_not_at_all(compiled, tmp_path, monkeypatch):
    path = checkpoint.save(compiled("param40"), tmp_path / "p.pt")
    before = path.read_bytes()

    def interrupted_save(obj, f):
        open(f, "wb").write(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", interrupted_save)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.save(compiled("qwen87"), path, force=True)
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["p.pt"]


def _with_ctrl_c():
    """In the child, SIGINT raises KeyboardInterrupt again: a test run started in the background
    (`cmd &` in a script) inherits SIGINT ignored, and Python keeps an inherited SIG_IGN."""
    signal.signal(signal.SIGINT, signal.default_int_handler)


def _interrupt_when(proc, ready, limit=300.0):
    """Send Ctrl-C (SIGINT) to `proc` once `ready()` holds; its stdout and stderr."""
    t0 = time.monotonic()
    while not ready():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() - t0 < limit, "the run never got going"
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    return proc.communicate(timeout=limit)


@pytest.mark.integration
def test_ctrl_c_during_train_keeps_the_best_checkpoint(tmp_path):
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "adder.cli", "train", "micro57", "--steps", "2000", "--out", str(run),
                             "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_with_ctrl_c)
    out, err = _interrupt_when(proc, lambda: (run / "best.pt").exists())
    assert proc.returncode == 130, err
    summary = json.loads(out)
    assert summary["complete"] is False and summary["steps"] < 2000 and summary["checkpoint"] == str(run / "best.pt")
    assert "interrupted at step" in err and f"best checkpoint so far is {run / 'best.pt'}" in err
    assert "Traceback" not in err
    checkpoint.load(run / "best.pt")


@pytest.mark.integration
def test_ctrl_c_during_prove_writes_an_incomplete_report(tmp_path):
    report = tmp_path / "r.json"
    proc = subprocess.Popen([sys.executable, "-m", "adder.cli", "prove", "param40", "--json", str(report)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=_with_ctrl_c)
    first = []
    out, err = _interrupt_when(proc, lambda: first.append(proc.stderr.readline()) or "cases bounded" in first[-1])
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "interrupted" in err
    data = json.loads(report.read_text())
    assert data["interrupted"] is True and data["verdict"] == "undecided" and "interrupted (Ctrl-C)" in data["reason"]


def test_the_hypothesis_search_writes_nothing_in_the_working_directory(tmp_path):
    code = ("from adder.constructions import build_spec; from adder.compiler import compile_spec; "
            "from adder.verify.steered import search; print(search(compile_spec(build_spec('tinyadder36')), "
            "max_examples=30).examples)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.strip() == "30", r.stderr
    assert list(tmp_path.iterdir()) == []


def test_an_output_through_a_symbolic_link_keeps_the_link(tmp_path):
    """`--json link --force` writes the link's target; the link stays a link (it used to become a plain file)."""
    target, link = tmp_path / "target.json", tmp_path / "link.json"
    target.write_text("old")
    link.symlink_to(target)
    r = adder("prove", "param40", "--timeout", "0.5", "--json", link, "--force", cwd=tmp_path)
    assert r.returncode == 3, r.stderr
    assert link.is_symlink() and json.loads(target.read_text())["verdict"] == "undecided"


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs a read-only /proc")
def test_a_folder_that_cannot_really_be_written_is_refused_before_work(tmp_path):
    """`os.access` says yes to root even on a read-only file system: the check writes a probe file."""
    one_line_error(adder("export", "param40", "-o", "/proc/adder-export.py"), "cannot write /proc/adder-export.py")
    one_line_error(adder("prove", "param40", "--json", "/proc/adder-report.json"), "is not writable")


def test_a_user_files_own_error_is_shown_not_hidden(tmp_path):
    """A construction file whose `build` comes from an import that fails: the import's error, not "defines no
    build_model()"."""
    path = tmp_path / "mine.py"
    path.write_text("from adder_helpers_that_do_not_exist import build\n")
    one_line_error(adder("build", path, "-o", tmp_path / "m.pt"), "ModuleNotFoundError", "adder_helpers_that_do_not_exist")
    assert not (tmp_path / "m.pt").exists()


def test_a_user_files_registered_name_and_claim_are_used(tmp_path):
    """A file that registers another construction's builder under its own name and claim is shown by that
    name and that claim."""
    path = tmp_path / "my40.py"
    path.write_text("from adder.constructions.param40 import build as build40\n"
                    "from adder.constructions.registry import register\n\n"
                    "@register('my40', claimed_params=39, author='me', source='-', summary='-')\n"
                    "def build():\n    return build40()\n")
    r = adder("info", path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("my40") and "(claimed 39)" in r.stdout
