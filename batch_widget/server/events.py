"""The broadcaster: event ids, subscribers, catch-up and heartbeats (docs/http-api.md).

The shape is tornado's ``demos/chat``: a bounded record of what was sent plus a
cursor. Here the record keeps the newest event per job, which is all a client
needs to catch up after ``Last-Event-ID`` (a snapshot brings it fully up to
date), and a subscriber keeps at most the newest undelivered event per job, so
a slow client costs memory bounded by the number of jobs, never by time.

Everything here runs on the IOLoop thread: worker threads hand snapshots over
through ``IOLoop.add_callback`` (the job manager does that) before
:meth:`Broadcaster.publish` is called.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from tornado import locks
from tornado.ioloop import PeriodicCallback
from tornado.util import TimeoutError as TornadoTimeoutError

from batch_widget.engine.settings import DEFAULTS
from batch_widget.protocol import DELETED, JobStatus, Snapshot

#: The seq part of an event id: ASCII digits that fit in 18 places.
_SEQ = re.compile(r"[0-9]{1,18}")

__all__ = [
    "Broadcaster",
    "Event",
    "Subscriber",
    "format_event",
    "format_heartbeat",
    "format_retry",
]

PROGRESS = "progress"
COMPLETE = "complete"
HEARTBEAT = "heartbeat"

#: How many jobs' newest events the catch-up record keeps; older ids then get a
#: full catch-up instead of a diff.
DEFAULT_MAX_TRACKED_JOBS = 10_000


@dataclass(frozen=True)
class Event:
    """One job event as it goes on the wire.

    Attributes
    ----------
    id : str
        ``<epoch>-<seq>``; the client echoes it back as ``Last-Event-ID``.
    seq : int
        The sequence number inside the epoch.
    name : str
        ``complete`` for a terminal snapshot, ``progress`` otherwise.
    snapshot : Snapshot
        The job snapshot the event carries.
    """

    id: str
    seq: int
    name: str
    snapshot: Snapshot

    @property
    def job_id(self) -> str:
        """The id of the job this event is about."""
        return self.snapshot["id"]


def event_name(snapshot: Snapshot) -> str:
    """Return ``complete`` for a terminal snapshot, ``deleted`` for a deleted job's
    farewell, ``progress`` for any other."""
    if snapshot["status"] == DELETED:
        return DELETED
    try:
        terminal = JobStatus(snapshot["status"]).terminal
    except ValueError:
        terminal = False
    return COMPLETE if terminal else PROGRESS


def format_retry(delay_ms: int) -> str:
    """Return the ``retry:`` line that opens a stream."""
    return f"retry: {int(delay_ms)}\n\n"


def format_event(event_id: str | None, name: str, data: object) -> str:
    """Return one SSE message (``id:``, ``event:``, ``data:`` lines and a blank line)."""
    lines = [] if event_id is None else [f"id: {event_id}"]
    lines.append(f"event: {name}")
    # json.dumps never emits a raw newline, so the data fits on one line.
    lines.append(f"data: {json.dumps(data, separators=(',', ':'))}")
    return "\n".join(lines) + "\n\n"


def format_heartbeat(epoch: str, now: float | None = None) -> str:
    """Return a heartbeat message: no id, so it never moves the client's cursor."""
    stamp = time.time() if now is None else now
    return format_event(None, HEARTBEAT, {"time": stamp, "epoch": epoch})


def new_epoch() -> str:
    """Return a URL-safe epoch without ``-``: start time in hex plus random hex."""
    return f"{int(time.time() * 1000):x}{secrets.token_hex(4)}"


