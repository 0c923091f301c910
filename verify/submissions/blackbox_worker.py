"""The worker process that runs one AdderBoard submission for `blackbox.py`.

Started by `BlackBox` as `python -c BOOT CONFIG` (see `blackbox.py`), it loads this file by
path, so the submission runs in an interpreter that has not imported `adder`. With
`sandbox`, it confines itself first (`sandbox.py`, loaded the same way) and reports the
limits before the submission's code runs. Then it imports the file, calls `build_model()`,
and answers batches of calls: the parent writes one JSON line `[[a, b], ...]` to the
`requests` pipe, the worker writes one JSON line `[status, value, detail]` per call to the
`results` pipe as soon as it has it, so the parent always knows which call is running.

Everything sent is JSON, never pickle: the parent reads these messages without trusting them.
Each call is timed by an alarm (`CallTimeout`, a BaseException, so a submission's own
`except Exception` does not swallow it); the parent kills the worker if the alarm does not
work. A result that is not an integer is reported with its type; `sys.exit()` is a crash.

Imports only the standard library (and, in the sandbox, torch if installed, before the memory
limit is set); the parent pins torch to one thread through OMP_NUM_THREADS.
"""

from __future__ import annotations

import importlib.util
import json
import operator
import os
import signal
from pathlib import Path

#: What one call came to (the statuses `blackbox.Outcome` holds).
OK, ERROR, TIMEOUT, CRASH, NOT_INT = "ok", "error", "timeout", "crash", "not an int"
#: The worker's start-up messages: the sandbox's limits, then ready (with the metadata) or failed.
LIMITS, READY, FAILED = "sandbox", "ready", "build failed"
#: Written to stderr before each call, so that the parent can tell which call printed what
#: (ASCII record separator; the parent removes it from the output).
CALL_MARK = b"\x1e"
#: Characters of a message or a value's text sent back.
DETAIL_CHARS = 300
#: Bits beyond which a returned integer is described instead of sent (a sum needs 35).
MAX_BITS = 256


class CallTimeout(BaseException):
    """The per-call alarm went off."""


def _alarm(signum, frame):
    raise CallTimeout


def short(text: str, n: int = DETAIL_CHARS) -> str:
    """`text` on one line, at most `n` characters."""
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 1] + "…"


def describe(value) -> str:
    """`type: text` of anything, even an object whose str() fails."""
    try:
        text = str(value)
    except BaseException:  # noqa: BLE001 — the submission's object, the submission's failure
        text = "?"
    return short(f"{type(value).__name__}: {text}" if text else type(value).__name__)


def judge(value) -> tuple[str, int | None, str]:
    """A call's return value as (status, the int or None, detail)."""
    if isinstance(value, bool):
        return NOT_INT, None, describe(value)
    try:
        number = operator.index(value)
    except TypeError:
        return NOT_INT, None, describe(value)
    if number.bit_length() > MAX_BITS:
        return OK, None, f"an int of {number.bit_length()} bits"
    return OK, number, ""


def call(add, model, a: int, b: int, timeout: float) -> tuple[str, int | None, str]:
    """One timed call of the submission's `add`, as (status, value, detail)."""
    try:
        signal.setitimer(signal.ITIMER_REAL, timeout)
        try:
            return judge(add(model, a, b))
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    except CallTimeout:
        return TIMEOUT, None, f"no answer within {timeout:g} s"
    except SystemExit as e:
        return CRASH, None, short(f"sys.exit({e.code!r})")
    except BaseException as e:  # noqa: BLE001 — a submission's error is a result, not the worker's crash
        return ERROR, None, describe(e)


def metadata(meta) -> dict:
    """build_model()'s metadata as JSON-safe values (anything else as text)."""
    try:
        items = dict(meta).items()
    except BaseException:  # noqa: BLE001
        return {"metadata": describe(meta)}
    out = {}
    for k, v in items:
        try:
            json.dumps(v)
            out[short(k, 80)] = v
        except BaseException:  # noqa: BLE001
            out[short(k, 80)] = describe(v)
    return out


def _sibling(name: str):
    """A standard-library-only module next to this file, loaded by path."""
    spec = importlib.util.spec_from_file_location(f"adder_blackbox_{name}", Path(__file__).with_name(f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(config: dict) -> None:
    results, requests, timeout = config["results"], config["requests"], config["timeout"]

    def send(*message) -> None:
        os.write(results, (json.dumps(message) + "\n").encode())

    sandbox = _sibling("sandbox") if config["sandbox"] else None
    if sandbox:
        limits = sandbox.confine(config["workdir"])
        try:  # the memory limit counts from what a torch submission maps anyway
            import torch  # noqa: F401
        except ImportError:
            pass
        limits["memory"] = sandbox.limit_memory()
        limits["cpu"] = f"{timeout:g} s of CPU time per call (whole seconds, rounded up)"
        send(LIMITS, limits)
        sandbox.limit_cpu(config["build_timeout"])
    signal.signal(signal.SIGALRM, _alarm)
    try:
        signal.setitimer(signal.ITIMER_REAL, config["build_timeout"])
        try:
            spec = importlib.util.spec_from_file_location("submission", config["submission"])
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            model, meta = module.build_model()
            add = module.add
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    except CallTimeout:
        send(FAILED, f"did not return within {config['build_timeout']:g} s")
        return
    except BaseException as e:  # noqa: BLE001
        send(FAILED, describe(e))
        return
    send(READY, metadata(meta))
    with os.fdopen(requests, "rb") as calls:
        for line in calls:
            for a, b in json.loads(line):
                if sandbox:
                    sandbox.limit_cpu(timeout)
                os.write(2, CALL_MARK)
                send(*call(add, model, a, b, timeout))
