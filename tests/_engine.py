"""Engine test helpers (no server): a recording publisher and started managers.

Imported as ``_engine`` by the engine test modules; ``make_manager`` is a fixture
they import so pytest finds it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from tornado.ioloop import IOLoop

from batch_widget.engine import JobManager, JobRequest, Settings
from batch_widget.engine.store import Store
from batch_widget.protocol import Snapshot


class Recorder:
    """A real publisher that keeps what it is given (and can refuse the first few)."""

    def __init__(self, fail_terminal: int = 0) -> None:
        self.events: list[Snapshot] = []
        self.attempts: list[Snapshot] = []
        self.fail_terminal = fail_terminal

    def publish(self, snapshot: Snapshot) -> None:
        self.attempts.append(snapshot)
        terminal = snapshot["status"] in {"completed", "failed", "cancelled", "interrupted"}
        if terminal and self.fail_terminal > 0:
            self.fail_terminal -= 1
            raise ConnectionError("broadcast refused on purpose")
        self.events.append(snapshot)

    def of(self, job_id: str) -> list[Snapshot]:
        return [s for s in self.events if s["id"] == job_id]


ManagerFactory = Callable[..., JobManager]


@pytest.fixture
async def make_manager(tmp_path: Path) -> AsyncIterator[ManagerFactory]:
    """Build started managers on a store in the test's temp dir; stop them afterwards."""
    made: list[JobManager] = []

    def factory(
        recorder: Recorder | None = None,
        start: bool = True,
        log: logging.Logger | None = None,
        **options: Any,
    ) -> JobManager:
        """``options`` are engine settings; ``allowed_processors`` may be a list."""
        options.setdefault("progress_interval", 0.05)
        if "allowed_processors" in options:
            options["allowed_processors"] = tuple(options["allowed_processors"])
        manager = JobManager(
            Store(tmp_path / "jobs.sqlite"),
            recorder,
            Settings(**options),
            loop=IOLoop.current(),
            log=log,
        )
        if start:
            manager.start()
        made.append(manager)
        return manager

    yield factory
    for manager in made:
        await asyncio.to_thread(manager.stop)
        manager.store.close()


def create(manager: JobManager, items: Any, **fields: Any) -> Snapshot:
    """Create a job through the manager: ``fields`` are those of a ``JobRequest``."""
    return manager.create(JobRequest(items, **fields))


async def wait(manager: JobManager, job_id: str, timeout: float = 60) -> Snapshot:
    snapshot = await asyncio.to_thread(manager.wait, job_id, timeout)
    await asyncio.sleep(0.05)  # let the IOLoop deliver the last event
    return snapshot


async def wait_until(predicate: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)