class Subscriber:
    """One SSE stream's mailbox: newest pending event per job plus a heartbeat flag.

    Parameters
    ----------
    number : int
        A per-broadcaster serial, for logs.
    job_ids : frozenset of str or None
        The jobs this stream covers; None for all.
    """

    def __init__(self, number: int, job_ids: frozenset[str] | None) -> None:
        self.number = number
        self.job_ids = job_ids
        self.closed = False
        self.close_reason: str | None = None
        self.heartbeat_pending = False
        self._pending: dict[str, Event] = {}
        self._undelivered_since: float | None = None
        self._wakeup = locks.Event()

    def __repr__(self) -> str:
        jobs = "all" if self.job_ids is None else ",".join(sorted(self.job_ids))
        return f"<Subscriber #{self.number} jobs={jobs}>"

    def wants(self, job_id: str) -> bool:
        """Return whether this stream covers ``job_id``."""
        return self.job_ids is None or job_id in self.job_ids

    @property
    def pending_count(self) -> int:
        """How many job events wait for delivery (at most one per job)."""
        return len(self._pending)

    @property
    def has_data(self) -> bool:
        """True when an event or a heartbeat waits for delivery."""
        return bool(self._pending) or self.heartbeat_pending

    def stalled_for(self, now: float) -> float:
        """Seconds data has waited undelivered (0 when nothing waits)."""
        if self._undelivered_since is None:
            return 0.0
        return now - self._undelivered_since

    def offer(self, event: Event) -> None:
        """Queue ``event``, replacing an older pending one of the same job."""
        if self.closed:
            return
        self._pending.pop(event.job_id, None)
        self._pending[event.job_id] = event
        self._mark_undelivered()

    def offer_heartbeat(self) -> None:
        """Ask for a heartbeat to be written."""
        if self.closed:
            return
        self.heartbeat_pending = True
        self._mark_undelivered()

    def take(self) -> tuple[list[Event], bool]:
        """Hand over the pending events (oldest first) and the heartbeat flag."""
        events = sorted(self._pending.values(), key=lambda e: e.seq)
        heartbeat = self.heartbeat_pending
        self._pending = {}
        self.heartbeat_pending = False
        self._undelivered_since = None
        if not self.closed:
            self._wakeup.clear()
        return events, heartbeat

    async def wait(self, timeout: float | None = None) -> bool:
        """Wait until data is pending or the subscriber is closed.

        Returns
        -------
        bool
            True when woken (data or closed), False when ``timeout`` ran out.
        """
        if self.has_data or self.closed:
            return True
        try:
            if timeout is None:
                await self._wakeup.wait()
            else:
                await self._wakeup.wait(timeout=timedelta(seconds=timeout))
        except TornadoTimeoutError:
            return False
        return True

    def close(self, reason: str) -> None:
        """Mark closed (the first reason wins) and wake the stream so it can end."""
        if not self.closed:
            self.closed = True
            self.close_reason = reason
        self._pending = {}
        self._wakeup.set()

    def _mark_undelivered(self) -> None:
        if self._undelivered_since is None:
            self._undelivered_since = time.monotonic()
        self._wakeup.set()


