"""The black-box runner of submission files: one outcome per call, whatever the submission does
(exits, kills itself, hangs, returns a lambda, prints, writes into adder's pipe), and `--sandbox`."""

import errno
import json
import socket
import subprocess
import sys
import time
from collections import Counter

import pytest

from adder.verify.submissions import blackbox
from adder.verify.submissions.blackbox import (CRASH, ERROR, KILL_GRACE, MAX_LOST_IN_A_ROW, NOT_INT, NOT_RUN, OK, TIMEOUT,
                                     BlackBox)
from adder.compiler.errors import AdderError

#: Correct and fast except on a few of AdderBoard's edge cases (the official random pairs never hit them).
MISBEHAVING = '''
import os, signal, sys, time

class Model:
    pass

def build_model():
    print("building")
    return Model(), {"name": "misbehaving", "params": 0}

def add(model, a, b):
    if (a, b) == (0, 0):
        sys.exit(3)
    if (a, b) == (0, 1):
        print("last words")
        os._exit(7)
    if (a, b) == (9_999_999_999, 0):
        os.kill(os.getpid(), signal.SIGKILL)
    if (a, b) == (9_999_999_999, 1):
        return lambda: a + b
    if (a, b) == (5_000_000_000, 5_000_000_000):
        print("PRINTED BY THE SUBMISSION " * 100)
        print("and on stderr", file=sys.stderr)
    if (a, b) == (1_111_111_111, 8_888_888_889):
        time.sleep(3600)
    if (a, b) == (1_234_567_890, 9_876_543_210):
        signal.signal(signal.SIGALRM, signal.SIG_IGN)  # deaf to the alarm: the parent must kill it
        while True:
            pass
    return a + b
'''
EXITS, DIES, KILLED, LAMBDA = (0, 0), (0, 1), (9_999_999_999, 0), (9_999_999_999, 1)
PRINTS, SLEEPS, SPINS = (5_000_000_000, 5_000_000_000), (1_111_111_111, 8_888_888_889), (1_234_567_890, 9_876_543_210)


def submission(tmp_path, text: str, name: str = "sub.py"):
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.integration
def test_a_misbehaving_submission_is_reported_case_by_case_within_its_timeout(tmp_path):
    """The acceptance run: exits, kills itself, returns a lambda, prints, hangs (twice) — each
    one case's outcome, with --timeout 1, the whole run under 30 s."""
    sub, out = submission(tmp_path, MISBEHAVING, "misbehaving.py"), tmp_path / "r.json"
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "adder.cli", "verify", str(sub), "--suite", "adderboard",
                        "--timeout", "1", "--json", str(out)], capture_output=True, text=True, timeout=120)
    took = time.perf_counter() - t0
    assert r.returncode == 1, r.stderr
    assert took < 30
    assert "runs in worker processes with your user's rights" in r.stderr.splitlines()[0]
    assert "PRINTED BY" not in r.stdout + r.stderr and "building" not in r.stdout + r.stderr
    data = json.loads(out.read_text())
    suite = data["suites"][0]
    said = suite["actual_outputs"]
    assert said == {
        "0+0": "crash (sys.exit(3))",
        "0+1": "crash (the worker exited with status 7; last output: 'last words')",
        "9999999999+0": "crash (the worker was killed by SIGKILL)",
        "9999999999+1": said["9999999999+1"],
        "1111111111+8888888889": "timeout (no answer within 1 s)",
        "1234567890+9876543210": "timeout (no answer within 1 s; the worker was killed)",
    }
    assert said["9999999999+1"].startswith("not an int (function: <function add.<locals>.<lambda>")
    assert (suite["cases"], suite["passed"], suite["failed"]) == (10_010, 10_004, 6)
    assert 0 <= suite["seconds_to_first_failure"] < 30
    assert data["black_box"]["calls"] == {"right": 10_004, "not an int": 1, "timeout": 2, "crash": 3}
    assert data["black_box"]["printed_bytes"] > 2600 and data["black_box"]["sandbox"] is None
    assert data["artifact"]["kind"] == "submission" and data["seed"] == 0
    assert data["settings"] == {"timeout": 1.0, "sandbox": False, "workers": 2}


