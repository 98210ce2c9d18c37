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
workers when a run gives up on them (a hung item at cancel or shutdown). What
runs the chunks of a job on them is :mod:`batch_widget.engine.executors.process`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing
import os
import queue
import signal
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


#: What the forkserver imports once, so every worker forked from it has it already
#: (this module too: its initializer runs in the workers).
WORKER_MODULE = "batch_widget.engine.worker"
PRELOAD = [WORKER_MODULE, __name__]

# Why the lean start below reaches into multiprocessing (the one private hook left
# here): every spawn or forkserver child re-runs the parent's ``__main__``, which in
# the server is the ``jupyter-server`` script (over a second of imports, and
# jupyter_server in every worker), and multiprocessing has no public switch for it.
# loky, which avoids it, starts each worker as a fresh interpreter instead of
# forking it from a preloaded forkserver (and its reusable executor is one pool for
# the whole process, where each process job here has its own, so one job's crash or
# cancel never reaches another's): this hook is smaller than either change.

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
    context.set_forkserver_preload(PRELOAD)
    return context


@dataclasses.dataclass
class ProcessLease:
    """A process pool lent to one run, with the cancel event its workers watch."""

    pool: ProcessPoolExecutor
    cancel: Any  # a multiprocessing Event, shared with the pool's workers
    workers: int
    #: Where each worker puts its pid as it starts (see :func:`_start_worker`).
    started: Any = None  # a multiprocessing SimpleQueue
    pids: set[int] = dataclasses.field(default_factory=set)
    idle_since: float = 0.0

    def worker_pids(self) -> set[int]:
        """The pool's worker processes: every one that started so far."""
        while self.started is not None and not self.started.empty():
            self.pids.add(self.started.get())
        return self.pids


def _start_worker(started: Any, initializer: Callable[..., None], *initargs: Any) -> None:
    """A pool worker's initializer: tell the pool which process this is, then ``initializer``."""
    started.put(os.getpid())
    initializer(*initargs)


class WarmProcessPools:
    """Process pools kept between jobs: one run at a time uses a pool, then gives it back.

    A pool that has been idle for ``idle_timeout`` seconds is shut down (0 keeps
    none). ``initializer(cancel_event, *initargs)`` runs once in each worker.

    Built on the public surface of ``concurrent.futures``: a new pool gets one
    no-op task per worker at once, and ``ProcessPoolExecutor`` starts a worker for
    each ``submit`` that finds none idle, so all of them start together (on
    demand, how many a pool has would depend on timing). Each worker names itself
    as it starts (:func:`_start_worker`): a warm pool is lent again only while
    every one of them lives (one that died while idle broke its pool), and
    :func:`terminate_workers` finds them by these pids.
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
        """A pool of ``workers`` processes: a warm one whose workers all live, else a new one."""
        while (lease := self._take_idle(workers)) is not None:
            if all(_signal(pid, 0) for pid in lease.worker_pids()):
                return lease
            self.discard(lease)  # a worker died while it waited: that pool is broken
        context = lean_context()
        cancel = context.Event()
        started = context.SimpleQueue()
        pool = ProcessPoolExecutor(
            workers,
            mp_context=context,
            initializer=_start_worker,
            initargs=(started, self._initializer, cancel, *self._initargs),
        )
        for _ in range(workers):  # each starts a worker; none waits for it
            pool.submit(os.getpid)
        return ProcessLease(pool, cancel, workers, started)

    def _take_idle(self, workers: int) -> ProcessLease | None:
        with self._lock:
            for index, lease in enumerate(self._idle):
                if lease.workers == workers:
                    return self._idle.pop(index)
        return None

    def give_back(self, lease: ProcessLease) -> None:
        """Keep a pool whose run ended with nothing in flight, for the next job."""
        if self._closed or self.idle_timeout <= 0:
            self.discard(lease)
            return
        lease.cancel.clear()
        lease.idle_since = time.monotonic()
        with self._lock:
            self._idle.append(lease)
            if self._sweeper is None:
                self._sweeper = threading.Thread(
                    target=self._sweep, daemon=True, name="batch-process-pools"
                )
                self._sweeper.start()
            self._lock.notify_all()

    @staticmethod
    def discard(lease: ProcessLease, *, terminate: bool = False) -> None:
        """Shut a pool down (terminating its workers first if asked)."""
        if terminate:
            terminate_workers(lease)
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


def terminate_workers(lease: ProcessLease) -> int:
    """SIGTERM every live worker of the lease's pool, SIGKILL those still there 5 s later.

    Python 3.14 has ``ProcessPoolExecutor.terminate_workers``; before it the pool does
    not name its processes, so they named themselves as they started. They are the forkserver's
    children, not ours, so their ends are watched with signal 0 instead of ``join``.
    """
    ended = [pid for pid in lease.worker_pids() if _signal(pid, signal.SIGTERM)]
    deadline = time.monotonic() + 5
    while ended and time.monotonic() < deadline and any(_signal(p, 0) for p in ended):
        time.sleep(0.05)
    for pid in ended:
        _signal(pid, signal.SIGKILL)
    return len(ended)


def _signal(pid: int, signum: int) -> bool:
    """Send ``signum`` to ``pid``; False if no such process (any more)."""
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        return False
    return True
