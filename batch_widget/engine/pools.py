"""Worker pools that never keep the server alive, and that can be torn down by force.

``concurrent.futures`` joins every ``ThreadPoolExecutor`` thread at interpreter
exit, so one processor stuck in ``time.sleep(3600)`` keeps a server that said
"stopped" alive for an hour. :class:`DaemonThreadPool` runs items on daemon
threads that nothing joins; a run abandons them when a cancel or a shutdown
outlasts ``cancel_timeout``.

Process pools are ``ProcessPoolExecutor`` objects on a lean forkserver
context: their workers start from a forkserver that preloaded only the worker
module, and without re-importing the server's ``__main__`` (the Jupyter server,
over a second of imports per process). :class:`WarmProcessPools` keeps them
between jobs until they have been idle for ``process_idle_timeout``, so a job
does not pay for starting Python. :func:`terminate_workers` ends a pool's
workers when a run gives up on them (a hung item at cancel or shutdown).
"""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from multiprocessing import context as mp_context
from multiprocessing import popen_forkserver, spawn
from typing import Any

_Task = tuple[Future[Any], Callable[..., Any], tuple[Any, ...], dict[str, Any]]


class DaemonThreadPool(Executor):
    """A fixed pool of daemon threads: what ``ThreadPoolExecutor`` is, minus the exit join."""

    def __init__(
        self, workers: int, name: str, initializer: Callable[[], None] | None = None
    ) -> None:
        self._tasks: queue.SimpleQueue[_Task | None] = queue.SimpleQueue()
        self._initializer = initializer
        self._shutdown = False
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}-{n}", daemon=True)
            for n in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        """Queue ``fn(*args, **kwargs)``; raise ``RuntimeError`` after shutdown."""
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot submit to a pool that was shut down")
            future: Future[Any] = Future()
            self._tasks.put((future, fn, args, kwargs))
            return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop taking work; threads end after their current task (joined if ``wait``)."""
        with self._lock:
            self._shutdown = True
            if cancel_futures:
                with contextlib.suppress(queue.Empty):
                    while True:
                        task = self._tasks.get_nowait()
                        if task is not None:
                            task[0].cancel()
            for _ in self._threads:
                self._tasks.put(None)
        if wait:
            for thread in self._threads:
                thread.join()

    def _work(self) -> None:
        if self._initializer is not None:
            self._initializer()
        while (task := self._tasks.get()) is not None:
            future, fn, args, kwargs = task
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:  # handed to the future's owner
                future.set_exception(exc)
            else:
                future.set_result(result)
            del task, future  # drop references to a big chunk while waiting for the next


#: What the forkserver imports once, so every worker forked from it has it already.
WORKER_MODULE = "batch_widget.engine.worker"

_lean = threading.local()
_original_preparation_data = spawn.get_preparation_data


def _preparation_data(name: str) -> dict[str, Any]:
    """``spawn.get_preparation_data``, minus the main module while a lean worker starts.

    Everywhere else it answers exactly as the original: other users of
    multiprocessing in the server process see no difference.
    """
    data: dict[str, Any] = _original_preparation_data(name)
    if getattr(_lean, "starting", False):
        data.pop("init_main_from_path", None)
        data.pop("init_main_from_name", None)
    return data


class _LeanPopen(popen_forkserver.Popen):
    """Start a forkserver child without importing the parent's ``__main__`` in it."""

    def _launch(self, process_obj: Any) -> None:
        _lean.starting = True
        try:
            super()._launch(process_obj)  # type: ignore[misc]  # private, not in typeshed
        finally:
            _lean.starting = False


class _LeanProcess(mp_context.ForkServerProcess):
    @staticmethod
    def _Popen(process_obj: Any) -> Any:  # noqa: N802  # multiprocessing's name
        return _LeanPopen(process_obj)


class _LeanContext(mp_context.ForkServerContext):
    Process = _LeanProcess


def lean_context() -> multiprocessing.context.BaseContext:
    """The forkserver context worker processes start from (see the module docstring)."""
    if spawn.get_preparation_data is not _preparation_data:
        spawn.get_preparation_data = _preparation_data
    context = _LeanContext()
    # Takes effect when the forkserver starts (once per server process).
    context.set_forkserver_preload([WORKER_MODULE])
    return context


