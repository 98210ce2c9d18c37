"""What the manager keeps of each job (its Entry), and the small pieces it builds from that.

A job's :class:`Entry` (its stored row, rate meter and current run), its
snapshot, what its counters say about item counts, and the store-write retry
the manager's state changes go through.
"""

from __future__ import annotations

import dataclasses
import logging
import operator
import secrets
import time
from collections import Counter
from collections.abc import Callable, Container, Iterable
from datetime import datetime, timezone

from batch_widget.engine.pacing import RateMeter
from batch_widget.engine.runner import JobRun
from batch_widget.engine.store import JobRow
from batch_widget.engine.validation import JobSpec
from batch_widget.engine.worker import OutcomeRow
from batch_widget.protocol import ItemStatus, JobStatus, Snapshot, StoreIOError, StoreLost

__all__ = [
    "Entry",
    "counted",
    "log_recovered",
    "new_id",
    "new_row",
    "now_iso",
    "persist",
    "snapshot_of",
    "tally",
]

#: Seconds between two tries of a store write that failed.
WRITE_RETRY_PAUSE = 0.2


@dataclasses.dataclass
class Entry:
    """One job as the manager holds it."""

    row: JobRow
    meter: RateMeter = dataclasses.field(default_factory=RateMeter)
    run: JobRun | None = None
    #: ``(version, total)``: a finished job's count of outputs at that version, so that
    #: paging through them (``GET .../outputs``) counts them once, not once a page.
    outputs_total: tuple[int, int] | None = None
    #: Items of the running job that wait for another attempt, as last committed.
    retrying: int = 0


_status_of = operator.itemgetter(0)  #: an outcome's status, read in C


def counted(row: JobRow, status: ItemStatus | None) -> int | None:
    """How many items have ``status``, from the job's counters; None when they do not say."""
    if status is None:
        return row.total
    if status is ItemStatus.DONE:
        return row.done
    if status is ItemStatus.FAILED:
        return row.failed
    return None


def new_id(taken: Container[str]) -> str:
    """A fresh job id: 12 hex digits, URL-safe, not in ``taken``."""
    while True:
        job_id = secrets.token_hex(6)
        if job_id not in taken:
            return job_id


def new_row(job_id: str, spec: JobSpec, total: int) -> JobRow:
    """A new queued job's row (the store gives it its key)."""
    return JobRow(
        key=0,
        id=job_id,
        name=spec.name,
        processor=spec.label,
        callable_size=None if spec.pickled is None else len(spec.pickled),
        params=spec.params_json,
        max_workers=spec.max_workers,
        executor=spec.executor,
        status=JobStatus.QUEUED,
        total=total,
        version=1,
        created_at=now_iso(),
        retries=spec.retries,
        retry_delay=spec.retry_delay,
        retry_on=spec.retry_on,
    )


def tally(outcomes: Iterable[OutcomeRow]) -> tuple[int, int]:
    """How many of a batch of worker outcomes are ``done`` and how many ``failed``."""
    counts = Counter(map(_status_of, outcomes))
    return counts[ItemStatus.DONE.value], counts[ItemStatus.FAILED.value]


def log_recovered(log: logging.Logger, interrupted: list[str], completed: list[str]) -> None:
    """Say what a server start found of the jobs the previous server left unfinished."""
    if interrupted:
        log.warning(
            "%d job(s) were unfinished when the server stopped and are now interrupted: %s",
            len(interrupted),
            ", ".join(interrupted),
        )
    if completed:
        log.info(
            "%d job(s) had run every item when the server stopped and are now completed: %s",
            len(completed),
            ", ".join(completed),
        )


def now_iso() -> str:
    """The current UTC time in ISO 8601, to the millisecond."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def snapshot_of(entry: Entry) -> Snapshot:
    """The job's snapshot: its row, plus the pending count, rate and ETA."""
    row = entry.row
    pending = row.total - row.done - row.failed
    active = not row.status.terminal
    rate = entry.meter.rate
    eta = pending / rate if active and rate else None
    run = entry.run if active else None
    workers = run.pool_workers() if run is not None else None
    return {
        "id": row.id,
        "name": row.name,
        "processor": row.processor,
        "executor": row.executor,
        "workers": workers,
        "status": row.status.value,
        "total": row.total,
        "done": row.done,
        "failed": row.failed,
        "pending": pending,
        "version": row.version,
        "created_at": row.created_at,
        "started_at": row.started_at,
        "finished_at": row.finished_at,
        "rate": rate,
        "eta": eta,
        "error": row.error,
        "logs_cut": row.logs_cut,
        "retrying": entry.retrying if run is not None else 0,
    }


def persist(write: Callable[[], object], timeout: float, log: logging.Logger) -> None:
    """Run a store write, retrying a failing disk for up to ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    warned = False
    while True:
        try:
            write()
        except StoreLost:
            raise
        except StoreIOError as exc:
            if time.monotonic() >= deadline:
                raise
            if not warned:
                log.warning("%s; retrying for up to %.0f s", exc, timeout)
                warned = True
            time.sleep(WRITE_RETRY_PAUSE)
        else:
            return
