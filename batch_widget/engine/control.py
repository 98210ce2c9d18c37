"""What a job run paces and stops itself by: chunk sizes, the rate, the cancel
flag, the stall warning and the workers' niceness."""

from __future__ import annotations

import contextlib
import enum
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Iterable, Sequence
from typing import Any

from batch_widget.engine.worker import Outcome

_MAX_CHUNK = 4096
_RATE_WINDOW = 10.0
_NICENESS_STEP = 10


class RunEnd(enum.Enum):
    """How a run stopped."""

    FINISHED = "finished"
    CANCELLED = "cancelled"
    STOPPED = "stopped"


class ChunkSizer:
    """Pick chunk sizes so one chunk takes about ``target`` seconds."""

    def __init__(self, target: float) -> None:
        self.target = target
        self.item_seconds: float | None = None

    def observe(self, outcomes: Sequence[Outcome]) -> None:
        """Fold the durations of a finished chunk into the estimate."""
        durations = [o.duration for o in outcomes if o.duration is not None]
        if not durations:
            return
        mean = sum(durations) / len(durations)
        previous = self.item_seconds
        self.item_seconds = mean if previous is None else 0.7 * previous + 0.3 * mean

    def size(self, undispatched: int, workers: int) -> int:
        """The next chunk size: small for slow items, large for fast ones, balanced at the end."""
        if self.item_seconds is None:
            wanted = 1
        else:
            wanted = int(self.target / max(self.item_seconds, 1e-7))
        fair_share = max(1, undispatched // workers)
        return max(1, min(wanted, _MAX_CHUNK, fair_share))


class RateMeter:
    """Items per second over the last few seconds."""

    def __init__(self) -> None:
        self._samples: deque[tuple[float, int]] = deque()
        self.rate: float | None = None

    def reset(self, count: int) -> None:
        """Start measuring from ``count`` attempted items."""
        self._samples.clear()
        self._samples.append((time.monotonic(), count))
        self.rate = None

    def record(self, count: int) -> None:
        """Note that ``count`` items have now been attempted."""
        now = time.monotonic()
        self._samples.append((now, count))
        while len(self._samples) > 2 and now - self._samples[1][0] >= _RATE_WINDOW:
            self._samples.popleft()
        first_time, first_count = self._samples[0]
        # No rate until an item of this run has ended: "0.0 items/s" right after
        # a start or a Retry says nothing true.
        if now - first_time > 0 and (count > first_count or self.rate is not None):
            self.rate = (count - first_count) / (now - first_time)


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


class StallWatch:
    """Warn when no chunk has finished for a while: the first clue to a stuck job."""

    def __init__(self, after: float, job_id: str, log: logging.Logger) -> None:
        self.after = after
        self.job_id = job_id
        self.log = log
        self.progressed()

    def progressed(self) -> None:
        """Note that a chunk just finished."""
        self.last = time.monotonic()
        self.next_warning = self.last + self.after

    def check(self, running: Iterable[Sequence[tuple[int, str]]]) -> None:
        """Log a WARNING naming the running items if nothing finished for ``after`` seconds."""
        now = time.monotonic()
        if now < self.next_warning:
            return
        self.next_warning = now + self.after
        indexes = sorted(chunk[0][0] for chunk in running if chunk)
        shown = ", ".join(map(str, indexes[:10])) + (", ..." if len(indexes) > 10 else "")
        self.log.warning(
            "job %s: no item has finished for %.1f s; %d chunk(s) still running, "
            "starting at item index(es) %s. A processor may be hung: see "
            "GET api/batch/jobs/%s/items?status=running",
            self.job_id,
            now - self.last,
            len(indexes),
            shown,
            self.job_id,
        )
