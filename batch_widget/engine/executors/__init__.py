"""What runs a job's chunks: one :class:`ChunkExecutor` per executor name, made per run.

:class:`Executors` holds what the executors share for the life of the engine
(the warm process pools, the Dask client) and makes the executor a job names.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

from batch_widget.engine.cluster import DaskCluster
from batch_widget.engine.executors.base import ChunkExecutor, Task
from batch_widget.engine.executors.dask import DaskExecutor
from batch_widget.engine.executors.process import ProcessExecutor
from batch_widget.engine.executors.thread import ThreadExecutor
from batch_widget.engine.niceness import batch_niceness
from batch_widget.engine.pools import WarmProcessPools
from batch_widget.engine.settings import Settings
from batch_widget.engine.worker import init_process

__all__ = [
    "ChunkExecutor",
    "DaskExecutor",
    "Executors",
    "ProcessExecutor",
    "Task",
    "ThreadExecutor",
]


class Executors:
    """The engine's executors: :meth:`make` one for a run, :meth:`close` at shutdown."""

    def __init__(self, settings: Settings, log: logging.Logger) -> None:
        self.settings = settings
        self.log = log
        #: Worker processes kept between process jobs (until process_idle_timeout).
        self.process_pools = WarmProcessPools(
            settings.process_idle_timeout, init_process, (batch_niceness(), os.getpid())
        )
        #: The Dask client (and LocalCluster) of executor="dask" jobs, made on first use.
        self.dask = DaskCluster(settings.dask_address, settings.dask_connect_timeout, log)

    def make(self, name: str, workers: int | None, *, job_id: str, job_key: int) -> ChunkExecutor:
        """A new executor of kind ``name`` for one run; ``ValueError`` for an unknown name."""
        default = self.settings.max_workers
        makers: dict[str, Callable[[], ChunkExecutor]] = {
            "thread": lambda: ThreadExecutor(
                workers, default, job_id=job_id, job_key=job_key, log=self.log
            ),
            "process": lambda: ProcessExecutor(workers, default, pools=self.process_pools),
            "dask": lambda: DaskExecutor(workers, default, cluster=self.dask, job_id=job_id),
        }
        if name not in makers:
            raise ValueError(f"unknown executor {name!r}: one of {', '.join(makers)}")
        return makers[name]()

    def close(self) -> None:
        """Shut the idle process pools down and close the Dask client (and its cluster)."""
        self.process_pools.close()
        self.dask.close()
