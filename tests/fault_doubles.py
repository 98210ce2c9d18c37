"""Test doubles injected through configuration (SPEC §5 ``broadcaster_class``, ``manager_class``).

Imported by dotted name (``"fault_doubles.FailFirstTwoCompletes"``) from the
``Type`` traits of ``BatchWidgetApp``, exactly as a ``jupyter_server_config.py``
would name them; ``tests/`` is on ``sys.path``. The file name does not match
``test_*.py``, so pytest does not collect it.

A test reaches the instance the server built through the app
(``batch_app.broadcaster`` / ``batch_app.manager``, the same objects the
handlers get from the Tornado settings).
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

from batch_widget.engine import JobManager, JobRequest
from batch_widget.protocol import Snapshot
from batch_widget.server.events import Broadcaster, Subscriber, event_name


class InjectedFault(RuntimeError):
    """The error a fault double raises; its repr shows up in the server's log."""


class FailingCompleteBroadcaster(Broadcaster):
    """A broadcaster whose ``publish`` raises for the first ``fail_completes`` terminal snapshots.

    Progress snapshots go through untouched. Every call with a terminal snapshot is
    recorded in ``complete_attempts`` (job id, status, whether it raised), so a test
    can count the manager's retries.
    """

    fail_completes: ClassVar[int] = 0

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        #: (job id, status, raised, time.monotonic()) per terminal publish
        self.complete_attempts: list[tuple[str, str, bool, float]] = []
        #: every subscriber ever registered, in order
        self.subscribers_seen: list[Subscriber] = []

    def publish(self, snapshot: Snapshot) -> str:
        if event_name(snapshot) == "complete":
            failing = len(self.complete_attempts) < self.fail_completes
            self.complete_attempts.append(
                (snapshot["id"], snapshot["status"], failing, time.monotonic())
            )
            if failing:
                raise InjectedFault(f"injected fault #{len(self.complete_attempts)}")
        return super().publish(snapshot)

    def subscribe(self, job_ids: Any = None) -> Subscriber:
        sub = super().subscribe(job_ids)
        self.subscribers_seen.append(sub)
        return sub

    def attempts_for(self, job_id: str) -> list[bool]:
        """Whether each terminal publish of ``job_id`` raised, in call order."""
        return [failed for jid, _, failed, _ in self.complete_attempts if jid == job_id]

    def attempt_times(self, job_id: str) -> list[float]:
        """When each terminal publish of ``job_id`` was attempted (monotonic seconds)."""
        return [at for jid, _, _, at in self.complete_attempts if jid == job_id]


class RecordingBroadcaster(FailingCompleteBroadcaster):
    """Never fails; only records subscribers and terminal publishes."""

    fail_completes = 0


class FailFirstTwoCompletes(FailingCompleteBroadcaster):
    """The first two terminal publishes raise; the third goes through."""

    fail_completes = 2


class FailEveryComplete(FailingCompleteBroadcaster):
    """Every terminal publish raises (far more than any retry budget in the tests)."""

    fail_completes = 1_000


class RecordingJobManager(JobManager):
    """A job manager that records the jobs it created; behaviour otherwise unchanged."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.created: list[str] = []

    def create(self, request: JobRequest) -> Snapshot:
        snapshot = super().create(request)
        self.created.append(snapshot["id"])
        return snapshot