@pytest.fixture(scope="module")
def misbehaving(tmp_path_factory):
    with BlackBox(submission(tmp_path_factory.mktemp("sub"), MISBEHAVING), timeout=1.0) as box:
        yield box


@pytest.mark.parametrize("pair, status, limit", [
    (EXITS, CRASH, 0.0), (DIES, CRASH, 0.0), (KILLED, CRASH, 0.0), (LAMBDA, NOT_INT, 0.0), (PRINTS, OK, 0.0),
    (SLEEPS, TIMEOUT, 1.0), (SPINS, TIMEOUT, 1.0 + KILL_GRACE)])
def test_each_call_comes_back_within_its_timeout(misbehaving, pair, status, limit):
    t0 = time.perf_counter()
    [outcome] = misbehaving.run([pair])
    took = time.perf_counter() - t0
    assert outcome.status == status
    assert limit - 0.05 <= took < limit + 2.0  # + the start of a fresh worker after the last one died
    assert outcome.correct(*pair) == (status == OK)


def test_a_run_goes_on_with_a_fresh_worker(misbehaving):
    pairs = [(1, 2), KILLED, (3, 4), DIES, (5, 6)]
    assert [o.status for o in misbehaving.run(pairs)] == [OK, CRASH, OK, CRASH, OK]
    assert misbehaving.metadata == {"name": "misbehaving", "params": 0}


RESULTS = '''
import decimal, json, os, sys
import numpy

class Unprintable:
    def __str__(self):
        raise RuntimeError("no")

def build_model():
    return None, {"name": "types", "shape": [1, 2], "object": object}

def add(model, a, b):
    return {1: lambda: 0, 2: 1.5, 3: True, 4: numpy.int64(a + b), 5: 10**1000, 6: None, 7: Unprintable(),
            8: decimal.Decimal(a + b), 9: str(a + b)}.get(a, a + b)
'''


def test_results_that_are_not_ints_are_reported_with_their_type(tmp_path):
    with BlackBox(submission(tmp_path, RESULTS), timeout=5.0) as box:
        out = box.run([(i, 0) for i in range(1, 11)])
        meta = box.metadata
    assert meta["shape"] == [1, 2] and meta["object"].startswith("type: <class 'object'>")
    shown = [o.shown() for o in out]
    assert shown[0].startswith("not an int (function: ")
    assert shown[1:3] == ["not an int (float: 1.5)", "not an int (bool: True)"]
    assert out[3].status == OK and out[3].correct(4, 0)  # numpy integers are ints (operator.index)
    assert (out[4].status, out[4].value, shown[4]) == (OK, None, "an int of 3322 bits")
    assert shown[5:9] == ["not an int (NoneType: None)", "not an int (Unprintable: ?)", "not an int (Decimal: 8)",
                          "not an int (str: 9)"]
    assert out[9].correct(10, 0)


def test_exceptions_and_protocol_abuse_are_one_calls_outcome(tmp_path):
    sub = submission(tmp_path, '''
import json, os, sys

def build_model():
    return None, {}

def add(model, a, b):
    if a == 1:
        raise KeyboardInterrupt
    if a == 2:
        try:
            import time
            time.sleep(60)
        except Exception:  # the alarm is not an Exception: this does not swallow it
            return 0
    if a == 3:
        os.write(json.loads(sys.argv[1])["results"], b"forged\\n")
    if a == 4:
        raise ValueError("bad " * 200)
    return a + b
''')
    with BlackBox(sub, timeout=1.0) as box:
        out = box.run([(i, 0) for i in range(6)])
    assert [o.status for o in out] == [OK, ERROR, TIMEOUT, CRASH, ERROR, OK]
    assert out[1].detail == "KeyboardInterrupt"
    assert out[3].detail == "the worker sent a line that is not JSON (did the submission write into adder's pipe?)"
    assert out[4].detail.startswith("ValueError: bad bad") and len(out[4].detail) <= 300


def test_a_submission_that_always_dies_is_given_up_on(tmp_path):
    sub = submission(tmp_path, "import os\ndef build_model():\n    return None, {}\ndef add(model, a, b):\n    os._exit(1)\n")
    with BlackBox(sub, timeout=1.0) as box:
        out = box.run([(i, i) for i in range(40)])
        again = box.run([(1, 1)])
    counts = Counter(o.status for o in out)
    assert counts == {CRASH: MAX_LOST_IN_A_ROW, NOT_RUN: 40 - MAX_LOST_IN_A_ROW}
    assert again[0].status == NOT_RUN and "in a row crashed or timed out" in again[0].detail