@dataclasses.dataclass
class ProcessLease:
    """A process pool lent to one run, with the cancel event its workers watch."""

    pool: ProcessPoolExecutor
    cancel: Any  # a multiprocessing Event, shared with the pool's workers
    workers: int
    idle_since: float = 0.0


class WarmProcessPools:
    """Process pools kept between jobs: one run at a time uses a pool, then gives it back.

    A pool that has been idle for ``idle_timeout`` seconds is shut down (0 keeps
    none). ``initializer(cancel_event, *initargs)`` runs once in each worker.
    """

    def __init__(
        self, idle_timeout: float, initializer: Callable[..., None], initargs: tuple[Any, ...]
    ) -> None:
        self.idle_timeout = idle_timeout
        self._initializer = initializer
        self._initargs = initargs
        self._idle: list[ProcessLease] = []
        self._lock = threading.Condition()
        self._closed = False
        self._sweeper: threading.Thread | None = None

    def lease(self, workers: int) -> ProcessLease:
        """A pool of ``workers`` processes: a warm one if one waits, else a new one."""
        with self._lock:
            for index, lease in enumerate(self._idle):
                if lease.workers == workers and not _broken(lease.pool):
                    return self._idle.pop(index)
        context = lean_context()
        cancel = context.Event()
        pool = ProcessPoolExecutor(workers, mp_context=context, initializer=self._initializer,
                                   initargs=(cancel, *self._initargs))
        _start_every_worker(pool)
        return ProcessLease(pool, cancel, workers)

    def give_back(self, lease: ProcessLease) -> None:
        """Keep a pool whose run ended with nothing in flight, for the next job."""
        if self._closed or self.idle_timeout <= 0 or _broken(lease.pool):
            self.discard(lease)
            return
        lease.cancel.clear()
        lease.idle_since = time.monotonic()
        with self._lock:
            self._idle.append(lease)
            if self._sweeper is None:
                self._sweeper = threading.Thread(target=self._sweep, daemon=True,
                                                 name="batch-process-pools")
                self._sweeper.start()
            self._lock.notify_all()

    @staticmethod
    def discard(lease: ProcessLease, *, terminate: bool = False) -> None:
        """Shut a pool down (terminating its workers first if asked)."""
        if terminate:
            terminate_workers(lease.pool)
        lease.pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        """Shut every idle pool down; pools given back later are shut down at once."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
            self._lock.notify_all()
        for lease in idle:
            lease.pool.shutdown(wait=True, cancel_futures=True)

    def _sweep(self) -> None:
        """Shut down pools idle for ``idle_timeout``; end when none is left."""
        with self._lock:
            while not self._closed and self._idle:
                now = time.monotonic()
                expired = [p for p in self._idle if now - p.idle_since >= self.idle_timeout]
                self._idle = [p for p in self._idle if p not in expired]
                for lease in expired:
                    lease.pool.shutdown(wait=False, cancel_futures=True)
                if self._idle:
                    oldest = min(p.idle_since for p in self._idle)
                    self._lock.wait(max(0.01, oldest + self.idle_timeout - now))
            self._sweeper = None


def _start_every_worker(pool: ProcessPoolExecutor) -> None:
    """Start all of a new pool's workers now, so every job it serves runs on the same ones.

    ``ProcessPoolExecutor`` otherwise starts workers one per submit while none is
    idle, so how many a pool has depends on timing. Its ``_launch_processes`` (what
    it does itself on the fork context) exists from Python 3.9 on; without it the
    pool simply starts them on demand.
    """
    launch = getattr(pool, "_launch_processes", None)
    if callable(launch):
        launch()


def _broken(pool: ProcessPoolExecutor) -> bool:
    return bool(getattr(pool, "_broken", False))


def terminate_workers(pool: ProcessPoolExecutor) -> int:
    """SIGTERM every live worker of ``pool`` (Python 3.14 has ``terminate_workers``)."""
    processes: dict[int, Any] = dict(getattr(pool, "_processes", None) or {})
    ended = 0
    for process in processes.values():
        if process.is_alive():
            process.terminate()
            ended += 1
    for process in processes.values():
        process.join(timeout=5)
        if process.is_alive():
            process.kill()
    return ended
