"""The shapes both sides agree on: states, the job snapshot, item records.

This module imports nothing from jupyter_server, so the kernel side can use it.
"""

from __future__ import annotations

from enum import Enum
from typing import Any, TypedDict


class JobStatus(str, Enum):
    """A job's state (SPEC §2). ``retry`` takes a terminal job back to QUEUED."""

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


class ItemStatus(str, Enum):
    """An item's state in the job's ledger."""

    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


class Snapshot(TypedDict):
    """The job snapshot of SPEC §2: every API answer and SSE job event carries one."""

    id: str
    name: str
    processor: str
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


class ItemRecord(TypedDict):
    """One row of ``GET api/batch/jobs/{id}/items``."""

    index: int
    input: Any
    status: str
    result: Any
    error: str | None
    traceback: str | None
    duration: float | None


class ItemError(TypedDict):
    """One entry of ``Job.errors()``."""

    index: int
    input: Any
    error: str | None
    traceback: str | None
