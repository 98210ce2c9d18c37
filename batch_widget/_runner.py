"""Drive one job's items through a worker pool, committing progress in batches.

A ``JobRun`` lives in its own thread. It reads pending items from the store in
chunks sized from the measured item duration (one item at a time for slow
processors so progress stays smooth, thousands for fast ones so no item pays a
hand-off of its own), keeps each worker fed, and commits every outcome at most
``progress_interval`` apart, telling its owner after each commit.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import multiprocessing
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import (
    FIRST_COMPLETED,
    BrokenExecutor,
    Executor,
    Future,
    ProcessPoolExecutor,
    ThreadPoolExecutor,
    wait,
)
from typing import Any

from batch_widget import _worker
from batch_widget._worker import Outcome

#: Chunks in flight per worker: one running, one queued, so no worker idles.
_CHUNKS_PER_WORKER = 2
_MAX_CHUNK = 4096
_RATE_WINDOW = 10.0
_NICENESS_STEP = 10


class RunEnd(enum.Enum):
    """How a run stopped."""

    FINISHED = "finished"
    CANCELLED = "cancelled"
    STOPPED = "stopped"


class ChunkSizer:
    """Pick chunk sizes so one chunk takes about ``target`` seconds."""

    def __init__(self, target: float) -> None:
        self.target = target
        self.item_seconds: float | None = None

    def observe(self, outcomes: Sequence[Outcome]) -> None:
        """Fold the durations of a finished chunk into the estimate."""
        durations = [o[4] for o in outcomes if o[4] is not None]
        if not durations:
            return
        mean = sum(durations) / len(durations)
        previous = self.item_seconds
        self.item_seconds = mean if previous is None else 0.7 * previous + 0.3 * mean

    def size(self, undispatched: int, workers: int) -> int:
        """The next chunk size: small for slow items, large for fast ones, balanced at the end."""
        if self.item_seconds is None:
            wanted = 1
        else:
            wanted = int(self.target / max(self.item_seconds, 1e-7))
        fair_share = max(1, undispatched // workers)
        return max(1, min(wanted, _MAX_CHUNK, fair_share))


class RateMeter:
    """Items per second over the last few seconds."""

    def __init__(self) -> None:
        self._samples: deque[tuple[float, int]] = deque()
        self.rate: float | None = None

    def reset(self, count: int) -> None:
        """Start measuring from ``count`` attempted items."""
        self._samples.clear()
        self._samples.append((time.monotonic(), count))
        self.rate = None

    def record(self, count: int) -> None:
        """Note that ``count`` items have now been attempted."""
        now = time.monotonic()
        self._samples.append((now, count))
        while len(self._samples) > 2 and now - self._samples[1][0] >= _RATE_WINDOW:
            self._samples.popleft()
        first_time, first_count = self._samples[0]
        if now - first_time > 0:
            self.rate = (count - first_count) / (now - first_time)


def batch_niceness() -> int:
    """The niceness batch work runs at: the server's (its main thread's) plus 10."""
    try:
        return min(19, os.getpriority(os.PRIO_PROCESS, os.getpid()) + _NICENESS_STEP)
    except (OSError, AttributeError):
        return _NICENESS_STEP


def yield_cpu() -> None:
    """Lower the calling thread's CPU priority so the server's event loop wins the CPU.

    On Linux ``setpriority`` with a thread id renices that thread alone. Batch
    work then fills idle cores without making JupyterLab sluggish.
    """
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), batch_niceness())


class CancelFlag:
    """A stop request visible to worker threads and, when needed, worker processes."""

    def __init__(self) -> None:
        self.thread_event = threading.Event()
        self.process_event: Any = None
        self.reason: RunEnd | None = None

    def set(self, reason: RunEnd) -> None:
        """Ask the run to start no more items."""
        if self.reason is None:
            self.reason = reason
        self.thread_event.set()
        if self.process_event is not None:
            self.process_event.set()

    def is_set(self) -> bool:
        """True once a stop was asked."""
        return self.thread_event.is_set()


class StallWatch:
    """Warn when no chunk has finished for a while: the first clue to a stuck job."""

    def __init__(self, after: float, job_id: str, log: logging.Logger) -> None:
        self.after = after
        self.job_id = job_id
        self.log = log
        self.progressed()

    def progressed(self) -> None:
        """Note that a chunk just finished."""
        self.last = time.monotonic()
        self.next_warning = self.last + self.after

    def check(self, running: Iterable[list[tuple[int, str]]]) -> None:
        """Log a WARNING naming the running items if nothing finished for ``after`` seconds."""
        now = time.monotonic()
        if now < self.next_warning:
            return
        self.next_warning = now + self.after
        indexes = sorted(chunk[0][0] for chunk in running if chunk)
        shown = ", ".join(map(str, indexes[:10])) + (", ..." if len(indexes) > 10 else "")
        self.log.warning(
            "batch_widget: job %s: no item has finished for %.1f s; %d chunk(s) still running, "
            "starting at item index(es) %s. A processor may be hung: see "
            "GET api/batch/jobs/%s/items?status=running",
            self.job_id, now - self.last, len(indexes), shown, self.job_id)


CommitHook = Callable[[Sequence[tuple[int, int, int]], Sequence[Outcome]], None]


class JobRun:
    """One pass over a job's pending items.

    Parameters
    ----------
    job_id, job_key, ref, params
        The job's id and store key, processor and params. ``ref`` is an import path,
        or a function returning the job's pickled function: it is called when the run
        starts, so a stored pickle is in memory only while its job runs.
    workers, executor
        Pool size, and ``"thread"`` or ``"process"``.
    fetch
        ``fetch(after_index, limit)`` returns the next pending ``(index, input_json)``.
    commit
        ``commit(started_ranges, outcomes)`` stores a batch and publishes progress.
    stall_warning_after
        Seconds without a finished chunk before a WARNING names the running items.
    max_result_bytes
        The longest JSON of one result; a longer one fails its item.
    """

    def __init__(
        self,
        *,
        job_id: str,
        job_key: int,
        ref: str | Callable[[], bytes],
        params: dict[str, Any],
        workers: int,
        executor: str,
        undispatched: int,
        fetch: Callable[[int, int], list[tuple[int, str]]],
        commit: CommitHook,
        progress_interval: float,
        log: logging.Logger,
        stall_warning_after: float = 60.0,
        max_result_bytes: int = _worker.DEFAULT_MAX_RESULT_BYTES,
    ) -> None:
        self.job_key = job_key
        self.max_result_bytes = max_result_bytes
        self.ref = ref
        self.task_ref: _worker.Ref | None = None  # what each chunk gets; set by prepare()
        self.params = params
        self.workers = workers
        self.executor = executor
        self.undispatched = undispatched
        self.fetch = fetch
        self.commit = commit
        self.interval = progress_interval
        self.log = log
        self.flag = CancelFlag()
        self.stall = StallWatch(stall_warning_after, job_id, log)
        self.cpu_watch = _worker.CpuWatch(job_id, log) if executor == "thread" else None
        self.sizer = ChunkSizer(target=max(0.005, min(progress_interval / 2, 0.05)))

    def _make_pool(self) -> Executor:
        if self.executor == "process":
            # forkserver: forking a multi-threaded server process can deadlock.
            context = multiprocessing.get_context("forkserver")
            self.flag.process_event = context.Event()
            if self.flag.is_set():
                self.flag.process_event.set()
            return ProcessPoolExecutor(
                self.workers, mp_context=context, initializer=_worker.init_process,
                initargs=(self.flag.process_event, batch_niceness()),
            )
        return ThreadPoolExecutor(self.workers, thread_name_prefix=f"batch-worker-{self.job_key}",
                                  initializer=yield_cpu)

    def prepare(self) -> None:
        """Load the processor; raise ``ProcessorError`` when it cannot be.

        Thread workers share the one function; each process gets the reference
        (import path or pickle) with its chunks and loads it once.
        """
        ref = self.ref if isinstance(self.ref, str) else self.ref()
        func = _worker.resolve(ref)
        self.task_ref = func if self.executor == "thread" else ref

    def run(self) -> RunEnd:
        """Process every pending item (or stop early when asked); return how it ended."""
        if self.task_ref is None:
            self.prepare()
        yield_cpu()
        pool = self._make_pool()
        try:
            self._drive(pool)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        return self.flag.reason or RunEnd.FINISHED

    def _submit(self, pool: Executor, chunk: list[tuple[int, str]]) -> Future[list[Outcome]]:
        thread_cancel = self.flag.thread_event if self.executor == "thread" else None
        assert self.task_ref is not None, "run() prepares the processor first"
        return pool.submit(_worker.run_chunk, self.task_ref, self.params, self.job_key, chunk,
                           cancel=thread_cancel, cpu_watch=self.cpu_watch,
                           max_result_bytes=self.max_result_bytes)

    def _drive(self, pool: Executor) -> None:
        inflight: dict[Future[list[Outcome]], list[tuple[int, str]]] = {}
        started: list[tuple[int, int, int]] = []
        outcomes: list[Outcome] = []
        cursor, exhausted = -1, False
        next_commit = time.monotonic() + self.interval
        while True:
            while (not exhausted and not self.flag.is_set()
                   and len(inflight) < self.workers * _CHUNKS_PER_WORKER):
                chunk = self.fetch(cursor, self.sizer.size(self.undispatched, self.workers))
                if not chunk:
                    exhausted = True
                    break
                cursor = chunk[-1][0]
                self.undispatched -= len(chunk)
                started.append((self.job_key, chunk[0][0], cursor))
                try:
                    inflight[self._submit(pool, chunk)] = chunk
                except BrokenExecutor as exc:
                    outcomes.extend(self._lost(chunk, exc))
            if not inflight:
                break
            finished, _ = wait(inflight, timeout=max(0.0, next_commit - time.monotonic()),
                               return_when=FIRST_COMPLETED)
            for future in finished:
                outcomes.extend(self._collect(future, inflight.pop(future)))
            if finished:
                self.stall.progressed()
            else:
                self.stall.check(inflight.values())
            if time.monotonic() >= next_commit:
                self.commit(started, outcomes)
                started, outcomes = [], []
                next_commit = time.monotonic() + self.interval
        self.commit(started, outcomes)

    def _collect(
        self, future: Future[list[Outcome]], chunk: list[tuple[int, str]]
    ) -> list[Outcome]:
        try:
            result = future.result()
        except Exception as exc:  # a process worker died: fail its items, keep the job going
            return self._lost(chunk, exc)
        self.sizer.observe(result)
        return result

    def _lost(self, chunk: list[tuple[int, str]], exc: BaseException) -> list[Outcome]:
        self.log.warning("batch_widget: a worker died running %d items of job key %d: %s",
                         len(chunk), self.job_key, exc)
        message = f"the worker running this item died: {type(exc).__name__}: {exc}"
        return [("failed", None, message, None, None, self.job_key, i) for i, _ in chunk]
