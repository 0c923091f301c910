"""Keep freed memory in the process's heap instead of handing it back to the system at once.

Why: a batched forward pass makes and frees thousands of tensors of a few megabytes. glibc's
malloc trims the top of its heap (and unmaps large blocks) as soon as they are freed, so the
next batch faults the same pages in again: `adder verify wonderfall121 --adversarial` spent 7.7
of its 33.5 s in the kernel doing that (2026-12-07, one thread). With blocks up to 32 MiB served
from the heap (glibc's largest mmap threshold), a trim threshold of 2 GiB and a top pad of 256 MiB
the heap keeps them: 0.3 s of system time, 26.0 s in all, peak memory 452 -> 478 MB. All three
are set: setting any one stops glibc's own adaptive threshold, and the mmap threshold alone
does not keep the heap's top. Only where memory comes from changes, not what is computed: every result is the
same bit for bit. The price is that the process keeps its peak heap until it exits, which
suits a command that exits.
"""

from __future__ import annotations

import ctypes
import sys

#: mallopt's parameter numbers (glibc malloc.h)
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
SETTINGS = ((M_MMAP_THRESHOLD, 32 << 20), (M_TRIM_THRESHOLD, 2**31 - 1), (M_TOP_PAD, 256 << 20))


def keep_freed_memory() -> bool:
    """Ask glibc to keep freed memory for reuse; True if it agreed (False elsewhere: other C
    libraries and platforms are left as they are)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return all([bool(mallopt(param, value)) for param, value in SETTINGS])
