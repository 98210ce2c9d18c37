"""Worker pools that never keep the server alive, and that can be torn down by force.

``concurrent.futures`` joins every ``ThreadPoolExecutor`` thread at interpreter
exit, so one processor stuck in ``time.sleep(3600)`` keeps a server that said
"stopped" alive for an hour. :class:`DaemonThreadPool` runs items on daemon
threads that nothing joins; a run abandons them when a cancel or a shutdown
outlasts ``cancel_timeout``.

Process pools are ordinary ``ProcessPoolExecutor`` objects on the forkserver
context; :func:`terminate_workers` ends their workers when a run gives up on
them (a hung item at cancel or shutdown).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future, ProcessPoolExecutor
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


def process_pool(
    workers: int, initializer: Callable[..., None], initargs: tuple[Any, ...]
) -> ProcessPoolExecutor:
    """A pool on the forkserver context: forking a multi-threaded server can deadlock."""
    context = multiprocessing.get_context("forkserver")
    return ProcessPoolExecutor(
        workers, mp_context=context, initializer=initializer, initargs=initargs
    )


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
