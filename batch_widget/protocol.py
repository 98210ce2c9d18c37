"""What the engine, the server and the kernel agree on: job states, snapshots, errors.

Job and item states, the job snapshot, item records, the domain errors, and the
one table between those errors and HTTP statuses: the server answers with it,
the kernel's client inverts it. This module imports nothing but the standard
library, so every part of the package can use it.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from types import MappingProxyType
from typing import Any, TypedDict


class _Named(str, Enum):
    """A str enum that prints as its value: ``print(job.status)`` shows ``completed``."""

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)


class JobStatus(_Named):
    """A job's state. ``retry`` takes a terminal job back to QUEUED.

    ``str()`` and f-strings give the value (``completed``), as snapshots do.
    """

    QUEUED = "queued"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"

    @property
    def terminal(self) -> bool:
        """True for the states a job ends in."""
        return self in TERMINAL_STATES


TERMINAL_STATES = frozenset(
    {JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.INTERRUPTED}
)
ACTIVE_STATES = frozenset({JobStatus.QUEUED, JobStatus.PROCESSING})

#: The status of the last event a job gets, once it is deleted: the job's last
#: snapshot with this status and the next version, sent as a ``deleted`` SSE
#: event. Not a job state: ``GET`` answers 404 for a deleted job.
DELETED = "deleted"

#: The batch server's runtime file (docs/batch-server.md), in the Jupyter runtime dir:
#: ``{"url", "token", "pid", ...}``, readable by its user alone.
RUNTIME_FILE = "batch_widget-server.json"


class ItemStatus(_Named):
    """An item's state in the job's ledger."""

    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


class Snapshot(TypedDict):
    """A job's state and counts: every API answer and job event carries one."""

    id: str
    name: str
    processor: str
    #: The worker pool the job runs on: "thread", "process" or "dask".
    executor: str
    #: While it runs: its pool's workers, or the Dask cluster's workers; else None.
    workers: int | None
    status: str
    total: int
    done: int
    failed: int
    pending: int
    version: int
    created_at: str | None
    started_at: str | None
    finished_at: str | None
    rate: float | None
    eta: float | None
    error: str | None
    #: True once later items' logs were dropped: the job's logs reached max_job_log_bytes.
    logs_cut: bool
    #: Items that failed and wait for another attempt (they count in ``pending``).
    retrying: int


class ItemRecord(TypedDict):
    """One row of ``GET api/batch/jobs/{id}/items``."""

    index: int
    input: Any
    status: str
    result: Any
    error: str | None
    traceback: str | None
    duration: float | None
    #: What the item printed and logged while it ran (its first 64 KiB), or None.
    log: str | None
    #: How many times the item started (its retries included).
    attempts: int


class ItemError(TypedDict):
    """One entry of ``Job.errors()``."""

    index: int
    input: Any
    error: str | None
    traceback: str | None
    log: str | None
    #: How many times the item ran before it stayed failed.
    attempts: int


# --------------------------------------------------------------------------- errors


class BatchError(Exception):
    """Base class of every error batch_widget raises on purpose.

    ``status_code`` is the HTTP status the error travels as: the server answers
    a domain error with it (see :data:`HTTP_STATUS`), and an error a client
    built from an answer keeps the status it received. Errors that only the
    kernel raises (no server found or reachable, a failed wait) have none.
    """

    _received_status: int | None = None

    @property
    def status_code(self) -> int | None:
        """The HTTP status of this error, or None for an error that never travels."""
        if self._received_status is not None:
            return self._received_status
        return http_status(type(self))


class InvalidRequest(BatchError):
    """The request is malformed: bad items, params, processor path, ... (400)."""


class PermissionDenied(BatchError):
    """The processor is outside ``allowed_processors``, or callables are off (403)."""


class JobNotFound(BatchError):
    """No job has this id (404)."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"no job with id {job_id!r}")
        self.job_id = job_id


class JobStateConflict(BatchError):
    """The action does not fit the job's state, e.g. cancelling a finished job (409)."""


class StoreUnavailable(BatchError):
    """The job store cannot serve this request right now (503)."""


class StoreIOError(StoreUnavailable):
    """Reading or writing the store failed (disk full, file locked or read-only); it may pass."""


class StoreLost(StoreUnavailable):
    """The store file was deleted or replaced while the server ran; it will not come back."""


class StoreInUse(StoreUnavailable):
    """Another server owns the job store; this one must not touch its jobs."""


#: The one table between domain errors and HTTP statuses. A subclass travels as
#: its nearest listed ancestor; a client turns a status back into the first
#: class listed for it.
HTTP_STATUS: Mapping[type[BatchError], int] = MappingProxyType(
    {
        InvalidRequest: 400,
        PermissionDenied: 403,
        JobNotFound: 404,
        JobStateConflict: 409,
        StoreUnavailable: 503,
    }
)


def http_status(cls: type) -> int | None:
    """The HTTP status an error of class ``cls`` is answered with; None if it never travels."""
    for base in cls.__mro__:
        status = HTTP_STATUS.get(base)
        if status is not None:
            return status
    return None


def error_from_status(status: int, message: str, job_id: str | None = None) -> BatchError:
    """The error a client raises for an HTTP error answer: :data:`HTTP_STATUS` inverted.

    A status the table does not list (a proxy's 502, a server's 500) gives a
    plain :class:`BatchError` that keeps the status.
    """
    cls = next((c for c, s in HTTP_STATUS.items() if s == status), BatchError)
    error = JobNotFound(job_id or "") if cls is JobNotFound else cls(message)
    error.args = (message,)
    error._received_status = status
    return error
