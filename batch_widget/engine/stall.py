"""The stall warning: the first clue to a stuck job in the server's log."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence


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
