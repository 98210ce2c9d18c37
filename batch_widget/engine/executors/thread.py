"""``executor="thread"``: a job's chunks on daemon threads of the server process."""

from __future__ import annotations

import logging
import threading
from collections.abc import Collection, Sequence
from concurrent.futures import Future

from batch_widget.engine import worker as _worker
from batch_widget.engine.cancellation import CancelFlag
from batch_widget.engine.executors.base import ChunkExecutor, Item, Task
from batch_widget.engine.niceness import yield_cpu
from batch_widget.engine.pools import DaemonThreadPool
from batch_widget.engine.processor_rules import Processor
from batch_widget.engine.worker import OutcomeRow


class ThreadExecutor(ChunkExecutor):
    """Threads share one function, loaded once by :meth:`prepare`, and the run's cancel event.

    A thread cannot crash alone (a dead worker is a dead server), and cannot be
    stopped: an item still running after the cancel grace runs on, its result unread.
    """

    def __init__(
        self,
        workers: int | None,
        default_workers: int,
        *,
        job_id: str,
        job_key: int,
        log: logging.Logger,
    ) -> None:
        super().__init__(workers, default_workers)
        self.name = f"batch-worker-{job_key}"
        #: Warns when pure-Python items fight over the GIL (the process executor would not).
        self.cpu_watch = _worker.CpuWatch(job_id, log)
        self.func: Processor | None = None
        self.cancel: threading.Event | None = None
        self.pool: DaemonThreadPool | None = None

    def prepare(self, task: Task) -> None:
        self.task, self.func = task, task.grant.load()

    def start(self, flag: CancelFlag) -> None:
        self.cancel = flag.thread_event
        self.pool = DaemonThreadPool(self.size, self.name, yield_cpu)

    def submit(self, items: Sequence[Item]) -> Future[list[OutcomeRow]]:
        assert self.pool is not None, "start() makes the pool"
        assert self.func is not None, "prepare() loads the function"
        task = self.task
        assert task is not None
        return self.pool.submit(
            _worker.run_chunk,
            self.func,
            task.params,
            task.job_key,
            items,
            cancel=self.cancel,
            cpu_watch=self.cpu_watch,
            max_result_bytes=task.max_result_bytes,
        )

    def workers(self) -> int | None:
        return self.size if self.pool is not None else None

    def label(self) -> str:
        return f"{self.size} thread workers"

    def abandon(self, running: Collection[Future[list[OutcomeRow]]]) -> str:
        return (
            "threads cannot be stopped: they run on in the background until the "
            "processor returns, and their results are discarded"
        )

    def shutdown(self, abandoned: bool) -> None:
        pool, self.pool = self.pool, None
        if pool is not None:
            pool.shutdown(wait=not abandoned, cancel_futures=True)

    def replace_broken_pool(self) -> None:
        """Never called: a thread pool does not break (see :attr:`crash_breaks_pool`)."""

    def release(self) -> None:
        super().release()
        self.func = None
