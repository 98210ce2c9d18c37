"""``executor="dask"``: a job's chunks as tasks on the server's Dask cluster."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from concurrent.futures import Future

from batch_widget.engine import worker as _worker
from batch_widget.engine.cancellation import CancelFlag
from batch_widget.engine.cluster import DaskCluster, DaskPool
from batch_widget.engine.errors import ClusterError
from batch_widget.engine.executors.base import ChunkExecutor, Item, Task
from batch_widget.engine.worker import OutcomeRow


class DaskExecutor(ChunkExecutor):
    """Chunks run on the cluster's worker threads; a job that names no pool size gets them all.

    :meth:`prepare` connects and checks the workers' versions (``ClusterError``). A
    worker lost mid-chunk is Dask's to handle (it runs the chunk elsewhere); a chunk
    that kept killing workers fails alone (``WorkerLost``), the pool goes on.
    """

    crash_message = (
        "the Dask workers running this item died each time (os._exit, a "
        "segfault or the out-of-memory killer?); the other items went on"
    )

    def __init__(
        self, workers: int | None, default_workers: int, *, cluster: DaskCluster, job_id: str
    ) -> None:
        super().__init__(workers, default_workers)
        self.cluster = cluster
        self.job_id = job_id
        self.pool: DaskPool | None = None

    def prepare(self, task: Task) -> None:
        self.task = task
        self.pool = self.cluster.pool(pickled=task.grant.pickled, log_job=self.job_id)
        self.capacity()

    def start(self, flag: CancelFlag) -> None:
        if self.pool is None:
            raise ClusterError("the Dask run was not prepared")
        flag.process_event = self.pool.cancel_remote()
        if flag.is_set():  # cancelled while it connected
            flag.process_event.set()

    def capacity(self) -> int:
        if self.pool is not None and self.asked_workers is None:
            self.size = max(1, self.pool.threads())  # the cluster may have grown or shrunk
        return self.size

    def submit(self, items: Sequence[Item]) -> Future[list[OutcomeRow]]:
        assert self.pool is not None, "prepare() connects"
        task = self.task
        assert task is not None
        return self.pool.submit(
            _worker.run_chunk,
            task.grant,
            task.params,
            task.job_key,
            items,
            cancel=self.pool.stop_flag(),
            max_result_bytes=task.max_result_bytes,
        )

    def workers(self) -> int | None:
        return self.pool.workers() if self.pool is not None else None

    def label(self) -> str:
        where = self.pool.where if self.pool is not None else self.cluster.where
        return f"{self.size} thread(s) of {where}"

    def abandon(self, running: Collection[Future[list[OutcomeRow]]]) -> str:
        for future in running:
            future.cancel()  # releases the Dask tasks; running Python goes on regardless
        return (
            "Dask cannot stop running Python either: those tasks run on in their "
            "workers until the processor returns, and their results are discarded"
        )

    def replace_broken_pool(self) -> None:
        """Never called: Dask replaces lost workers itself (see :attr:`crash_breaks_pool`)."""

    def shutdown(self, abandoned: bool) -> None:
        """Nothing to shut down: the client and the cluster outlive the run."""
