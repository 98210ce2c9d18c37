"""Publishing snapshots from job threads to subscribers on an event loop.

The manager hands every snapshot to an :class:`Outbox` from whatever thread
made it; the outbox hops to the loop's thread with ``add_callback`` (the one
thread-safe entry point of a tornado ``IOLoop``) and publishes there. A
terminal snapshot whose publishing fails is retried, unless a newer version of
its job has been published meanwhile.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

from batch_widget.engine.settings import Settings
from batch_widget.protocol import DELETED, JobStatus, Snapshot


class Publisher(Protocol):
    """Where snapshots go; ``publish`` is called on the event loop's thread only and may raise."""

    def publish(self, snapshot: Snapshot) -> object:
        """Send ``snapshot`` to every interested subscriber."""


class EventLoop(Protocol):
    """The loop publishing runs on; tornado's ``IOLoop`` is one.

    ``add_callback`` is the one method any thread may call.
    """

    def add_callback(self, callback: Callable[..., object], *args: Any) -> None:
        """Run ``callback(*args)`` on the loop's thread soon; safe from any thread."""

    def call_later(self, delay: float, callback: Callable[..., object], *args: Any) -> object:
        """Run ``callback(*args)`` on the loop's thread after ``delay`` seconds."""


class Outbox:
    """Deliver snapshots to a publisher on an event loop, retrying a job's last one.

    ``current_version(job_id)`` gives the job's newest version, or None once it
    is forgotten: a retry of an older snapshot is dropped.
    """

    def __init__(
        self,
        publisher: Publisher | None,
        settings: Settings,
        current_version: Callable[[str], int | None],
        log: logging.Logger,
        loop: EventLoop | None = None,
    ) -> None:
        self.publisher = publisher
        #: Set once the loop runs (``JobManager.start``); until then nothing is published.
        self.loop = loop
        self.settings = settings
        self.current_version = current_version
        self.log = log

    def publish(self, snapshot: Snapshot) -> None:
        """Queue ``snapshot`` for the loop; any thread may call this."""
        if self.publisher is None or self.loop is None:
            return
        try:
            self.loop.add_callback(self._deliver, snapshot, 0)
        except RuntimeError:  # the loop is closed: the server is gone, nobody is listening
            self.log.debug("dropped an event for job %s: loop closed", snapshot["id"])

    def _deliver(self, snapshot: Snapshot, attempt: int) -> None:
        assert self.publisher is not None
        assert self.loop is not None
        if attempt and self._superseded(snapshot):
            return
        try:
            self.publisher.publish(snapshot)
        except Exception as exc:
            retries, delay = (
                self.settings.completion_broadcast_retries,
                self.settings.broadcast_retry_delay,
            )
            terminal = _is_last_word(snapshot)
            if terminal and attempt < retries:
                self.log.warning(
                    "broadcasting %s of job %s failed (attempt %d of %d): %r; retrying in %ss",
                    snapshot["status"],
                    snapshot["id"],
                    attempt + 1,
                    retries + 1,
                    exc,
                    delay,
                )
                self.loop.call_later(delay, self._deliver, snapshot, attempt + 1)
            else:
                self.log.warning(
                    "broadcasting %s of job %s failed, giving up: %r; clients catch up by polling",
                    snapshot["status"],
                    snapshot["id"],
                    exc,
                )

    def _superseded(self, snapshot: Snapshot) -> bool:
        if snapshot["status"] == DELETED:
            return False  # nothing comes after it
        version = self.current_version(snapshot["id"])
        return version is None or version > snapshot["version"]


def _is_last_word(snapshot: Snapshot) -> bool:
    """True for the snapshots worth retrying: a job's end, or its deletion."""
    status = snapshot["status"]
    return status == DELETED or JobStatus(status).terminal
