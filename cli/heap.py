"""Keep freed memory in the process's heap instead of handing it back to the system at once.

Why: a batched forward pass makes and frees thousands of tensors of a few megabytes. glibc's
malloc serves the large ones with fresh mmaps and unmaps them when freed, and trims the top of
its heap as soon as it can, so the next batch faults the same pages in again: `adder verify
wonderfall121 --adversarial` spent 8.7 of its 35.1 s in the kernel doing that, tinyadder36's
(float64, 35 MB score tensors) about half its time (2026-12-07, one thread). Here every block
comes from the heap (no mmap), and the heap is neither trimmed nor grown in small steps: 0.2 s
of system time, 27.8 s in all; tinyadder36 108 s. Only where memory comes from changes, not
what is computed: every result is the same bit for bit. The price: the process keeps its peak
heap until it exits (wonderfall121 456 MB either way; tinyadder36 1.4 GB instead of ~1.0), which
suits a command that exits. Raising the mmap threshold is not enough: glibc caps it at 32 MiB.
"""

from __future__ import annotations

import ctypes
import sys

#: mallopt's parameter numbers (glibc malloc.h)
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_MAX = -1, -2, -4
#: no block from mmap; never trim the heap's top; grow it 256 MiB at a time
SETTINGS = ((M_MMAP_MAX, 0), (M_TRIM_THRESHOLD, 2**31 - 1), (M_TOP_PAD, 256 << 20))


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
