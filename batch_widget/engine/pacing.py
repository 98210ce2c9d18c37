"""How a run paces itself: chunk sizes from the items' durations, and the rate."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Sequence

from batch_widget.engine.worker import DURATION, OutcomeRow

_MAX_CHUNK = 4096
_RATE_WINDOW = 10.0


class ChunkSizer:
    """Pick chunk sizes so one chunk takes about ``target`` seconds."""

    def __init__(self, target: float) -> None:
        self.target = target
        self.item_seconds: float | None = None

    def observe(self, outcomes: Sequence[OutcomeRow]) -> None:
        """Fold the durations of a finished chunk into the estimate."""
        durations = [d for o in outcomes if (d := o[DURATION]) is not None]
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
