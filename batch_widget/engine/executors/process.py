"""``executor="process"``: a job's chunks in worker processes leased from the warm pools."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from concurrent.futures import BrokenExecutor, Future

from batch_widget.engine import worker as _worker
from batch_widget.engine.cancellation import CancelFlag
from batch_widget.engine.executors.base import ChunkExecutor, Item, Task
from batch_widget.engine.pools import ProcessLease, WarmProcessPools, terminate_workers
from batch_widget.engine.worker import OutcomeRow


class ProcessExecutor(ChunkExecutor):
    """Each chunk travels with the grant; each worker loads (and checks) the function itself.

    The run's cancel flag sets the event every worker of the leased pool watches. A
    worker that dies breaks its ``ProcessPoolExecutor`` (every chunk in flight fails
    with it), so the run settles them and this executor leases a fresh pool.
    """

    crash_breaks_pool = True
    crash_message = (
        "the worker process running this item died (os._exit, a segfault or "
        "the out-of-memory killer?); the other items went on in a fresh worker"
    )

    def __init__(
        self, workers: int | None, default_workers: int, *, pools: WarmProcessPools
    ) -> None:
        super().__init__(workers, default_workers)
        self.pools = pools
        self.flag: CancelFlag | None = None
        self.lease: ProcessLease | None = None

    def prepare(self, task: Task) -> None:
        self.task = task  # a pickled function is never loaded in the server

    def start(self, flag: CancelFlag) -> None:
        self.flag = flag
        self._lease()

    def _lease(self) -> None:
        assert self.flag is not None
        self.lease = self.pools.lease(self.size)
        self.flag.process_event = self.lease.cancel
        if self.flag.is_set():  # cancelled while the pool started
            self.lease.cancel.set()

    def submit(self, items: Sequence[Item]) -> Future[list[OutcomeRow]]:
        assert self.lease is not None, "start() leases the pool"
        task = self.task
        assert task is not None
        try:
            return self.lease.pool.submit(
                _worker.run_chunk,
                task.grant,
                task.params,
                task.job_key,
                items,
                max_result_bytes=task.max_result_bytes,
            )
        except BrokenExecutor as exc:  # the pool broke between two chunks
            failed: Future[list[OutcomeRow]] = Future()
            failed.set_exception(exc)
            return failed

    def workers(self) -> int | None:
        return self.size if self.lease is not None else None

    def label(self) -> str:
        return f"{self.size} process workers"

    def replace_broken_pool(self) -> None:
        lease, self.lease = self.lease, None
        if lease is not None:
            self.pools.discard(lease)
        self._lease()

    def abandon(self, running: Collection[Future[list[OutcomeRow]]]) -> str:
        ended = terminate_workers(self.lease) if self.lease is not None else 0
        return f"terminated {ended} worker process(es)"

    def shutdown(self, abandoned: bool) -> None:
        lease, self.lease = self.lease, None
        if lease is None:
            return
        if abandoned:  # hung items: their workers cannot serve another job
            self.pools.discard(lease, terminate=True)
        else:  # every chunk ended: warm for the next job
            self.pools.give_back(lease)
