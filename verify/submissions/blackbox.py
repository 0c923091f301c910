"""Run an AdderBoard submission file as a black box: `build_model()` once per worker, then
`add(model, a, b)` once per case, each call with a timeout.

The file never runs in the calling process. `BlackBox` starts worker processes
(`blackbox_worker.py`; two by default, one per core), each in its own session with its stdout
and stderr captured through a pipe (never mixed into the report), and deals them batches of
`BATCH` calls. A worker answers each call as soon as it has it, so the parent always knows
which call is running, and one call's trouble stays that call's outcome:

* a wrong answer, an exception, or a result that is not an int (a lambda, a float): reported
  with its type, and the worker goes on;
* no answer within `timeout` seconds: the worker's alarm makes it a timeout; if the call
  ignores the alarm, the parent kills the worker `KILL_GRACE` seconds later;
* the worker dies (`sys.exit()`, `os._exit`, a signal, a sandbox limit): a crash of the call
  that was running, with the tail of what the worker printed; a fresh worker takes the rest
  of its batch.

After `MAX_LOST_IN_A_ROW` calls in a row crashed or timed out, the remaining cases are not
run (outcome "not run"), so a submission that always dies cannot hold a run for hours. With
`sandbox=True` the workers confine themselves (`sandbox.py`) in a temporary working folder.
Workers speak JSON (`blackbox_worker.py`); nothing they send is unpickled here.
"""

from __future__ import annotations

import json
import math
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .blackbox_worker import CALL_MARK, CRASH, ERROR, FAILED, LIMITS, NOT_INT, OK, READY, TIMEOUT, short
from ...compiler.errors import AdderError
from ...compiler.pysource import read_python, top_level_names

#: Seconds a call may take unless told otherwise (`adder verify --timeout`).
DEFAULT_TIMEOUT = 10.0
#: Worker processes (one per core of the 2-core machines this was measured on).
WORKERS = 2
#: Calls dealt to a worker at once; it answers them one by one.
BATCH = 50
#: Seconds the file's import and `build_model()` may take, at least (the call timeout if larger).
BUILD_TIMEOUT = 60.0
#: Seconds a worker may take to start Python and import torch, before the file is loaded.
START_ALLOWANCE = 60.0
#: Seconds the parent waits, past a call's timeout, for the worker's own alarm before killing it.
KILL_GRACE = 0.5
#: Calls in a row that crashed or timed out, after which the remaining cases are not run.
MAX_LOST_IN_A_ROW = 10
#: Bytes of a call's output kept, and characters of it shown with a crash.
OUTPUT_KEPT, TAIL_CHARS = 4096, 200
#: Calls whose output a worker's parent keeps at most (the running one, and any the worker ran ahead).
KEPT_CALLS = 4
#: The call number of what a worker prints while loading the file and running build_model().
STARTUP = -1
#: The outcome of a case that was never called.
NOT_RUN = "not run"
#: Outcomes that cost a timeout or a fresh worker.
LOST = (CRASH, TIMEOUT)
STATUSES = (OK, ERROR, TIMEOUT, CRASH, NOT_INT)
#: Longest message line a worker may send.
MAX_LINE = 2**20
_READ = 2**16

#: The worker's command line: load blackbox_worker.py by path (not through `adder`) with the
#: caller's sys.path, and run it.
BOOT = ("import importlib.util as u, json, sys; c = json.loads(sys.argv[1]); sys.path[:] = c['path']; "
        "s = u.spec_from_file_location('adder_blackbox_worker', c['worker']); m = u.module_from_spec(s); "
        "s.loader.exec_module(m); m.main(c)")
WORKER_FILE = Path(__file__).with_name("blackbox_worker.py")


@dataclass(frozen=True)
class Outcome:
    """What one call of `add` came to: `status` (one of STATUSES, or NOT_RUN), the int it
    returned (None unless ok; None too when it was too large to send), a detail (message,
    type, how the worker died and what it printed last), and when it came (perf_counter)."""

    status: str
    value: int | None = None
    detail: str = ""
    at: float = 0.0

    def correct(self, a: int, b: int) -> bool:
        return self.status == OK and self.value == a + b

    def shown(self) -> int | str:
        """The submission's answer as a report shows it."""
        if self.status == OK:
            return self.value if self.value is not None else self.detail
        return f"{self.status} ({self.detail})" if self.detail else self.status


