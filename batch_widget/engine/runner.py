"""Drive one job's items through a worker pool, committing progress in batches.

A ``JobRun`` lives in its own thread. It reads pending items from the store in
chunks sized from the measured item duration (one item at a time for slow
processors so progress stays smooth, thousands for fast ones so no item pays a
hand-off of its own), keeps each worker fed, and commits every outcome at most
``progress_interval`` apart, telling its owner after each commit. Where the chunks
run is its :class:`~batch_widget.engine.executors.ChunkExecutor`'s business: the
run never asks which one it has.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, BrokenExecutor, Future, wait
from concurrent.futures import CancelledError as FutureCancelled
from typing import Any

from batch_widget.engine import worker as _worker
from batch_widget.engine.cancellation import CancelFlag, RunEnd
from batch_widget.engine.errors import ClusterError
from batch_widget.engine.executors import ChunkExecutor, Task
from batch_widget.engine.niceness import yield_cpu
from batch_widget.engine.pacing import ChunkSizer
from batch_widget.engine.processor_rules import ProcessorRules
from batch_widget.engine.retrying import WORKER_DIED, RetryPolicy, RetryQueue
from batch_widget.engine.settings import Settings
from batch_widget.engine.stall import StallWatch
from batch_widget.engine.worker import IDX, STATUS, Outcome, OutcomeRow, error_types_of
from batch_widget.protocol import ItemStatus, StoreIOError

#: Chunks in flight per worker: one running, one queued, so no worker idles.
_CHUNKS_PER_WORKER = 2

CommitHook = Callable[[Sequence[tuple[int, int, int]], Sequence[OutcomeRow], int], None]
Item = tuple[int, str]


@dataclasses.dataclass(frozen=True)
class _Chunk:
    """Items handed to a worker together; ``isolated`` when it runs alone to find a crasher.

    ``marked`` holds the keys of its entries in ``_Unsaved.started``: the first index of
    a chunk of consecutive items, every index of a chunk of re-runs.
    """

    items: list[Item]
    isolated: bool = False
    marked: tuple[int, ...] = ()


#: The chunks running now, by the future of their outcomes.
_Inflight = dict[Future[list[OutcomeRow]], _Chunk]


@dataclasses.dataclass
class _Unsaved:
    """What the run has not yet committed: dispatched ranges and outcomes.

    ``started`` maps a chunk's first index to its ``(job_key, first, last)`` range,
    to be marked running. A chunk that ends before that commit is dropped from it:
    its outcomes say all there is, and its items are written once instead of twice.
    """

    started: dict[int, tuple[int, int, int]] = dataclasses.field(default_factory=dict)
    outcomes: list[OutcomeRow] = dataclasses.field(default_factory=list)
    failing_since: float | None = None

    def __bool__(self) -> bool:
        return bool(self.started or self.outcomes)


class JobRun:
    """One pass over a job's pending items.

    Parameters
    ----------
    job_id, job_key, ref, params
        The job's id and store key, processor and params. ``ref`` is an import path,
        or a function returning the job's pickled function: it is called when the run
        starts, so a stored pickle is in memory only while its job runs.
    executor
        What runs the chunks (made by :class:`~batch_widget.engine.executors.Executors`
        for this run, with its pool size).
    fetch
        ``fetch(after_index, limit)`` returns the next pending ``(index, input_json)``.
    commit
        ``commit(started_ranges, outcomes, retrying)`` stores a batch and publishes
        progress, with how many items wait for another attempt once it is stored (so a
        snapshot never counts a wait whose failed attempt the store does not have yet);
        it raises ``StoreIOError`` (and changes nothing) when the store fails.
    settings
        The engine's settings; the run reads ``progress_interval`` (how often it
        commits), ``cancel_timeout`` (how long running items get after a cancel or
        stop before process workers are terminated and threads abandoned),
        ``store_write_timeout`` (how long it retries a failing store),
        ``stall_warning_after`` and ``max_result_bytes``.
    policy, attempts
        The job's retry policy, and ``attempts(indexes)``: how many times each of
        those items started, as committed. A failed attempt the policy re-runs is
        committed ``pending`` (with its error) and runs again when its wait is over;
        the run ends once no item waits.
    """

    def __init__(
        self,
        *,
        job_id: str,
        job_key: int,
        ref: str | Callable[[], bytes],
        params: dict[str, Any],
        executor: ChunkExecutor,
        undispatched: int,
        fetch: Callable[[int, int], list[Item]],
        commit: CommitHook,
        settings: Settings,
        log: logging.Logger,
        policy: RetryPolicy | None = None,
        attempts: Callable[[Sequence[int]], dict[int, int]] | None = None,
    ) -> None:
        self.job_id = job_id
        self.job_key = job_key
        self.max_result_bytes = settings.max_result_bytes
        self.processor_rules = ProcessorRules.of(settings)
        self.ref = ref
        self.prepared = False
        self.params = params
        self.executor = executor
        self.undispatched = undispatched
        self.fetch = fetch
        self.commit = commit
        self.interval = progress_interval = settings.progress_interval
        self.log = log
        self.cancel_timeout = settings.cancel_timeout
        self.store_write_timeout = settings.store_write_timeout
        self.flag = CancelFlag()
        self.stall = StallWatch(settings.stall_warning_after, job_id, log)
        self.sizer = ChunkSizer(target=max(0.005, min(progress_interval / 2, 0.05)))
        #: Items whose worker process died with them inside: each runs again alone.
        self.suspects: deque[Item] = deque()
        self.abandoned: list[int] = []
        #: Set when the Dask scheduler was lost mid-run: the run ends and raises it.
        self.lost: ClusterError | None = None
        self.policy = policy or RetryPolicy()
        self.committed_attempts = attempts or (lambda indexes: dict.fromkeys(indexes, 0))
        #: Items that failed and wait for their next attempt.
        self.retry = RetryQueue()
        #: Attempts of the items that failed in this run (the store's count lags a commit).
        self.tried: dict[int, int] = {}
        self.rand = random.Random()

    # -- the executor ------------------------------------------------------------

    def pool_label(self) -> str:
        """Where the run's items run, for the log."""
        return self.executor.label()

    def pool_workers(self) -> int | None:
        """How many workers run the job now: the pool's size, or the Dask cluster's workers."""
        return self.executor.workers()

    # -- the run -----------------------------------------------------------------

    def prepare(self) -> None:
        """Check the processor against the rules now in force; raise ``ProcessorError`` if refused.

        The executor then gets ready for the task: thread workers share the one
        function, loaded here; each process gets the grant (import path or pickle)
        with its chunks and loads it once, checking it again, so a pickled function
        is never loaded in the server for those; a Dask run connects to its cluster
        and checks its workers' versions (``ClusterError`` when that fails).
        """
        ref = self.ref if isinstance(self.ref, str) else self.ref()
        grant = self.processor_rules.grant(ref)
        self.executor.prepare(Task(grant, self.params, self.job_key, self.max_result_bytes))
        self.prepared = True

    def run(self) -> RunEnd:
        """Process every pending item (or stop early when asked); return how it ended.

        Raises ``StoreIOError``/``StoreLost`` when the store stays unwritable.
        """
        if not self.prepared:
            self.prepare()
        yield_cpu()
        self.executor.start(self.flag)
        try:
            self._drive()
        finally:
            self.executor.shutdown(abandoned=bool(self.abandoned))
            self.executor.release()  # a notebook function may hold a lot: let it go now
            self.prepared = False
        if self.lost is not None:
            raise self.lost
        return self.flag.reason or RunEnd.FINISHED

    def _drive(self) -> None:
        inflight: _Inflight = {}
        unsaved = _Unsaved()
        cursor, exhausted = -1, False
        next_commit = time.monotonic() + self.interval
        while True:
            cursor, exhausted = self._feed(inflight, unsaved, cursor, exhausted)
            if (
                not inflight
                and (exhausted or self.flag.is_set())
                and not self.suspects
                and not self.retry
            ):
                break
            timeout = self._wait_for(next_commit, self._may_rerun(inflight))
            if inflight:
                finished, _ = wait(inflight, timeout=timeout, return_when=FIRST_COMPLETED)
            else:  # only re-runs wait: sleep until one is due, or a cancel
                self.flag.thread_event.wait(timeout)
                finished = set()
            if self._collect(inflight, finished, unsaved):
                self._rebuild_pool(inflight, unsaved)
            if self.lost is not None:
                self._give_back(inflight, unsaved)
                break
            if finished or not inflight:  # waiting out a re-run's delay is not a stall
                self.stall.progressed()
            else:
                self.stall.check(c.items for c in inflight.values())
            if self._grace_over() and inflight:
                self._abandon(inflight)
                break
            if time.monotonic() >= next_commit:
                self._save(unsaved)
                next_commit = time.monotonic() + self.interval
        self._save(unsaved, final=True)

    def _feed(
        self,
        inflight: _Inflight,
        unsaved: _Unsaved,
        cursor: int,
        exhausted: bool,
    ) -> tuple[int, bool]:
        """Hand out what runs next: suspects alone, then re-runs that are due, then new items."""
        if self.flag.is_set():
            unsaved.outcomes.extend(_skipped(self.suspects, self.job_key))
            self.suspects.clear()
            self.retry.clear()  # sent back pending: the job's end decides their fate
        elif self._isolating(inflight):
            if not inflight:  # alone in the pool, so a crash names its item
                self._dispatch(inflight, _Chunk([self.suspects.popleft()], isolated=True))
        else:
            self._rerun_due(inflight, unsaved)
            return self._fill(inflight, unsaved, cursor, exhausted)
        return cursor, exhausted

    def _fill(
        self,
        inflight: _Inflight,
        unsaved: _Unsaved,
        cursor: int,
        exhausted: bool,
    ) -> tuple[int, bool]:
        """Keep every worker fed; return the new cursor and whether the ledger ran dry."""
        workers = self.executor.capacity()
        while not exhausted and len(inflight) < workers * _CHUNKS_PER_WORKER:
            try:
                chunk = self.fetch(cursor, self.sizer.size(self.undispatched, workers))
            except StoreIOError as exc:
                self._store_failed(unsaved, exc)
                if not inflight:
                    time.sleep(self.interval)  # nothing to wait on: do not spin
                break
            if not chunk:
                return cursor, True
            cursor = chunk[-1][0]
            self.undispatched -= len(chunk)
            unsaved.started[chunk[0][0]] = (self.job_key, chunk[0][0], cursor)
            self._dispatch(inflight, _Chunk(chunk, marked=(chunk[0][0],)))
        return cursor, exhausted

    def _rerun_due(self, inflight: _Inflight, unsaved: _Unsaved) -> None:
        """Dispatch the failed items whose wait is over, ahead of new items."""
        while self.retry and self._room(inflight):
            workers = self.executor.capacity()
            due = self.retry.take_due(time.monotonic(), self.sizer.size(len(self.retry), workers))
            if not due:
                return
            for index, _ in due:
                unsaved.started[index] = (self.job_key, index, index)
            self._dispatch(inflight, _Chunk(due, marked=tuple(index for index, _ in due)))

    def _dispatch(self, inflight: _Inflight, chunk: _Chunk) -> None:
        assert self.prepared, "run() prepares the processor first"
        inflight[self.executor.submit(chunk.items)] = chunk

    def _may_rerun(self, inflight: _Inflight) -> bool:
        """Whether a re-run that is due would be dispatched now (a worker free, no isolation)."""
        return not self.flag.is_set() and not self._isolating(inflight) and self._room(inflight)

    def _isolating(self, inflight: _Inflight) -> bool:
        """Whether suspects of a crash run one at a time now (nothing else is dispatched)."""
        return bool(self.suspects) or any(c.isolated for c in inflight.values())

    def _room(self, inflight: _Inflight) -> bool:
        """Whether the workers can take another chunk."""
        return len(inflight) < self.executor.capacity() * _CHUNKS_PER_WORKER

    def _wait_for(self, next_commit: float, rerun_wakes: bool) -> float:
        """Seconds to wait for a chunk: until the next commit, the cancel's grace ends, or
        (when ``rerun_wakes``: one could be dispatched) the next re-run is due."""
        now = time.monotonic()
        timeout = next_commit - now
        if self.flag.set_at is not None:
            timeout = min(timeout, self.flag.set_at + self.cancel_timeout - now)
        due = self.retry.next_due()
        if due is not None and rerun_wakes:
            timeout = min(timeout, due - now)
        return max(0.0, timeout)

    def _grace_over(self) -> bool:
        set_at = self.flag.set_at
        return set_at is not None and time.monotonic() >= set_at + self.cancel_timeout

    # -- outcomes ------------------------------------------------------------------

    def _collect(
        self,
        inflight: _Inflight,
        finished: Iterable[Future[Any]],
        unsaved: _Unsaved,
    ) -> bool:
        """Take the outcomes of ``finished`` chunks; return True if a crash broke the pool."""
        broken = False
        for future in finished:
            chunk = inflight.pop(future)
            try:
                result = future.result()
            except ClusterError as exc:  # the scheduler is gone: its items wait for a retry
                self.lost = self.lost or exc
                unsaved.outcomes.extend(_skipped(chunk.items, self.job_key))
            except FutureCancelled:  # abandoned after a cancel: it is settled elsewhere
                continue
            except BrokenExecutor as exc:
                broken = broken or self.executor.crash_breaks_pool
                if chunk.isolated:
                    unsaved.outcomes.extend(self._settle(chunk, self._died(chunk.items, exc)))
                else:
                    self.suspects.extend(chunk.items)
            except BaseException as exc:  # the chunk as a whole could not run
                unsaved.outcomes.extend(self._settle(chunk, self._lost(chunk.items, exc)))
            else:
                self.sizer.observe(result)
                unsaved.outcomes.extend(self._settle(chunk, result))
                for index in chunk.marked:
                    unsaved.started.pop(index, None)
        return broken

    def _attempts_before(self, indexes: list[int]) -> dict[int, int]:
        """How many times each of ``indexes`` started before the outcomes now in hand."""
        unknown = [index for index in indexes if index not in self.tried]
        if not unknown:
            return self.tried
        try:
            committed = self.committed_attempts(unknown)
        except StoreIOError as exc:  # counted from this run on: at worst a few more re-runs
            self.log.warning(
                "job %s: %s; counting the attempts of %d failed item(s) from this run on",
                self.job_id,
                exc,
                len(unknown),
            )
            committed = {}
        return {**committed, **self.tried}

    def _settle(self, chunk: _Chunk, outcomes: list[OutcomeRow]) -> list[OutcomeRow]:
        """``outcomes`` with each failed attempt the policy re-runs sent back to pending.

        Such an item keeps its error (and loses the attempt's log) while it waits;
        it is queued to run again after its delay. During a stop it is not queued:
        pending, the job's end decides its fate (a cancel cancels it, a shutdown
        leaves it to the next run).
        """
        if not self.policy.retries:
            return outcomes
        failed = [o[IDX] for o in outcomes if o[STATUS] == ItemStatus.FAILED]
        if not failed:
            return outcomes
        before = self._attempts_before(failed)
        inputs = dict(chunk.items)
        settled: list[OutcomeRow] = []
        now = time.monotonic()
        for row in outcomes:
            if row[STATUS] != ItemStatus.FAILED:
                settled.append(row)
                continue
            outcome = Outcome._make(row)  # a failure is an Outcome already; _make names any row
            attempts = self.tried[outcome.idx] = before.get(outcome.idx, 0) + outcome.ran
            if not self.policy.retries_after(attempts, error_types_of(row)):
                settled.append(outcome)
                continue
            settled.append(outcome._replace(status=ItemStatus.PENDING.value, log=None))
            if self.flag.is_set():
                continue
            wait_for = self.policy.wait_before(attempts + 1, self.rand)
            self.retry.add(now + wait_for, (outcome.idx, inputs[outcome.idx]))
            self.log.debug(
                "job %s: item %d failed its attempt %d (%s); attempt %d in %.2f s",
                self.job_id,
                outcome.idx,
                attempts,
                outcome.error,
                attempts + 1,
                wait_for,
            )
        return settled

    def _give_back(self, inflight: _Inflight, unsaved: _Unsaved) -> None:
        """The Dask scheduler was lost: collect what still settles, send the rest back to pending.

        The client cancels every future it holds when its connection breaks, so
        the wait is short; whatever is still out after ``cancel_timeout`` is pending
        again too. The ledger keeps every outcome already committed.
        """
        finished, _ = wait(inflight, timeout=self.cancel_timeout)
        self._collect(inflight, finished, unsaved)
        for chunk in inflight.values():
            unsaved.outcomes.extend(_skipped(chunk.items, self.job_key))
        inflight.clear()
        self.log.warning(
            "job %s: %s; its unfinished items stay pending for a retry", self.job_id, self.lost
        )

    def _rebuild_pool(self, inflight: _Inflight, unsaved: _Unsaved) -> None:
        """A worker died and broke the pool: settle its other chunks, start a fresh pool.

        The items of every chunk the dead pool held become suspects and run again,
        one at a time, so the next crash names the item that causes it; only that
        item fails, and the job goes on.
        """
        wait(inflight)  # a broken pool fails every future it still holds at once
        self._collect(inflight, list(inflight), unsaved)
        self.log.warning(
            "job %s: a worker process died; %d item(s) it may have been "
            "running will run again one at a time to find the one that crashes it",
            self.job_id,
            len(self.suspects),
        )
        self.executor.replace_broken_pool()

    def _abandon(self, inflight: _Inflight) -> None:
        """Give up on items still running ``cancel_timeout`` after a cancel or stop."""
        self.abandoned = sorted(index for chunk in inflight.values() for index, _ in chunk.items)
        shown = ", ".join(map(str, self.abandoned[:10])) + (
            ", ..." if len(self.abandoned) > 10 else ""
        )
        what = "cancel" if self.flag.reason is RunEnd.CANCELLED else "server shutdown"
        fate = self.executor.abandon(list(inflight))
        self.log.warning(
            "job %s: %d item(s) still running %.1f s after the %s (index(es) %s); %s",
            self.job_id,
            len(self.abandoned),
            self.cancel_timeout,
            what,
            shown,
            fate,
        )
        inflight.clear()

    def _save(self, unsaved: _Unsaved, final: bool = False) -> None:
        """Commit what is unsaved; on a store failure keep it and retry (wait if ``final``)."""
        while unsaved:
            try:
                self.commit(list(unsaved.started.values()), unsaved.outcomes, len(self.retry))
            except StoreIOError as exc:
                self._store_failed(unsaved, exc)
                if not final:
                    return
                time.sleep(min(1.0, max(self.interval, 0.05)))
                continue
            if unsaved.failing_since is not None:
                self.log.warning(
                    "job %s: the job store is writable again after %.1f s; progress saved",
                    self.job_id,
                    time.monotonic() - unsaved.failing_since,
                )
            unsaved.started, unsaved.outcomes, unsaved.failing_since = {}, [], None
            return

    def _store_failed(self, unsaved: _Unsaved, exc: StoreIOError) -> None:
        """Note a store failure; raise once it has lasted ``store_write_timeout``."""
        now = time.monotonic()
        if unsaved.failing_since is None:
            unsaved.failing_since = now
            self.log.warning(
                "job %s: %s; holding its progress in memory and retrying for up to %.0f s",
                self.job_id,
                exc,
                self.store_write_timeout,
            )
        elif now - unsaved.failing_since >= self.store_write_timeout:
            raise StoreIOError(f"{exc} (still failing after {self.store_write_timeout:g} s)")

    def _died(self, items: Sequence[Item], exc: BaseException) -> list[OutcomeRow]:
        self.log.warning(
            "job %s: item %s crashed its worker process (%s)",
            self.job_id,
            ", ".join(str(i) for i, _ in items),
            exc,
        )
        message = self.executor.crash_message
        return [_worker.lost(message, self.job_key, i, WORKER_DIED) for i, _ in items]

    def _lost(self, items: Sequence[Item], exc: BaseException) -> list[OutcomeRow]:
        self.log.warning(
            "job %s: a chunk of %d item(s) could not run: %r", self.job_id, len(items), exc
        )
        message = f"the worker could not run this item: {_worker.describe(exc)}"
        types = _worker.class_names(exc)
        return [_worker.lost(message, self.job_key, i, types) for i, _ in items]


def _skipped(items: Iterable[Item], job_key: int) -> list[OutcomeRow]:
    """Outcomes that send never-run items back to pending (the job's end decides their fate)."""
    return [_worker.not_run(job_key, i) for i, _ in items]
