"""The CPU priority batch work runs at, below the server's event loop."""

from __future__ import annotations

import contextlib
import os
import threading

_NICENESS_STEP = 10


def batch_niceness() -> int:
    """The niceness batch work runs at: the server's (its main thread's) plus 10."""
    try:
        return min(19, os.getpriority(os.PRIO_PROCESS, os.getpid()) + _NICENESS_STEP)
    except (OSError, AttributeError):
        return _NICENESS_STEP


def yield_cpu() -> None:
    """Lower the calling thread's CPU priority so the server's event loop wins the CPU.

    On Linux ``setpriority`` with a thread id renices that thread alone. Batch
    work then fills idle cores without making JupyterLab sluggish.
    """
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), batch_niceness())
