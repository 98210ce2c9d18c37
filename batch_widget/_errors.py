"""Domain errors. The server maps each to one HTTP status in one place."""

from __future__ import annotations


class BatchError(Exception):
    """Base class of every error batch_widget raises on purpose."""

    status_code = 400


class InvalidRequest(BatchError):
    """The request is malformed: bad items, params, processor path, ... (400)."""

    status_code = 400


class PermissionDenied(BatchError):
    """The processor is outside ``allowed_processors``, or callables are off (403)."""

    status_code = 403


class JobNotFound(BatchError):
    """No job has this id (404)."""

    status_code = 404

    def __init__(self, job_id: str) -> None:
        super().__init__(f"no job with id {job_id!r}")
        self.job_id = job_id


class JobStateConflict(BatchError):
    """The action does not fit the job's state, e.g. cancelling a finished job (409)."""

    status_code = 409


class StoreUnavailable(BatchError):
    """The job store cannot serve this request right now (503)."""

    status_code = 503


class StoreIOError(StoreUnavailable):
    """Reading or writing the store failed (disk full, file locked or read-only); it may pass."""


class StoreLost(StoreUnavailable):
    """The store file was deleted or replaced while the server ran; it will not come back."""


class StoreInUse(StoreUnavailable):
    """Another server owns the job store; this one must not touch its jobs."""
