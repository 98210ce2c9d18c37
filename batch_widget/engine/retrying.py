"""A job's retry policy, and the items of a run that wait for their next attempt.

See docs/configuration.md (``retries``, ``retry_delay``, ``retry_on``).
"""

from __future__ import annotations

import dataclasses
import heapq
import random
from collections.abc import Sequence

#: The longest wait before a re-run, however many attempts came before.
MAX_RETRY_DELAY = 60.0
#: How far a wait is randomised either way, so re-runs of many items spread out.
JITTER = 0.25
#: What ``retry_on`` matches for a worker that died with the item in it.
WORKER_DIED = ("WorkerDied",)

Item = tuple[int, str]


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """How often, how soon and on what a failed item runs again."""

    retries: int = 0
    delay: float = 1.0
    #: Exception class names retried (matched against the whole class hierarchy); None: any.
    retry_on: tuple[str, ...] | None = None

    def retries_after(self, attempts: int, error_types: Sequence[str]) -> bool:
        """True if an item whose attempt number ``attempts`` failed with ``error_types`` reruns."""
        if attempts > self.retries:
            return False
        return self.retry_on is None or any(name in self.retry_on for name in error_types)

    def wait_before(self, attempt: int, rand: random.Random) -> float:
        """Seconds before attempt ``attempt`` (2 for the first re-run): doubling, capped, ±25 %."""
        base = min(MAX_RETRY_DELAY, self.delay * 2 ** max(0, attempt - 2))
        return float(base * rand.uniform(1 - JITTER, 1 + JITTER))


class RetryQueue:
    """Items waiting for their next attempt, earliest due first (used by one run's thread)."""

    def __init__(self) -> None:
        self._due: list[tuple[float, int, str]] = []

    def __len__(self) -> int:
        return len(self._due)

    def add(self, due: float, item: Item) -> None:
        """Run ``item`` again at ``due`` (a ``time.monotonic()`` reading)."""
        heapq.heappush(self._due, (due, item[0], item[1]))

    def next_due(self) -> float | None:
        """When the earliest waiting item is due, or None when none waits."""
        return self._due[0][0] if self._due else None

    def take_due(self, now: float, limit: int) -> list[Item]:
        """Up to ``limit`` items due at ``now``, in index order."""
        taken: list[Item] = []
        while self._due and self._due[0][0] <= now and len(taken) < limit:
            _, index, raw = heapq.heappop(self._due)
            taken.append((index, raw))
        return sorted(taken)

    def clear(self) -> None:
        """Forget every waiting item (a stop: they stay pending in the store)."""
        self._due.clear()
