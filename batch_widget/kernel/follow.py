"""Kernel side: follow one job to its end, as ``Job.wait`` and the widget's kernel feed do.

One loop for both, so the widget's feed and ``wait()`` recover the same way: the job's
event stream, filtered to the job, is read until a terminal snapshot; a stream that
drops is reopened from its last event id; after ``STREAM_FAILURES_BEFORE_POLLING``
failures in a row the job is polled every ``POLL_INTERVAL`` instead. The loop never
depends on a widget: every snapshot it fetches or hears goes to its ``on_snapshot``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any, cast

from batch_widget.kernel.client import Client, ServerUnreachable
from batch_widget.protocol import DELETED, BatchError, JobNotFound, JobStatus, Snapshot

__all__ = [
    "POLL_INTERVAL",
    "STREAM_FAILURES_BEFORE_POLLING",
    "STREAM_READ_TIMEOUT",
    "JobFollower",
    "deadline_after",
]

POLL_INTERVAL = 1.0  # seconds between polls once the event stream has failed
STREAM_READ_TIMEOUT = 40.0  # > the default 15 s heartbeat: silence this long means a dead stream
STREAM_FAILURES_BEFORE_POLLING = 3
_JOB_EVENTS = frozenset({"progress", "complete", DELETED})


class JobFollower:
    """Follows one job on one server until it ends.

    Parameters
    ----------
    client
        The server the job lives on.
    job_id
        The job.
    on_snapshot
        Called with every snapshot of the job fetched or heard, the first fetch too.

    Attributes
    ----------
    last : Snapshot or None
        The newest snapshot the follower has seen (what a deleted job was last).
    """

    def __init__(
        self,
        client: Client,
        job_id: str,
        on_snapshot: Callable[[Snapshot], None] | None = None,
    ) -> None:
        self.client = client
        self.job_id = job_id
        self.last: Snapshot | None = None
        self._on_snapshot = on_snapshot

    def until_end(self, deadline: float | None = None) -> Snapshot | None:
        """Block until the job reaches a terminal state and return that snapshot.

        Parameters
        ----------
        deadline : float, optional
            A ``time.monotonic()`` instant to give up at (see :func:`deadline_after`);
            None follows for ever.

        Returns
        -------
        Snapshot or None
            The terminal snapshot, or None if ``deadline`` passed first.

        Raises
        ------
        JobNotFound
            If the job is deleted (or was never on this server).
        """
        last_event_id: str | None = None
        failures = 0
        while True:
            snap = self._terminal_snapshot()
            if snap is not None:
                return snap
            if _expired(deadline):
                return None
            if failures >= STREAM_FAILURES_BEFORE_POLLING:
                _sleep(POLL_INTERVAL, deadline)
                continue
            try:
                snap, last_event_id, heard = self._follow_stream(deadline, last_event_id)
            except JobNotFound:
                raise  # deleted while we waited: nothing more will come
            except (BatchError, OSError):  # refused, reset, silent, or an error status
                failures += 1
                _sleep(POLL_INTERVAL, deadline)
                continue
            if snap is not None:
                return snap
            failures = 0 if heard else failures + 1

    def _keep(self, snapshot: Snapshot) -> Snapshot:
        self.last = snapshot
        if self._on_snapshot is not None:
            self._on_snapshot(snapshot)
        return snapshot

    def _follow_stream(
        self, deadline: float | None, last_event_id: str | None
    ) -> tuple[Snapshot | None, str | None, bool]:
        """Read the filtered stream until a terminal snapshot, the deadline, or a drop.

        Returns
        -------
        tuple
            The terminal snapshot (or None), the last event id, and whether any
            event arrived (a stream that closes at once counts as failing).
        """
        heard = False
        read_timeout = max(0.05, _remaining(deadline, STREAM_READ_TIMEOUT))
        events = self.client.events([self.job_id], last_event_id, timeout=read_timeout)
        with contextlib.closing(events):
            try:
                for event in events:
                    heard = True
                    last_event_id = event.id or last_event_id
                    snap = self._snapshot_from(event.event, event.json())
                    if snap is not None and JobStatus(snap["status"]).terminal:
                        return snap, last_event_id, heard
                    if _expired(deadline):
                        break
            except TimeoutError:
                if not _expired(deadline):
                    raise  # a stream silent for longer than heartbeats allow has failed
        return None, last_event_id, heard

    def _snapshot_from(self, kind: str, payload: Any) -> Snapshot | None:
        """Keep ``payload`` as the latest snapshot if it is a job event about this job.

        Raises
        ------
        JobNotFound
            If the event says the job was deleted.
        """
        if kind not in _JOB_EVENTS or not isinstance(payload, dict):
            return None
        if payload.get("id") != self.job_id:
            return None
        if kind == DELETED:
            raise JobNotFound(self.job_id)
        return self._keep(cast(Snapshot, payload))

    def _terminal_snapshot(self) -> Snapshot | None:
        """Poll the job once; return the snapshot if terminal, None if active or unreachable."""
        try:
            snap = self._keep(self.client.get(self.job_id))
        except ServerUnreachable:
            return None
        return snap if JobStatus(snap["status"]).terminal else None


def deadline_after(timeout: float | None) -> float | None:
    """The ``time.monotonic()`` instant ``timeout`` seconds from now (None: no deadline)."""
    return None if timeout is None else time.monotonic() + timeout


def _sleep(seconds: float, deadline: float | None) -> None:
    time.sleep(max(0.0, min(seconds, _remaining(deadline, seconds))))


def _remaining(deadline: float | None, default: float) -> float:
    if deadline is None:
        return default
    return max(0.0, min(default, deadline - time.monotonic()))


def _expired(deadline: float | None) -> bool:
    return deadline is not None and time.monotonic() >= deadline