def check_submission(path: Path) -> None:
    """One-line errors for a file that is missing, not Python, or lacks the two functions."""
    if not path.exists():
        raise AdderError(f"no submission file at {path}")
    names = top_level_names(read_python(path))
    missing = [f for f in ("build_model", "add") if f not in names]
    if missing:
        raise AdderError(f"{path} defines no {' and no '.join(missing)}(); an AdderBoard submission needs "
                         "build_model() -> (model, metadata) and add(model, a, b) -> int")


def check_timeout(seconds: float) -> float:
    """The per-call timeout, if it is a finite number of seconds > 0."""
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not (math.isfinite(seconds) and seconds > 0):
        raise AdderError(f"--timeout must be a finite number of seconds > 0, got {seconds!r}")
    return float(seconds)


def how_it_ended(returncode: int) -> str:
    """'was killed by SIGKILL', 'exited with status 3'."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"was killed by {name}" + (" (CPU time limit)" if name == "SIGXCPU" else "")
    return f"exited with status {returncode}"


class _Garbled(Exception):
    """A worker sent something that is not a message of the protocol."""


class _Worker:
    """One worker process and the parent's ends of its pipes: requests (write), results and
    output (read, non-blocking)."""

    def __init__(self, config: dict, cwd: str | None, env: dict):
        req_r, self.requests = os.pipe()
        self.results, res_w = os.pipe()
        self.output, out_w = os.pipe()
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", BOOT, json.dumps({**config, "requests": req_r, "results": res_w})],
                stdin=subprocess.DEVNULL, stdout=out_w, stderr=out_w, pass_fds=(req_r, res_w), cwd=cwd, env=env,
                start_new_session=True)
        except BaseException:
            self.close()
            raise
        finally:
            for fd in (req_r, res_w, out_w):
                os.close(fd)
        os.set_blocking(self.results, False)
        os.set_blocking(self.output, False)
        self.since = time.perf_counter()  # start, last batch sent or last answer
        self.ready = False
        self.calls: list[int] = []  # the cases of the batch dealt, while not all are answered
        self.batch_done = 0  # how many of them are
        self.answered = 0  # calls answered in the worker's life; the running call is number `answered`
        self.printed: dict[int, bytearray] = {STARTUP: bytearray()}  # call number -> the end of its output
        self._marks = STARTUP  # the call whose output is arriving
        self._pending = b""

    @property
    def running(self) -> int | None:
        """The case whose call is running, if any."""
        return self.calls[self.batch_done] if self.batch_done < len(self.calls) else None

    def deal(self, calls: list[int], pairs: list[tuple[int, int]]) -> bool:
        """Send a batch; False if the worker is gone (the batch stays undealt)."""
        try:
            os.write(self.requests, (json.dumps([pairs[i] for i in calls]) + "\n").encode())
        except (BrokenPipeError, OSError):
            return False
        self.calls, self.batch_done, self.since = calls, 0, time.perf_counter()
        return True

    def read(self) -> tuple[list[list | _Garbled], bool]:
        """The complete messages that have arrived (a `_Garbled` in place of one that is not a
        message, and nothing after it), and whether the worker closed its end."""
        try:
            chunk = os.read(self.results, _READ)
        except BlockingIOError:
            return [], False
        self._pending += chunk
        *lines, self._pending = self._pending.split(b"\n")
        messages: list[list | _Garbled] = []
        for line in lines:
            try:
                message = json.loads(line)
            except ValueError:
                return [*messages, _Garbled("a line that is not JSON")], not chunk
            if not (isinstance(message, list) and message and isinstance(message[0], str)):
                return [*messages, _Garbled("a message of the wrong shape")], not chunk
            messages.append(message)
        if len(self._pending) > MAX_LINE:
            messages.append(_Garbled("a message line too long"))
        return messages, not chunk

    def drain(self) -> int:
        """Read what the worker printed so far, split by call at its CALL_MARKs; return how
        many bytes the submission printed."""
        got = 0
        while True:
            try:
                chunk = os.read(self.output, _READ)
            except (BlockingIOError, OSError):
                break
            if not chunk:
                break
            first, *rest = chunk.split(CALL_MARK)
            got += len(chunk) - len(rest)
            self.printed.setdefault(self._marks, bytearray()).extend(first)
            for part in rest:
                self._marks += 1
                self.printed[self._marks] = bytearray(part)
            for call in [c for c in self.printed if STARTUP < c < self.answered]:
                del self.printed[call]  # answered calls; the start-up and the running call stay
            while len(self.printed) > KEPT_CALLS:
                del self.printed[max(self.printed)]
            for text in self.printed.values():
                del text[:-OUTPUT_KEPT]
        return got

    def tail(self, call: int) -> str:
        """'; last output: ...' (the end of what call number `call` printed), or ''."""
        text = self.printed.get(call, b"").decode(errors="replace").strip()
        return f"; last output: {text[-TAIL_CHARS:]!r}" if text else ""

    def stop(self, wait: float = 0.0) -> str:
        """End the worker and anything it started (its whole session), after letting it end by
        itself for `wait` seconds; say how it ended. It is reaped only after the kill, so its
        process group cannot be another's by then."""
        until = time.monotonic() + wait
        while time.monotonic() < until and not self._exited():
            time.sleep(0.01)
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        return how_it_ended(self.proc.wait())

    def _exited(self) -> bool:
        """Has the worker exited? (Not reaped where the OS can tell without; else reaped.)"""
        if hasattr(os, "waitid"):
            return os.waitid(os.P_PID, self.proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
        return self.proc.poll() is not None

    def close(self) -> None:
        for fd in (self.requests, self.results, self.output):
            try:
                os.close(fd)
            except OSError:
                pass


class BlackBox:
    """A submission file run in worker processes. Use as a context manager:

        with BlackBox(path, timeout=1.0) as box:
            box.metadata                    # what build_model() returned as metadata
            outcomes = box.run(pairs)       # one Outcome per (a, b)

    `limits` is what the sandbox restricts (None without it); `printed_bytes` is how much
    the submission printed (captured, not shown)."""

    def __init__(self, path: Path, *, timeout: float = DEFAULT_TIMEOUT, sandbox: bool = False, workers: int = WORKERS):
        check_submission(path)
        self.path = Path(path)
        self.timeout = check_timeout(timeout)
        self.build_timeout = max(BUILD_TIMEOUT, self.timeout)
        self.sandbox = sandbox
        self.n_workers = workers
        self.metadata: dict | None = None
        self.limits: dict | None = None
        self.gave_up: str | None = None  # why the remaining cases are not run
        self.printed_bytes = 0
        self._workers: list[_Worker] = []
        self._selector = selectors.DefaultSelector()
        self._dir: str | None = None
        self._lost_in_a_row = 0
        self._todo: deque[list[int]] = deque()
        self._results: list[Outcome | None] = []

    # ------------------------------------------------------------------ workers
    def __enter__(self) -> "BlackBox":
        try:
            if self.sandbox:
                self._dir = tempfile.mkdtemp(prefix="adder-submission-")
            for _ in range(self.n_workers):
                self._start()
            while not all(w.ready for w in self._workers):
                self._pump()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc) -> None:
        for w in list(self._workers):
            self._retire(w)
        if self._dir:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def _start(self) -> _Worker:
        config = {"path": sys.path, "worker": str(WORKER_FILE), "submission": str(self.path.resolve()),
                  "timeout": self.timeout, "build_timeout": self.build_timeout, "sandbox": self.sandbox,
                  "workdir": self._dir}
        # unbuffered: what it prints before dying reaches the pipe; one torch thread per worker
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        if self._dir:
            env.update(TMPDIR=self._dir, HOME=self._dir)
        w = _Worker(config, self._dir, env)
        self._selector.register(w.results, selectors.EVENT_READ, (w, "results"))
        self._selector.register(w.output, selectors.EVENT_READ, (w, "output"))
        self._workers.append(w)
        return w

    def _deadline(self, w: _Worker) -> float:
        if not w.ready:
            return w.since + START_ALLOWANCE + self.build_timeout
        return w.since + self.timeout + KILL_GRACE if w.running is not None else math.inf

    def _retire(self, w: _Worker, wait: float = 0.0) -> str:
        """Stop a worker, keep what it printed last, forget it; say how it ended."""
        self._selector.unregister(w.results)
        self._selector.unregister(w.output)
        self._workers.remove(w)
        ended = w.stop(wait)
        self.printed_bytes += w.drain()
        w.close()
        return ended

    def _lose(self, w: _Worker, status: str, detail: str, wait: float = 0.0) -> int:
        """The worker is gone (died, hung, or garbled): blame the running call, start a fresh
        worker for the rest of the batch; return 1 if a call was blamed."""
        ended = self._retire(w, wait)
        detail = detail or f"the worker {ended}"
        if not w.ready:
            raise AdderError(f"{self.path}: loading the file or build_model() failed: {detail}{w.tail(STARTUP)}")
        case = w.running
        if case is not None:
            self._record(case, Outcome(status, None, detail + w.tail(w.answered), time.perf_counter()))
            if w.batch_done + 1 < len(w.calls):
                self._todo.appendleft(w.calls[w.batch_done + 1:])
        if self.gave_up is None:
            self._start()
        return int(case is not None)

    def _record(self, case: int, outcome: Outcome) -> None:
        self._results[case] = outcome
        self._lost_in_a_row = self._lost_in_a_row + 1 if outcome.status in LOST else 0
        if self._lost_in_a_row >= MAX_LOST_IN_A_ROW and self.gave_up is None:
            self.gave_up = f"{MAX_LOST_IN_A_ROW} calls in a row crashed or timed out; the remaining cases were not run"

    def _message(self, w: _Worker, message: list) -> int:
        """Act on one message; return 1 if it answered a call."""
        kind, *rest = message
        if not w.ready:
            if kind == LIMITS and rest and isinstance(rest[0], dict) and self.limits is None:
                self.limits = {short(k, 40): short(v) for k, v in rest[0].items()}
            elif kind == READY and rest and isinstance(rest[0], dict):
                w.ready = True
                self.metadata = self.metadata if self.metadata is not None else rest[0]
            elif kind == FAILED and rest:
                self.printed_bytes += w.drain()
                raise AdderError(f"{self.path}: loading the file or build_model() failed: {short(rest[0])}"
                                 f"{w.tail(STARTUP)}")
            elif kind != LIMITS:
                raise _Garbled(f"an unexpected {kind!r} while starting")
            return 0
        if kind not in STATUSES or len(rest) != 2 or w.running is None:
            raise _Garbled(f"an unexpected {kind!r}")
        value, detail = rest
        if not (value is None or (isinstance(value, int) and not isinstance(value, bool))) or not isinstance(detail, str):
            raise _Garbled("a malformed answer")
        if kind == CRASH:
            self.printed_bytes += w.drain()
            detail += w.tail(w.answered)
        case = w.running
        w.batch_done += 1
        w.answered += 1
        w.since = time.perf_counter()
        if w.batch_done == len(w.calls):
            w.calls, w.batch_done = [], 0
        self._record(case, Outcome(kind, value, short(detail, 2 * TAIL_CHARS), w.since))
        return 1

    def _pump(self) -> int:
        """Wait for the next messages or deadline, act on them; return how many calls were answered."""
        soonest = min((self._deadline(w) for w in self._workers), default=math.inf)
        answered = 0
        for key, _ in self._selector.select(min(1.0, max(0.0, soonest - time.perf_counter()))):
            w, pipe = key.data
            if self.gave_up is not None:
                return answered
            if w not in self._workers:
                continue
            if pipe == "output":
                self.printed_bytes += w.drain()
                continue
            messages, closed = w.read()
            try:
                for message in messages:
                    if isinstance(message, _Garbled):
                        raise message
                    answered += self._message(w, message)
            except _Garbled as e:
                answered += self._lose(w, CRASH, f"the worker sent {e} (did the submission write into adder's pipe?)")
                continue
            if closed:
                answered += self._lose(w, CRASH, "", wait=1.0)
        now = time.perf_counter()
        for w in [w for w in self._workers if self._deadline(w) < now]:
            if self.gave_up is not None:
                break
            if not w.ready:
                self._lose(w, CRASH, f"no answer within {START_ALLOWANCE + self.build_timeout:g} s")
            else:
                answered += self._lose(w, TIMEOUT, f"no answer within {self.timeout:g} s; the worker was killed")
        return answered

    # ------------------------------------------------------------------ calls
    def run(self, pairs: list[tuple[int, int]], progress: Callable[[int], None] | None = None) -> list[Outcome]:
        """Call `add` on every pair; `progress(n)` hears of every n calls answered."""
        self._results = [None] * len(pairs)
        self._todo = deque(list(range(i, min(i + BATCH, len(pairs)))) for i in range(0, len(pairs), BATCH))
        while self.gave_up is None and (self._todo or any(w.calls for w in self._workers)):
            for w in self._workers:
                if w.ready and not w.calls and self._todo:
                    batch = self._todo.popleft()
                    if not w.deal(batch, pairs):
                        self._todo.appendleft(batch)
            done = self._pump()
            if progress and done:
                progress(done)
        if self.gave_up is not None:
            for w in [w for w in self._workers if w.calls]:  # the calls still running are abandoned
                self._retire(w)
            skipped = Outcome(NOT_RUN, None, self.gave_up, time.perf_counter())
            missing = [i for i, r in enumerate(self._results) if r is None]
            for i in missing:
                self._results[i] = skipped
            if progress and missing:
                progress(len(missing))
        return self._results
