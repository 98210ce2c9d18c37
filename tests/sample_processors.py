"""Processors the tests name by import path (``sample_processors:...``).

``tests/`` is on ``sys.path`` under pytest; subprocess servers get it through
``PYTHONPATH``.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any


def flaky(item: Any, marker_dir: str, seconds: float = 0.0) -> Any:
    """Fail the first time an item is seen, succeed after: what ``retry`` is for."""
    time.sleep(seconds)
    marker = Path(marker_dir) / f"{item}.seen"
    if not marker.exists():
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
        raise RuntimeError(f"first attempt at {item} fails")
    return {"item": item, "pid": os.getpid()}


def unserialisable(item: Any) -> Any:
    """Return something JSON cannot encode for odd items."""
    return object() if item % 2 else item


def square(item: int) -> int:
    """CPU-light pure function, usable from worker processes."""
    return item * item


def pid_of_worker(item: Any) -> int:
    """The process id that ran the item."""
    return os.getpid()


def niceness(item: Any) -> int:
    """The scheduling niceness of the thread running the item (Linux: per thread)."""
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


def released(gate: str) -> int:
    """How many items the gate file at ``gate`` lets finish (0 while it does not exist)."""
    try:
        return int(Path(gate).read_text(encoding="utf-8") or 0)
    except (FileNotFoundError, ValueError):
        return 0


def gated(
    item: int, gate: str, seconds: float = 0.0, fail: Any = (), timeout: float = 300.0
) -> Any:
    """Sleep ``seconds``, then wait until the gate lets item ``item`` finish.

    The test that owns the gate file decides when items end (see
    ``tests/e2e/_lab.py:Gate``): item ``i`` finishes once the number in the file
    exceeds ``i``, so a job cannot run out before the test has done what it
    needs a running job for. Raises ``ValueError`` for items in ``fail``, like
    ``batch_widget.processors:sleep``; gives up after ``timeout`` seconds so an
    abandoned gate never holds a server thread for good.
    """
    time.sleep(seconds)
    deadline = time.monotonic() + timeout
    while released(gate) <= item:
        if time.monotonic() > deadline:
            raise TimeoutError(f"gate {gate} still closed for item {item} after {timeout} s")
        time.sleep(0.01)
    if item in fail:
        raise ValueError(f"item {item!r} was asked to fail")
    return item
