"""What runs inside a worker: resolve a processor, run a chunk of items.

Kept free of tornado and jupyter_server so a process-pool child imports little.
Each outcome is an :class:`Outcome`, a named tuple in the column order of the
store's result UPDATE, so the driver hands it to SQLite without rebuilding it.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import statistics
import sys
import threading
import time
import traceback
from collections.abc import Sequence
from typing import Any, Final, NamedTuple

from batch_widget.engine import capture, jsontext
from batch_widget.engine.errors import ProcessorError
from batch_widget.engine.processor_rules import Grant, Processor, checked
from batch_widget.protocol import ItemStatus

#: A processor as a worker receives it: a grant (path or pickle), or (threads) the function.
Ref = Grant | Processor


class Outcome(NamedTuple):
    """What running one item gave, in the column order of the store's result UPDATE.

    A tuple, so ``executemany`` binds it as it is; defined at module level so it
    pickles back from process and Dask workers. An item a cancelled or stopping
    chunk never started comes back ``PENDING`` (the job's end decides its fate).
    A done item's outcome is a plain tuple in this order (see :func:`run_chunk`):
    read an outcome by position (:data:`STATUS`, :data:`IDX`), or name its fields
    with ``Outcome._make``.
    """

    #: An :class:`ItemStatus` value as a plain ``str`` (it binds and compares faster
    #: than the enum member, and equals it).
    status: str
    result_json: str | None
    error: str | None
    traceback: str | None
    duration: float | None
    log: str | None
    #: 1 when this outcome is an attempt (the item started, or its worker died with it), else 0.
    ran: int
    job_key: int
    idx: int  #: the item's index in the job (the column ``idx``; ``index`` is tuple's)


class Failure(Outcome):
    """A failed attempt's outcome, and what ``retry_on`` matches: ``error_types``, the
    names of the exception's class and of its bases, nearest first.

    The names are an attribute, not a field: the row binds as it is, and they are
    not stored. They pickle with the row (a tuple subclass keeps its ``__dict__``).
    """

    error_types: tuple[str, ...]

    @classmethod
    def of(
        cls,
        fields: tuple[str | None, str | None, str | None, float | None, str | None],
        job_key: int,
        index: int,
        error_types: tuple[str, ...],
    ) -> Failure:
        """``fields`` are ``(error, traceback, duration, log)`` preceded by the result (None)."""
        failure = cls(_FAILED, *fields, 1, job_key, index)
        failure.error_types = error_types
        return failure


#: An outcome as workers send it and the store binds it: :class:`Outcome`'s fields by
#: position. A done item's is a plain tuple (see :func:`run_chunk`); name a row's
#: fields with ``Outcome._make(row)``.
OutcomeRow = tuple[str, str | None, str | None, str | None, float | None, str | None, int, int, int]
#: Positions of the fields read off an :data:`OutcomeRow` (those of :class:`Outcome`).
STATUS: Final = 0
DURATION: Final = 4
IDX: Final = 8
_PENDING, _DONE, _FAILED = ItemStatus.PENDING.value, ItemStatus.DONE.value, ItemStatus.FAILED.value


def error_types_of(row: OutcomeRow) -> tuple[str, ...]:
    """The exception class names a failed attempt's row carries (none for other rows)."""
    return row.error_types if isinstance(row, Failure) else ()


def not_run(job_key: int, index: int) -> Outcome:
    """The outcome of an item its chunk never started: sent back to pending."""
    return Outcome(_PENDING, None, None, None, None, None, 0, job_key, index)


def lost(message: str, job_key: int, index: int, error_types: tuple[str, ...]) -> Failure:
    """The outcome of an attempt that failed without running (its worker died or refused it)."""
    return Failure.of((None, message, None, None, None), job_key, index, error_types)


def class_names(exc: BaseException) -> tuple[str, ...]:
    """The names of ``exc``'s class and of every class it derives from, nearest first."""
    return tuple(cls.__name__ for cls in type(exc).__mro__)


_MiB = 1024 * 1024
#: How often a long chunk on a thread worker reports its CPU time to its CpuWatch.
_CPU_REPORT_EVERY = 0.2

_process_cancel: Any = None
#: The tokens of the Dask runs cancelled while this worker process lived (see RemoteStop).
_remote_cancelled: set[str] = set()


def resolve(ref: Ref) -> Processor:
    """The function a chunk runs: a granted reference, loaded (and checked again) here.

    A thread job's chunks get the function itself, loaded once by the server. A
    bare import path or pickle is refused: only a grant of the server's rules
    (:mod:`~batch_widget.engine.processor_rules`) loads, so a processor that
    calls ``run_chunk`` with a path of its choosing runs nothing.
    """
    if isinstance(ref, Grant):
        return ref.load()
    if isinstance(ref, (str, bytes)):
        raise ProcessorError(
            "a worker loads only a processor the server's rules granted "
            "(processor_rules.ProcessorRules.grant), not a bare import path "
            "or pickle"
        )
    return checked(ref, repr(ref))


class _LastPickle:
    """A worker process's one loaded processor, so a job's chunks load it once.

    One slot, not a cache: a process holds at most the function it runs now (a
    pickled one may hold a lot). The slot is one tuple, read and replaced whole,
    so the threads of a Dask worker running chunks of two jobs never pair one
    job's grant with the other's function.
    """

    def __init__(self) -> None:
        self.slot: tuple[Grant, Processor] | None = None

    def resolve(self, ref: Ref) -> Processor:
        if not isinstance(ref, Grant):
            return resolve(ref)
        slot = self.slot
        if slot is not None and slot[0] == ref:
            return slot[1]
        self.slot = None  # let the previous function go before loading the next
        func = resolve(ref)
        self.slot = (ref, func)
        return func


_last_pickle = _LastPickle()


class CpuWatch:
    """Warn once per job when thread workers hold the GIL long enough to slow the server.

    Python code holds the GIL while it runs, so a pure-Python, CPU-bound
    processor on the thread executor slows every request of the server (measured:
    ``GET api/status`` p99 from 2 ms idle to 92 ms; 7 ms with the process executor).
    Worker threads report the CPU time of each chunk. Once they have used
    ``min_cpu`` seconds at ``share`` of a core or more, a probe thread measures
    how long the GIL keeps it waiting (:func:`gil_hold`): code that releases the
    GIL (hashlib, NumPy, I/O) costs nothing, Python code costs most of the switch
    interval (5 ms). A hold over ``gil_hold`` seconds (default: a fifth of the
    switch interval) puts the job's id and ``executor="process"`` in the log at WARNING.
    """

    def __init__(
        self,
        job_id: str,
        log: logging.Logger,
        *,
        min_cpu: float = 1.0,
        share: float = 0.5,
        gil_hold: float | None = None,
    ) -> None:
        self.job_id = job_id
        self.log = log
        self.share = share
        self.gil_hold = sys.getswitchinterval() / 5 if gil_hold is None else gil_hold
        self._lock = threading.Lock()
        self._started = time.perf_counter()
        self._cpu = 0.0
        self._next_probe = min_cpu
        self._done = False

    def add(self, cpu_seconds: float) -> None:
        """Count a finished chunk's CPU time (called by worker threads)."""
        with self._lock:
            self._cpu += cpu_seconds
            if self._done or self._cpu < self._next_probe:
                return
            self._next_probe = self._cpu * 2  # probed again after as much CPU again
            cores = self._cpu / max(time.perf_counter() - self._started, 1e-9)
            if cores < self.share:
                return
        threading.Thread(
            target=self._probe, args=(cores,), daemon=True, name=f"batch-gil-probe-{self.job_id}"
        ).start()

    def _probe(self, cores: float) -> None:
        held = gil_hold()
        with self._lock:
            if self._done or held < self.gil_hold:
                return
            self._done = True
        self.log.warning(
            "job %s runs Python code on its thread workers (%.0f%% of a core) "
            "and holds the GIL: every request to this Jupyter server waits %.1f ms more per "
            'step. Run CPU-bound processors with executor="process" '
            '(bw.submit(..., executor="process"), or c.BatchWidgetApp.executor).',
            self.job_id,
            cores * 100,
            held * 1000,
        )


#: Where Linux counts a thread's time on a CPU and waiting for one (nanoseconds).
_SCHEDSTAT = "/proc/thread-self/schedstat"


def gil_hold(samples: int = 15, nap: float = 0.0005) -> float:
    """Median seconds the GIL keeps a thread waiting after a ``nap``-second sleep.

    A thread that wakes while Python code runs elsewhere waits for the GIL (up
    to the 5 ms switch interval, more when several threads want it); on a busy
    machine it also waits for a free core, which is not the job's doing. Linux
    counts, per thread, the time spent running and the time spent waiting in the
    run queue (``/proc/thread-self/schedstat``): what is left of the wake-up
    once both and the nap are taken out is the time the thread slept on the
    GIL, however loaded the machine is. Where that count is missing (macOS,
    Windows, kernels without scheduler statistics) the whole wake-up delay is
    taken, as before: a busy machine can then look like a held GIL.
    """
    counted = _scheduler_times() is not None
    waits = []
    for _ in range(samples):
        before = _scheduler_times() if counted else None
        started = time.perf_counter()
        time.sleep(nap)
        waited = time.perf_counter() - started - nap
        after = _scheduler_times() if counted else None
        if before is not None and after is not None:
            waited -= (after[0] - before[0]) + (after[1] - before[1])
        waits.append(max(0.0, waited))
    return statistics.median(waits)


def _scheduler_times() -> tuple[float, float] | None:
    """This thread's ``(seconds on a CPU, seconds waiting for one)``, or None if unknown."""
    try:
        with open(_SCHEDSTAT, "rb") as stream:
            running, queued, _ = stream.read().split()
    except (OSError, ValueError):
        return None
    return int(running) / 1e9, int(queued) / 1e9


def init_process(cancel_event: Any, niceness: int, server_pid: int) -> None:
    """Process-pool initializer: remember the job's cancel event, yield the CPU to the server.

    It also starts a watch that ends this worker when the server is gone: an idle
    worker blocks on a queue whose write end it holds itself, and a hung item never
    returns, so neither would notice a SIGKILLed server on its own.
    """
    global _process_cancel  # noqa: PLW0603  # one event per child process, set once
    _process_cancel = cancel_event
    with contextlib.suppress(OSError):  # the forkserver may already run at this niceness
        os.setpriority(os.PRIO_PROCESS, 0, niceness)
    threading.Thread(
        target=_exit_with_server, args=(server_pid,), daemon=True, name="batch-server-watch"
    ).start()


def _exit_with_server(server_pid: int, every: float = 0.5) -> None:
    """End this process (at once, like the server did) when the server is gone.

    Two signs, either is enough: ``server_pid`` no longer exists, or this worker's
    parent (the forkserver, which exits when the server closes its end of their
    pipe) changed: the second also covers a dead server nobody has reaped yet.
    """
    parent = os.getppid()
    while True:
        time.sleep(every)
        if os.getppid() != parent:
            os._exit(1)
        try:
            os.kill(server_pid, 0)
        except (ProcessLookupError, PermissionError):  # gone, or the pid was reused
            os._exit(1)


def cancel_remote(token: str) -> None:
    """Mark a Dask run cancelled in this worker process (sent to every worker by ``Client.run``)."""
    _remote_cancelled.add(token)


class RemoteStop:
    """A Dask run's cancel flag, as the chunks in a worker process check it.

    Pickled with each chunk (just its token); :func:`cancel_remote` sets it for
    every chunk of the run in that process, running or still queued.
    """

    def __init__(self, token: str) -> None:
        self.token = token

    def is_set(self) -> bool:
        """True once the run was cancelled."""
        return self.token in _remote_cancelled


def run_chunk(
    ref: Ref,
    params: dict[str, Any],
    job_key: int,
    chunk: Sequence[tuple[int, str]],
    *,
    cancel: threading.Event | RemoteStop | None = None,
    cpu_watch: CpuWatch | None = None,
    max_result_bytes: int,
) -> list[OutcomeRow]:
    """Run the processor over ``chunk`` of ``(index, input_json)``; never raises.

    Items not started once ``cancel`` is set come back ``PENDING`` (:func:`not_run`). A thread
    worker reports the chunk's CPU time to ``cpu_watch`` (every
    ``_CPU_REPORT_EVERY`` seconds of a long chunk, and at its end). A result whose JSON is
    over ``max_result_bytes`` fails its item.
    """
    cpu_started = time.thread_time()
    stop = cancel if cancel is not None else _process_cancel
    func = _last_pickle.resolve(ref)
    capture.install()
    # A done item's outcome is a plain tuple: that costs a third of a no-op item less
    # than the named tuple (its __new__, and the collector's passes over a second
    # allocation). Failures are Outcome rows too, built where speed does not matter.
    outcomes: list[OutcomeRow] = []
    append = outcomes.append
    clock = time.perf_counter
    begin, end = capture.begin, capture.end
    inputs = jsontext.loads_many([raw for _, raw in chunk])  # one parse for the chunk
    reported = clock()
    for (index, _), item in zip(chunk, inputs, strict=True):
        if stop is not None and stop.is_set():
            append(not_run(job_key, index))
            continue
        started = clock()
        if cpu_watch is not None and started - reported >= _CPU_REPORT_EVERY:
            cpu_now = time.thread_time()  # a chunk of slow items reports as it goes
            cpu_watch.add(cpu_now - cpu_started)
            cpu_started, reported = cpu_now, started
        begin()
        try:
            result = func(item, **params)
        except BaseException as exc:  # sys.exit() or Ctrl-C in an item fails it
            trace, duration, log = _traceback(), clock() - started, _storable(end())
            append(_failed(describe(exc), trace, duration, log, at=(job_key, index), cause=exc))
            continue
        duration = clock() - started
        log = end()
        if log is not None:
            log = storable(log)
        try:
            encoded = encode_result(result)
        except (TypeError, ValueError, RecursionError) as exc:
            error = f"result is not JSON-serialisable: {exc}"
            append(_failed(error, None, duration, log, at=(job_key, index), cause=exc))
            continue
        if len(encoded) > max_result_bytes:  # ASCII: json.dumps escapes the rest
            error = _too_big(len(encoded), max_result_bytes)
            append(_failed(error, None, duration, log, at=(job_key, index), cause=_TOO_BIG_TYPES))
            continue
        append((_DONE, encoded, None, None, duration, log, 1, job_key, index))
    if cpu_watch is not None:
        cpu_watch.add(time.thread_time() - cpu_started)
    return outcomes


#: What a result over ``max_result_bytes`` fails as, for ``retry_on``.
_TOO_BIG_TYPES = ("ValueError", "Exception", "BaseException")


def _failed(
    error: str,
    trace: str | None,
    duration: float,
    log: str | None,
    *,
    at: tuple[int, int],
    cause: BaseException | tuple[str, ...],
) -> Failure:
    """A failed attempt's outcome; ``at`` is ``(job_key, index)``, ``cause`` the exception
    or its class names."""
    types = cause if isinstance(cause, tuple) else class_names(cause)
    return Failure.of((None, error, trace, duration, log), *at, types)


def _storable(text: str | None) -> str | None:
    return None if text is None else storable(text)


def _too_big(size: int, limit: int) -> str:
    return (
        f"the result is {_size(size)} of JSON, more than BatchWidgetApp.max_result_bytes "
        f"({_size(limit)}): every result is kept in the job store and read back whole. "
        'Write big results to files and return their paths, e.g. {"outputs": [path]}'
    )


def _size(size: int) -> str:
    return f"{size / _MiB:.1f} MiB" if size >= _MiB else f"{size} bytes"


def encode_result(result: Any) -> str:
    """A result as strict JSON: NaN and the infinities become ``null``, as pandas' ``to_json``.

    Python's ``json`` writes bare ``NaN``, which no browser's ``JSON.parse`` reads.
    """
    try:
        return jsontext.dumps(result)
    except ValueError as exc:
        if not str(exc).startswith(jsontext.OUT_OF_RANGE):
            raise
    return jsontext.dumps(_finite(result))


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def describe(exc: BaseException) -> str:
    """``Type: message``, even for an exception whose ``__str__`` itself raises."""
    name = type(exc).__name__
    try:
        return storable(f"{name}: {exc}")
    except BaseException:  # a broken __str__ must fail only its own item
        return f"{name}: <unprintable {name}>"


def _traceback() -> str | None:
    """The current exception's traceback as storable text, or None if it cannot be made."""
    try:
        return storable(traceback.format_exc())
    except BaseException:  # e.g. a __notes__ that raises
        return None


def storable(text: str) -> str:
    """``text`` with lone surrogates escaped: SQLite stores UTF-8, which cannot hold them.

    File names from ``os.listdir()`` carry them on Linux, and so do messages about them.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text
