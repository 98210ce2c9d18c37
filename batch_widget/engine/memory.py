"""Make the server process give big freed buffers back to the operating system.

glibc's ``malloc`` serves a request of 128 KiB or more with a mapping of its
own, unmapped when freed, but each time such a block is freed it raises that
threshold to the block's size (up to 32 MiB). After the first big request, the
next buffers of tens of megabytes (a request carrying a pickled function, the
function loaded to run it, a page of big results) are carved from heaps glibc
rarely returns, so the server's resident memory keeps the high-water mark of
every burst. Measured with ten jobs whose functions captured 20 MB each: +318 MB
that stayed, against +30 MB with the threshold fixed at 1 MiB
(``tests/test_memory.py``).

Fixing the threshold (``mallopt(M_MMAP_THRESHOLD)``, as the documented
``MALLOC_MMAP_THRESHOLD_`` environment variable does) turns that adjustment
off. See mallopt(3).
"""

from __future__ import annotations

import ctypes
import os
import platform

_M_MMAP_THRESHOLD = -3  # from glibc's <malloc.h>
_ENV_THRESHOLD = "MALLOC_MMAP_THRESHOLD_"


def fix_mmap_threshold(threshold: int) -> str:
    """Have glibc map blocks of ``threshold`` bytes or more on their own.

    Returns what happened, for the log: a threshold the environment set wins,
    and other C libraries (macOS, Windows, musl) are left alone.
    """
    if threshold <= 0:
        return "left as it is (malloc_mmap_threshold is 0)"
    if os.environ.get(_ENV_THRESHOLD):
        return f"left to {_ENV_THRESHOLD}={os.environ[_ENV_THRESHOLD]}"
    if platform.libc_ver()[0] != "glibc":
        return "left as it is (not glibc)"
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError) as exc:
        return f"left as it is ({exc})"
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    if not mallopt(_M_MMAP_THRESHOLD, threshold):
        return "left as it is (mallopt refused)"
    return f"fixed at {threshold} bytes"
