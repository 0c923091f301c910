"""Confinement of a submission's worker process (`adder verify FILE.py --sandbox`), with what
the standard library and the OS provide: resource limits, a Linux network namespace, Landlock.

A worker calls `confine(workdir)` first thing, while it is still one thread (a new user
namespace and Landlock both need that), then `limit_memory()` once the heavy imports are done,
and `limit_cpu(seconds)` before each call. Each step that the OS refuses is skipped and said
so in the description `confine` returns; nothing here raises for an unsupported OS.

* no core dumps (RLIMIT_CORE 0);
* network: a new, empty network namespace (`unshare(CLONE_NEWNET)`, inside a new user namespace
  when not privileged); else, with Landlock ABI >= 4, TCP bind/connect denied; else none;
* files: with Landlock, nothing may be created, written, renamed or removed outside `workdir`
  (and /dev/null), and a file grows to at most `FILE_BYTES`; without Landlock no file may grow
  at all (RLIMIT_FSIZE 0). Writing past the limit fails with an OSError (SIGXFSZ is ignored);
* memory: address space limited to what the process maps after its imports plus `MEMORY_BYTES`;
* CPU: each call may use `seconds` of CPU time (RLIMIT_CPU; SIGXCPU ends the worker).

This file imports only the standard library: the worker loads it by path, without `adder`.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import math
import os
import resource
import signal

#: Bytes a file under the working folder may reach (RLIMIT_FSIZE) when Landlock confines writes.
FILE_BYTES = 64 * 2**20
#: Address space a worker may map beyond what it holds after importing torch.
MEMORY_BYTES = 2 * 2**30

# Linux ABI (uapi/linux/sched.h, prctl.h, landlock.h); the Landlock syscall numbers are the same on every architecture.
_CLONE_NEWUSER, _CLONE_NEWNET = 0x10000000, 0x40000000
_PR_SET_NO_NEW_PRIVS = 38
_SYS_CREATE_RULESET, _SYS_ADD_RULE, _SYS_RESTRICT_SELF = 444, 445, 446
_CREATE_RULESET_VERSION = 1
_RULE_PATH_BENEATH = 1
_FS_WRITE_FILE = 1 << 1
#: Every right that changes the file system (ABI 1), then REFER (ABI 2) and TRUNCATE (ABI 3).
_FS_CHANGES_ABI1 = sum(1 << bit for bit in (1, 4, 5, 6, 7, 8, 9, 10, 11, 12))
_FS_REFER, _FS_TRUNCATE = 1 << 13, 1 << 14
_NET_BIND_TCP, _NET_CONNECT_TCP = 1 << 0, 1 << 1
_LANDLOCK_NET_ABI = 4


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64)]


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def _libc():
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    except OSError:
        return None


def _errno_text() -> str:
    return os.strerror(ctypes.get_errno())


def _own_network(libc) -> str:
    """A new network namespace (only loopback, down): no network at all. '' when refused."""
    if libc is None or not hasattr(libc, "unshare"):
        return ""
    if libc.unshare(_CLONE_NEWNET) == 0:
        return "none (own network namespace)"
    uid, gid = os.getuid(), os.getgid()
    if libc.unshare(_CLONE_NEWUSER | _CLONE_NEWNET) != 0:
        return ""
    for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"), ("gid_map", f"{gid} {gid} 1")):
        try:  # keep the user's own ids inside the namespace (best effort: access checks use the real ids)
            with open(f"/proc/self/{name}", "w") as f:
                f.write(text)
        except OSError:
            pass
    return "none (own user and network namespace)"


def _landlock(libc, workdir: str, *, deny_tcp: bool) -> tuple[int, str]:
    """Allow file changes only under `workdir` (and writes to /dev/null); deny TCP if asked
    and supported. Returns (Landlock ABI or 0, why not)."""
    if libc is None or not hasattr(libc, "syscall"):
        return 0, "no libc syscall()"
    syscall = libc.syscall
    syscall.restype = ctypes.c_long
    abi = syscall(ctypes.c_long(_SYS_CREATE_RULESET), None, ctypes.c_size_t(0), ctypes.c_uint32(_CREATE_RULESET_VERSION))
    if abi < 1:
        return 0, f"Landlock not available ({_errno_text()})"
    changes = _FS_CHANGES_ABI1 | (_FS_REFER if abi >= 2 else 0) | (_FS_TRUNCATE if abi >= 3 else 0)
    attr = _RulesetAttr(changes, _NET_BIND_TCP | _NET_CONNECT_TCP if deny_tcp and abi >= _LANDLOCK_NET_ABI else 0)
    ruleset = syscall(ctypes.c_long(_SYS_CREATE_RULESET), ctypes.byref(attr), ctypes.c_size_t(ctypes.sizeof(attr)),
                      ctypes.c_uint32(0))
    if ruleset < 0:
        return 0, f"Landlock refused the ruleset ({_errno_text()})"
    try:
        for path, rights in ((workdir, changes), (os.devnull, _FS_WRITE_FILE | (_FS_TRUNCATE if abi >= 3 else 0))):
            fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            try:
                rule = _PathBeneath(rights, fd)
                if syscall(ctypes.c_long(_SYS_ADD_RULE), ctypes.c_int(ruleset), ctypes.c_int(_RULE_PATH_BENEATH),
                           ctypes.byref(rule), ctypes.c_uint32(0)) != 0:
                    return 0, f"Landlock refused a rule for {path} ({_errno_text()})"
            finally:
                os.close(fd)
        if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            return 0, f"prctl(NO_NEW_PRIVS) failed ({_errno_text()})"
        if syscall(ctypes.c_long(_SYS_RESTRICT_SELF), ctypes.c_int(ruleset), ctypes.c_uint32(0)) != 0:
            return 0, f"Landlock could not restrict the worker ({_errno_text()})"
    finally:
        os.close(ruleset)
    return abi, ""


def confine(workdir: str) -> dict[str, str]:
    """Confine this process (see the module docstring); call it while the process has one thread.
    Returns what is restricted, by resource, in words (for the report)."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    libc = _libc() if hasattr(os, "O_PATH") else None  # Linux only
    network = _own_network(libc)
    abi, why_not = _landlock(libc, workdir, deny_tcp=not network)
    if not network:
        network = ("TCP bind/connect denied (Landlock); other protocols NOT restricted" if abi >= _LANDLOCK_NET_ABI
                   else "NOT restricted (no network namespace or Landlock network rules here)")
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit is an OSError of that call, not a kill
    if abi:
        resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_BYTES, FILE_BYTES))
        files = f"created or changed only under the worker's temporary folder, each at most {FILE_BYTES // 2**20} MiB (Landlock)"
    else:
        resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
        files = f"no file may grow, anywhere (RLIMIT_FSIZE 0; {why_not}); empty files can still be created"
    return {"network": network, "files": files, "core dumps": "off"}


def address_space() -> int | None:
    """Bytes this process maps now (Linux /proc), or None where unknown."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return None


def limit_memory(extra: int = MEMORY_BYTES) -> str:
    """Cap the address space at what is mapped now plus `extra` bytes; say what was set."""
    now = address_space()
    if now is None:
        return "NOT restricted (address space unknown here)"
    cap = now + extra
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    return f"address space at most {cap / 2**30:.1f} GiB ({extra / 2**30:.0f} GiB beyond the worker's imports)"


def limit_cpu(seconds: float) -> None:
    """Let the process use at most `seconds` more CPU time (whole seconds, rounded up)."""
    use = resource.getrusage(resource.RUSAGE_SELF)
    soft = math.ceil(use.ru_utime + use.ru_stime + seconds)
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    resource.setrlimit(resource.RLIMIT_CPU, (soft if hard == resource.RLIM_INFINITY else min(soft, hard), hard))
