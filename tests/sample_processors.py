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


def spin(item: Any, seconds: float = 0.05) -> Any:
    """Burn ``seconds`` of CPU in pure Python, holding the GIL as numeric loops do."""
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass
    return item


def sized_result(size: int) -> str:
    """A result of ``size`` characters (its JSON adds two quotes)."""
    return "r" * size