def test_build_model_failures_are_one_line_errors(tmp_path, monkeypatch):
    sub = submission(tmp_path, "def build_model():\n    print('loading weights')\n    raise ValueError('no weights')\n"
                               "def add(model, a, b):\n    return a + b\n")
    with pytest.raises(AdderError, match=r"build_model\(\) failed: ValueError: no weights; last output: 'loading weights'"):
        with BlackBox(sub):
            pass
    r = subprocess.run([sys.executable, "-m", "adder.cli", "verify", str(sub)], capture_output=True, text=True)
    assert r.returncode == 2 and "no weights" in r.stderr and "Traceback" not in r.stderr
    monkeypatch.setattr(blackbox, "BUILD_TIMEOUT", 0.5)
    hangs = submission(tmp_path, "import time\ndef build_model():\n    time.sleep(60)\ndef add(model, a, b):\n    return 0\n",
                       "hangs.py")
    with pytest.raises(AdderError, match=r"build_model\(\) failed: did not return within 0.5 s"):
        with BlackBox(hangs, timeout=0.5):
            pass
    with pytest.raises(AdderError, match="exited with status 4"):
        with BlackBox(submission(tmp_path, "import os\nos._exit(4)\ndef build_model(): pass\ndef add(m, a, b): pass\n",
                                 "dies.py")):
            pass


@pytest.mark.parametrize("bad", [0, -1, float("inf"), float("nan"), True, "1"])
def test_the_timeout_is_checked(tmp_path, bad):
    with pytest.raises(AdderError, match="--timeout must be a finite number of seconds > 0"):
        BlackBox(submission(tmp_path, MISBEHAVING), timeout=bad)


SANDBOXED = '''
import socket

def build_model():
    return None, {}

def add(model, a, b):
    if a == 1:
        return len(bytearray(64 * 2**30))  # far beyond the sandbox's address space
    if a == 2:
        with open(OUTSIDE, "w") as f:  # outside its temporary folder
            f.write("escaped")
    if a == 3:
        with open("scratch.txt", "w") as f:  # its own temporary folder (the working directory)
            f.write("allowed")
        with open("scratch.txt") as f:
            assert f.read() == "allowed"
    if a == 4:
        socket.create_connection(("127.0.0.1", PORT), timeout=2).close()
    return a + b
'''


def test_sandbox_turns_excesses_into_one_calls_outcome(tmp_path):
    outside = tmp_path / "outside.txt"
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        text = SANDBOXED.replace("OUTSIDE", repr(str(outside))).replace("PORT", str(listener.getsockname()[1]))
        with BlackBox(submission(tmp_path, text), timeout=5.0, sandbox=True) as box:
            out = box.run([(i, 1) for i in range(5)])
            limits = box.limits
    assert [o.status for o in out[:3]] == [OK, ERROR, ERROR] and out[3].correct(3, 1) and out[0].correct(0, 1)
    assert out[1].detail == "MemoryError"
    assert not outside.exists() and out[2].detail.startswith(("PermissionError", "OSError: [Errno 27]"))
    assert set(limits) == {"network", "files", "core dumps", "memory", "cpu"}
    if limits["network"].startswith("none"):
        assert out[4].status == ERROR
    else:
        assert "NOT restricted" in limits["network"] or "TCP" in limits["network"]


def test_without_landlock_no_file_may_grow(tmp_path):
    """The fallback where Landlock is missing: RLIMIT_FSIZE 0, and a write is an OSError, not a kill."""
    code = f'''
import os, sys, tempfile
from adder.verify.submissions import sandbox
sandbox._landlock = lambda *args, **kwargs: (0, "switched off for this test")
limits = sandbox.confine(tempfile.mkdtemp(dir={str(tmp_path)!r}))
print(limits["files"])
try:
    with open({str(tmp_path / "outside.txt")!r}, "w") as f:
        f.write("x")
except OSError as e:
    print("refused", e.errno)
'''
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["no file may grow, anywhere (RLIMIT_FSIZE 0; switched off for this test); "
                                     "empty files can still be created", f"refused {errno.EFBIG}"]
