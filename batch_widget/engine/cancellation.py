"""How a run stops: the reason it ended and the cancel flag its workers read."""

from __future__ import annotations

import enum
import threading
import time
from typing import Any


class RunEnd(enum.Enum):
    """How a run stopped."""

    FINISHED = "finished"
    CANCELLED = "cancelled"
    STOPPED = "stopped"


class CancelFlag:
    """A stop request visible to worker threads and, when needed, worker processes."""

    def __init__(self) -> None:
        self.thread_event = threading.Event()
        self.process_event: Any = None
        self.reason: RunEnd | None = None
        self.set_at: float | None = None

    def set(self, reason: RunEnd) -> None:
        """Ask the run to start no more items (the first reason given wins)."""
        if self.reason is None:
            self.reason = reason
            self.set_at = time.monotonic()
        self.thread_event.set()
        if self.process_event is not None:
            self.process_event.set()

    def is_set(self) -> bool:
        """True once a stop was asked."""
        return self.thread_event.is_set()
