"""What a job run asks of whatever runs its chunks: the :class:`ChunkExecutor` protocol.

A :class:`~batch_widget.engine.runner.JobRun` reads items, sizes chunks, commits
outcomes and isolates crashers the same way on every executor; everything that
differs between threads, worker processes and a Dask cluster is one method of
the executor it was given. A new per-executor behaviour (an item timeout, a
move from threads to processes mid-run) is one more method here and one in
each implementation, never a branch in the runner.

The life of one executor, which serves one run:

1. :meth:`~ChunkExecutor.prepare` before the job starts: load or connect what
   the chunks need (it may refuse the job);
2. :meth:`~ChunkExecutor.start` with the run's cancel flag;
3. :meth:`~ChunkExecutor.submit` chunk after chunk, up to
   :meth:`~ChunkExecutor.capacity` workers' worth;
4. on a crash (a future fails with ``BrokenExecutor``):
   :meth:`~ChunkExecutor.replace_broken_pool` when
   :attr:`~ChunkExecutor.crash_breaks_pool`, and :attr:`~ChunkExecutor.crash_message`
   for the item found to cause it;
5. :meth:`~ChunkExecutor.abandon` chunks still running ``cancel_timeout`` after
   a cancel, then :meth:`~ChunkExecutor.shutdown`.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Collection, Sequence
from concurrent.futures import Future
from typing import Any

from batch_widget.engine.cancellation import CancelFlag
from batch_widget.engine.processor_rules import Grant
from batch_widget.engine.worker import OutcomeRow

Item = tuple[int, str]


@dataclasses.dataclass(frozen=True)
class Task:
    """What every chunk of one run runs: the granted processor, its params, the job's key."""

    grant: Grant
    params: dict[str, Any]
    job_key: int
    max_result_bytes: int


class ChunkExecutor(abc.ABC):
    """Runs one job run's chunks of items somewhere; see the module docstring for its life.

    ``workers`` is the pool size the job asked for (None: the executor's default).
    """

    #: True when a dead worker fails every chunk in flight and leaves the pool unusable
    #: (a ``ProcessPoolExecutor``): the run then settles them all and asks for a new pool.
    crash_breaks_pool = False
    #: The error of an item that, run alone, killed its worker again.
    crash_message = (
        "the worker running this item died (os._exit, a segfault or the "
        "out-of-memory killer?); the other items went on"
    )

    def __init__(self, workers: int | None, default_workers: int) -> None:
        self.asked_workers = workers
        self.size = workers or default_workers
        #: What the chunks run, from :meth:`prepare` until :meth:`release`.
        self.task: Task | None = None

    @abc.abstractmethod
    def prepare(self, task: Task) -> None:
        """Get ready to run ``task`` before the job starts: raise (``ProcessorError``,
        ``ClusterError``) if it cannot run here."""

    @abc.abstractmethod
    def start(self, flag: CancelFlag) -> None:
        """Make or lease the pool; from now on ``flag.set()`` reaches the workers too."""

    @abc.abstractmethod
    def submit(self, items: Sequence[Item]) -> Future[list[OutcomeRow]]:
        """Run one chunk of the prepared task; a pool that broke fails the future at once."""

    def capacity(self) -> int:
        """How many chunks run at once: the pool's size (a cluster's may change mid-run)."""
        return self.size

    @abc.abstractmethod
    def workers(self) -> int | None:
        """How many workers run the job now, for its snapshot (None before it started)."""

    @abc.abstractmethod
    def label(self) -> str:
        """Where the run's items run, for the log."""

    @abc.abstractmethod
    def replace_broken_pool(self) -> None:
        """Start a fresh pool after a crash broke this one (see :attr:`crash_breaks_pool`)."""

    @abc.abstractmethod
    def abandon(self, running: Collection[Future[list[OutcomeRow]]]) -> str:
        """Give up on chunks still running after the cancel grace; say what became of them."""

    @abc.abstractmethod
    def shutdown(self, abandoned: bool) -> None:
        """End the run's use of the pool (``abandoned``: some chunks never came back)."""

    def release(self) -> None:
        """Drop the task: a notebook function may hold a lot, and the run is over."""
        self.task = None