class Broadcaster:
    """Fan job snapshots out to SSE subscribers, with catch-up and heartbeats.

    Parameters
    ----------
    heartbeat_interval : float
        Seconds between heartbeats offered to every subscriber.
    sse_timeout : float
        Seconds a subscriber may leave data undelivered before it is dropped.
    log : logging.Logger or None
        Where to log; the Jupyter server's logger when run as an extension.
    max_tracked_jobs : int
        How many jobs' newest events are kept to answer :meth:`changed_since`.
    """

    def __init__(
        self,
        *,
        heartbeat_interval: float = DEFAULTS.heartbeat_interval,
        sse_timeout: float = DEFAULTS.sse_timeout,
        log: logging.Logger | None = None,
        max_tracked_jobs: int = DEFAULT_MAX_TRACKED_JOBS,
    ) -> None:
        if heartbeat_interval <= 0 or sse_timeout <= 0 or max_tracked_jobs < 1:
            msg = "heartbeat_interval, sse_timeout and max_tracked_jobs must be positive"
            raise ValueError(msg)
        self.heartbeat_interval = float(heartbeat_interval)
        self.sse_timeout = float(sse_timeout)
        self.log = log or logging.getLogger("batch_widget")
        self.epoch = new_epoch()
        self._max_tracked_jobs = max_tracked_jobs
        self._seq = 0
        # Newest event per job, least recently changed first.
        self._latest: OrderedDict[str, Event] = OrderedDict()
        # Ids at or below this seq may have lost their job's entry to eviction.
        self._forgotten_seq = 0
        self._subscribers: dict[int, Subscriber] = {}
        self._numbers = 0
        self._heartbeat: PeriodicCallback | None = None
        self._sweeper: PeriodicCallback | None = None

    # -- lifecycle ---------------------------------------------------------

    @property
    def running(self) -> bool:
        """True between :meth:`start` and :meth:`stop`."""
        return self._heartbeat is not None

    def start(self) -> None:
        """Start the heartbeat and the stall sweep (on the IOLoop thread; idempotent)."""
        if self.running:
            return
        self._heartbeat = PeriodicCallback(self.send_heartbeat, self.heartbeat_interval * 1000)
        self._sweeper = PeriodicCallback(self._sweep, self._sweep_interval() * 1000)
        self._heartbeat.start()
        self._sweeper.start()

    def stop(self) -> None:
        """Stop the timers and close every subscriber so its stream ends."""
        for timer in (self._heartbeat, self._sweeper):
            if timer is not None:
                timer.stop()
        self._heartbeat = self._sweeper = None
        for sub in list(self._subscribers.values()):
            sub.close("server stopping")
        self._subscribers.clear()

    def _sweep_interval(self) -> float:
        return max(0.05, min(1.0, self.sse_timeout / 4))

    # -- publishing --------------------------------------------------------

    @property
    def current_id(self) -> str:
        """The id of the newest event (``<epoch>-0`` before the first)."""
        return f"{self.epoch}-{self._seq}"

    def publish(self, snapshot: Snapshot) -> str:
        """Record ``snapshot`` as a new event and offer it to every subscriber.

        Call on the IOLoop thread only.

        Returns
        -------
        str
            The event id, ``<epoch>-<seq>``.
        """
        self._seq += 1
        event = Event(
            id=f"{self.epoch}-{self._seq}",
            seq=self._seq,
            name=event_name(snapshot),
            snapshot=snapshot,
        )
        self._remember(event)
        for sub in self._subscribers.values():
            if sub.wants(event.job_id):
                sub.offer(event)
        return event.id

    def _remember(self, event: Event) -> None:
        self._latest.pop(event.job_id, None)
        self._latest[event.job_id] = event
        while len(self._latest) > self._max_tracked_jobs:
            _, evicted = self._latest.popitem(last=False)
            self._forgotten_seq = max(self._forgotten_seq, evicted.seq)

    def changed_since(
        self, last_event_id: str | None, job_ids: Iterable[str] | None = None
    ) -> list[Event] | None:
        """Return the newest event of every covered job that changed after an id.

        Parameters
        ----------
        last_event_id : str or None
            The client's ``Last-Event-ID``.
        job_ids : iterable of str or None
            The jobs the stream covers; None for all.

        Returns
        -------
        list of Event or None
            Oldest first. None when the id is missing, malformed, from another
            epoch or too old to answer: the caller then sends the current
            snapshots of all active jobs (and every filtered job).
        """
        seq = self.parse_id(last_event_id)
        if seq is None or seq < self._forgotten_seq:
            return None
        wanted = None if job_ids is None else frozenset(job_ids)
        return [
            event
            for event in self._latest.values()
            if event.seq > seq and (wanted is None or event.job_id in wanted)
        ]

    def parse_id(self, event_id: str | None) -> int | None:
        """Return the seq of an id of this epoch, or None for any other id."""
        if not event_id:
            return None
        epoch, sep, seq_text = event_id.strip().rpartition("-")
        # ASCII digits, and few of them: "²".isdigit() is true and int() refuses it,
        # and a 5,000-digit number is no seq this server ever sent.
        if not sep or epoch != self.epoch or not _SEQ.fullmatch(seq_text):
            return None
        seq = int(seq_text)
        return seq if seq <= self._seq else None

    # -- subscribers -------------------------------------------------------

    @property
    def subscriber_count(self) -> int:
        """How many streams are subscribed."""
        return len(self._subscribers)

    def subscribe(self, job_ids: Iterable[str] | None = None) -> Subscriber:
        """Register a stream covering ``job_ids`` (None or empty: every job)."""
        wanted = frozenset(job_ids) if job_ids else None
        self._numbers += 1
        sub = Subscriber(self._numbers, wanted)
        self._subscribers[sub.number] = sub
        self.log.debug(
            "SSE subscriber %s connected (%s subscribers)",
            sub,
            self.subscriber_count,
        )
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        """Forget ``sub`` and close it (idempotent)."""
        sub.close("unsubscribed")
        if self._subscribers.pop(sub.number, None) is not None:
            self.log.debug(
                "SSE subscriber %s disconnected (%s subscribers)",
                sub,
                self.subscriber_count,
            )

    def send_heartbeat(self) -> None:
        """Offer a heartbeat to every subscriber."""
        for sub in self._subscribers.values():
            sub.offer_heartbeat()

    def _sweep(self) -> None:
        # PeriodicCallback wants a callback returning None; drop_stalled returns the dropped.
        self.drop_stalled()

    def drop_stalled(self) -> list[Subscriber]:
        """Drop every subscriber whose data waited longer than ``sse_timeout``."""
        now = time.monotonic()
        stalled = [
            sub for sub in self._subscribers.values() if sub.stalled_for(now) > self.sse_timeout
        ]
        for sub in stalled:
            self.drop(sub, f"it took no data for more than {self.sse_timeout:g} s")
        return stalled

    def drop(self, sub: Subscriber, reason: str) -> None:
        """Close and forget ``sub``, logging ``reason`` at WARNING."""
        if sub.number not in self._subscribers:
            return
        self.log.warning("dropping SSE subscriber %s: %s", sub, reason)
        sub.close(reason)
        self._subscribers.pop(sub.number, None)
