"""The job manager: the state machine of docs/http-api.md, scheduling, recovery, publishing.

It owns every job's in-memory record (the one place snapshots are built),
runs up to ``max_concurrent_jobs`` at once (one ``JobRun`` thread each) and
hands every change to its :class:`~batch_widget.engine.publishing.Outbox`, which
publishes it on the server's event loop. It knows nothing of HTTP, tornado or
Jupyter.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence

from batch_widget.engine import job_entry, validation
from batch_widget.engine.cancellation import RunEnd
from batch_widget.engine.errors import ClusterError, ProcessorError
from batch_widget.engine.executors import Executors
from batch_widget.engine.job_entry import Entry, now_iso, persist, snapshot_of
from batch_widget.engine.ledger import ResultsChunk
from batch_widget.engine.publishing import EventLoop, Outbox, Publisher
from batch_widget.engine.retrying import RetryPolicy
from batch_widget.engine.runner import JobRun
from batch_widget.engine.settings import DEFAULTS, Settings
from batch_widget.engine.store import OutputsPage, Store
from batch_widget.engine.validation import JobRequest
from batch_widget.engine.worker import OutcomeRow
from batch_widget.protocol import (
    DELETED,
    BatchError,
    ItemRecord,
    ItemStatus,
    JobNotFound,
    JobStateConflict,
    JobStatus,
    Snapshot,
    StoreLost,
    StoreUnavailable,
)

_log = logging.getLogger("batch_widget")
#: A job's end is written with a short retry: it holds the lock other actions wait on.
_FINISH_WRITE_TIMEOUT = 5.0
#: Rows per read of the results stream (each read also stops at ledger.PAGE_BYTES).
RESULTS_CHUNK = 10_000


class JobManager:
    """Create, run, cancel, retry and inspect batch jobs backed by a ``Store``."""

    def __init__(
        self,
        store: Store,
        broadcaster: Publisher | None,
        settings: Settings = DEFAULTS,
        *,
        loop: EventLoop | None = None,
        log: logging.Logger | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.log = log or _log
        self.outbox = Outbox(broadcaster, settings, self._version, self.log, loop)
        self.rules = validation.Rules(settings)
        #: What runs the chunks: warm process pools, the Dask client, made on first use.
        self.executors = Executors(settings, self.log)
        # _lock guards the in-memory records and is only ever held briefly, so
        # reads (status polls on the IOLoop) never wait on the disk. _actions
        # serialises state changes (cancel, retry, delete, finish), which may
        # write a whole job's items. Order: _actions before _lock, never after.
        self._lock = threading.RLock()
        self._actions = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._queue: deque[str] = deque()
        self._running: dict[str, Entry] = {}
        #: Every job thread not yet joined: a thread frees its slot a little before it ends.
        self._threads: set[threading.Thread] = set()
        self._started = False
        self._stopping = False
        job_entry.log_recovered(self.log, *store.interrupt_unfinished(now_iso()))
        self._jobs: dict[str, Entry] = {row.id: Entry(row) for row in store.load_jobs()}

    @property
    def broadcaster(self) -> Publisher | None:
        """Where snapshots are published (through :attr:`outbox`)."""
        return self.outbox.publisher

    # -- lifecycle -------------------------------------------------------------

    def start(self, loop: EventLoop | None = None) -> None:
        """Start running queued jobs; snapshots are published on ``loop`` from now on."""
        with self._lock:
            if self._started:
                return
            if loop is not None:
                self.outbox.loop = loop
            self._started = True
            resumable = [
                e
                for e in self._jobs.values()
                if self.settings.resume_interrupted and e.row.status is JobStatus.INTERRUPTED
            ]
        for entry in resumable:
            self._resume(entry.row.id)
        self._schedule()

    def _resume(self, job_id: str) -> None:
        """Re-queue one interrupted job; a job that cannot resume stays as it is, logged."""
        self.log.info("resuming interrupted job %s", job_id)
        try:
            self.retry(job_id)
        except BatchError as exc:
            self.log.warning("interrupted job %s cannot be resumed: %s", job_id, exc)

    def stop(self, timeout: float | None = None) -> None:
        """Stop starting items and mark unfinished jobs interrupted.

        Running items get ``cancel_timeout`` seconds to finish; then their process
        workers are terminated and their threads abandoned (daemon threads never
        keep the server alive). Returns within ``timeout`` (default: that plus 5 s).
        """
        timeout = self.settings.cancel_timeout + 5.0 if timeout is None else timeout
        with self._actions:
            with self._lock:
                self._stopping = True
                queued = [self._jobs[job_id] for job_id in self._queue]
                self._queue.clear()
                runs = [e.run for e in self._running.values() if e.run is not None]
                threads = set(self._threads)
            for run in runs:
                run.flag.set(RunEnd.STOPPED)
            for entry in queued:
                self._finish(entry, JobStatus.INTERRUPTED)
        deadline = time.monotonic() + timeout
        for thread in threads:  # a thread frees its run's slot a little before it ends
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                self.log.warning("%s did not end within %.0f s of shutdown", thread.name, timeout)
        self.executors.close()

    # -- queries ---------------------------------------------------------------

    def get(self, job_id: str) -> Snapshot:
        """The job's current snapshot."""
        with self._lock:
            return snapshot_of(self._entry(job_id))

    def list_jobs(
        self, status: str | None = None, limit: int = 100, offset: int = 0
    ) -> tuple[list[Snapshot], int]:
        """Jobs newest first, optionally of one status, and how many match."""
        wanted = validation.job_status(status)
        validation.page(limit, offset)
        with self._lock:
            entries = [e for e in self._jobs.values() if wanted is None or e.row.status is wanted]
            entries.sort(key=lambda e: e.row.key, reverse=True)
            return [snapshot_of(e) for e in entries[offset : offset + limit]], len(entries)

    def active_snapshots(self) -> list[Snapshot]:
        """Snapshots of every queued or processing job."""
        with self._lock:
            return [snapshot_of(e) for e in self._jobs.values() if not e.row.status.terminal]

    def items(
        self, job_id: str, status: str | None = None, offset: int = 0, limit: int = 1000
    ) -> tuple[list[ItemRecord], int]:
        """A page of the job's item ledger, and how many items match."""
        wanted = validation.item_status(status)
        validation.page(limit, offset)
        with self._lock:
            key = self._entry(job_id).row.key
        return self.store.items(key, wanted, offset, limit)

    def items_page(
        self,
        job_id: str,
        status: str | None = None,
        offset: int = 0,
        limit: int = 1000,
        after: int | None = None,
    ) -> bytes:
        """The JSON answer of ``GET .../items``, built from the stored JSON. Blocking.

        ``after`` pages by index (items after it), at a cost that does not grow with
        the position; ``offset`` skips rows. A page may hold fewer than ``limit``
        items (never none while some match): it stops before the item that would
        take it over the store's byte budget. ``total`` comes from the job's own
        counters where they hold it (all items, ``done``, ``failed``).
        """
        wanted = validation.item_status(status)
        position = validation.position(offset, after)
        validation.page(limit, offset)
        with self._lock:
            row = self._entry(job_id).row
            total = job_entry.counted(row, wanted)
        return self.store.items_page(row.key, wanted, position, limit, total=total)

    def results_chunk(
        self, job_id: str, status: str | None = None, after: int = -1
    ) -> ResultsChunk:
        """The next part of ``GET .../results`` after index ``after``. Blocking."""
        wanted = validation.item_status(status)
        validation.after_index(after)
        with self._lock:
            key = self._entry(job_id).row.key
        return self.store.results_chunk(key, wanted, after, RESULTS_CHUNK)

    def outputs(self, job_id: str, after: int = -1, limit: int = 1000) -> OutputsPage:
        """A page of the files named under ``"outputs"`` by the job's results. Blocking.

        The outputs of up to ``limit`` items after index ``after``, as the processors
        wrote them, with the job's total and where the next page starts.
        """
        validation.after_index(after)
        validation.page(limit, 0)
        with self._lock:
            entry = self._entry(job_id)
            key, version = entry.row.key, entry.row.version
            finished = entry.row.status.terminal
            known = entry.outputs_total
        total = known[1] if known is not None and known[0] == version else None
        page = self.store.outputs(key, after, limit, total=total)
        if finished and total is None:  # every result of a finished job is committed
            entry.outputs_total = (version, page.total)
        return page

    def wait(self, job_id: str, timeout: float | None = None) -> Snapshot:
        """Block until the job is terminal; raise ``TimeoutError`` after ``timeout`` seconds."""
        with self._changed:
            entry = self._entry(job_id)
            if not self._changed.wait_for(lambda: entry.row.status.terminal, timeout):
                raise TimeoutError(f"job {job_id} is still {entry.row.status.value}")
            return snapshot_of(entry)

    # -- actions ---------------------------------------------------------------

    def create(self, request: JobRequest) -> Snapshot:
        """Check, store and queue a job. Blocking: it writes every item."""
        self._check_running()
        spec = self.rules.job_spec(request)
        items = request.items
        row = job_entry.new_row(job_entry.new_id(self._jobs), spec, len(items))
        self.store.insert_job(row, items, spec.pickled)
        with self._lock:
            entry = self._jobs[row.id] = Entry(row)
            self._queue.append(row.id)
            snapshot = snapshot_of(entry)
        self.log.info(
            "job %s (%s) created: %d items, processor %s",
            row.id,
            row.name,
            row.total,
            row.processor,
        )
        self.outbox.publish(snapshot)
        self._schedule()
        return snapshot

    def cancel(self, job_id: str) -> Snapshot:
        """Start no more items; running ones finish. Queued jobs end at once.

        Blocking for a queued job (it marks every item cancelled).
        """
        with self._actions:
            with self._lock:
                entry = self._entry(job_id)
                status = entry.row.status
                if status.terminal:
                    raise JobStateConflict(f"job {job_id} is already {status.value}")
                if entry.run is not None:
                    entry.run.flag.set(RunEnd.CANCELLED)
                    self.log.info(
                        "job %s cancel requested; running items get %g s to finish",
                        job_id,
                        self.settings.cancel_timeout,
                    )
                    return snapshot_of(entry)
                if job_id in self._queue:
                    self._queue.remove(job_id)
                else:  # neither queued nor running: end it rather than leave it stuck
                    self.log.warning(
                        "job %s was %s with no run; cancelling it", job_id, status.value
                    )
            return self._finish(entry, JobStatus.CANCELLED, items=ItemStatus.CANCELLED)

    def retry(self, job_id: str) -> Snapshot:
        """Queue again every item not done of a terminal job.

        A job that is not ``completed`` but has every item done (interrupted or
        cancelled just after its last item) has nothing to run: it completes.
        """
        self._check_running()
        with self._actions:
            with self._lock:
                entry = self._entry(job_id)
                row = entry.row
                if not row.status.terminal or entry.run is not None:
                    raise JobStateConflict(
                        f"job {job_id} is {row.status.value}; only a finished job can be retried"
                    )
                if row.done == row.total:
                    if row.status is JobStatus.COMPLETED:
                        raise JobStateConflict(
                            f"job {job_id} has nothing to retry: every item is done"
                        )
                    nothing_left = True
                else:
                    nothing_left = False
                    self.rules.check_stored_processor(row.processor, row.callable_size is not None)
                    queued = dataclasses.replace(
                        row,
                        status=JobStatus.QUEUED,
                        failed=0,
                        finished_at=None,
                        error=None,
                        version=row.version + 1,
                    )
            if nothing_left:
                self.log.info("job %s had every item done: completed", job_id)
                return self._finish(entry, JobStatus.COMPLETED)
            self.store.reset_for_retry(queued)
            with self._lock:
                entry.row = queued
                self._queue.append(job_id)
                snapshot = snapshot_of(entry)
        self.log.info(
            "job %s queued for retry (%d items to run)", job_id, queued.total - queued.done
        )
        self.outbox.publish(snapshot)
        self._schedule()
        return snapshot

    def delete(self, job_id: str) -> None:
        """Forget a terminal job and its items."""
        with self._actions:
            with self._lock:
                entry = self._entry(job_id)
                if not entry.row.status.terminal or entry.run is not None:
                    raise JobStateConflict(
                        f"job {job_id} is {entry.row.status.value}; cancel it before deleting it"
                    )
            self.store.delete_job(entry.row)
            with self._lock:
                del self._jobs[job_id]
                farewell = snapshot_of(entry)
        self.log.info("job %s deleted", job_id)
        # Widgets still showing the job learn it is gone (and stop asking for it).
        self.outbox.publish({**farewell, "status": DELETED, "version": farewell["version"] + 1})

    # -- running ---------------------------------------------------------------

    def _schedule(self) -> None:
        with self._lock:
            while (
                self._started
                and not self._stopping
                and self._queue
                and len(self._running) < self.settings.max_concurrent_jobs
            ):
                entry = self._jobs[self._queue.popleft()]
                self._running[entry.row.id] = entry
                run = entry.run = self._new_run(entry)
                entry.retrying = 0
                thread = threading.Thread(
                    target=self._run_job,
                    args=(entry, run),
                    name=f"batch-job-{entry.row.id}",
                    daemon=True,
                )
                self._threads = {t for t in self._threads if t.is_alive()}
                self._threads.add(thread)
                thread.start()

    def _new_run(self, entry: Entry) -> JobRun:
        row = entry.row
        key = row.key
        run = JobRun(
            job_id=row.id,
            job_key=key,
            ref=row.processor
            if row.callable_size is None
            else lambda: self.store.load_callable(key),
            params=validation.load_params(row.params),
            executor=self.executors.make(row.executor, row.max_workers, job_id=row.id, job_key=key),
            undispatched=row.total - row.done,
            fetch=lambda after, limit: self.store.pending_items(key, after, limit),
            commit=lambda started, outcomes, retrying: self._commit(
                entry, run, started, outcomes, retrying
            ),
            settings=self.settings,
            log=self.log,
            policy=RetryPolicy(row.retries, row.retry_delay, row.retry_on),
            attempts=lambda indexes: self.store.attempts(key, indexes),
        )
        return run

    def _run_job(self, entry: Entry, run: JobRun) -> None:
        """The body of a job's thread: whatever happens, the job ends in a terminal state."""
        status, error, items = JobStatus.COMPLETED, None, None
        try:
            run.prepare()
            if not run.flag.is_set():
                self._begin(entry, run)
            end = run.run()
        except (ProcessorError, StoreUnavailable, ClusterError) as exc:
            status, error = JobStatus.FAILED, str(exc)
        except BaseException as exc:
            self.log.exception("job %s crashed", entry.row.id)
            status, error = JobStatus.FAILED, f"the job crashed: {exc!r}"
        else:
            if end is RunEnd.CANCELLED:
                status, items = JobStatus.CANCELLED, ItemStatus.CANCELLED
            elif end is RunEnd.STOPPED:
                status, items = JobStatus.INTERRUPTED, ItemStatus.PENDING
        try:
            self._finish(entry, status, error=error, items=items, run=run)
        finally:
            self._release(entry, run)
            self.store.release_reader()  # one connection per job thread would pile up
            self._schedule()

    def _begin(self, entry: Entry, run: JobRun) -> None:
        with self._lock:
            # started_at is the job's first start: a retried job's elapsed time goes on.
            saved = dataclasses.replace(
                entry.row,
                status=JobStatus.PROCESSING,
                started_at=entry.row.started_at or now_iso(),
                version=entry.row.version + 1,
            )
        persist(lambda: self.store.save_job(saved), self.settings.store_write_timeout, self.log)
        with self._lock:
            entry.row = saved
            entry.meter.reset(saved.done + saved.failed)
            snapshot = snapshot_of(entry)
        self.log.info(
            "job %s started: %d items to run on %s",
            saved.id,
            saved.total - saved.done,
            run.pool_label(),
        )
        self.outbox.publish(snapshot)

    def _commit(
        self,
        entry: Entry,
        run: JobRun,
        started: Sequence[tuple[int, int, int]],
        outcomes: Sequence[OutcomeRow],
        retrying: int,
    ) -> None:
        """Store a batch of progress, then show it; on a store error change nothing and raise.

        ``retrying`` (the items waiting for another attempt once the batch is stored)
        is shown with the batch, so a snapshot's counts and the items agree.
        """
        if not started and not outcomes:
            return
        done, failed = job_entry.tally(outcomes)
        with self._lock:
            if entry.run is not run:
                return
            row = entry.row
            saved = dataclasses.replace(
                row, done=row.done + done, failed=row.failed + failed, version=row.version + 1
            )
        self.store.commit_progress(saved, started, outcomes)
        with self._lock:
            entry.row, entry.retrying = saved, retrying
            entry.meter.record(saved.done + saved.failed)
            snapshot = snapshot_of(entry)
        self.log.debug(
            "job %s progress %d done, %d failed of %d",
            saved.id,
            saved.done,
            saved.failed,
            saved.total,
        )
        self.outbox.publish(snapshot)

    def _finish(
        self,
        entry: Entry,
        status: JobStatus,
        *,
        error: str | None = None,
        items: ItemStatus | None = None,
        run: JobRun | None = None,
    ) -> Snapshot:
        """Commit, then show, the job's terminal state; free its slot in the same step.

        If the store cannot record the end, the job still ends here (so it can be
        retried or deleted) and the failure is logged: the store keeps the job
        active, and the next server start closes it.
        """
        with self._actions:
            with self._lock:
                row = entry.row
                saved = dataclasses.replace(
                    row, status=status, finished_at=now_iso(), error=error, version=row.version + 1
                )
            write: Callable[[], object] = (
                (lambda: self.store.save_job(saved))
                if items is None
                else (lambda: self.store.finish_items(saved, items))
            )
            try:
                persist(
                    write, min(self.settings.store_write_timeout, _FINISH_WRITE_TIMEOUT), self.log
                )
            except StoreUnavailable as exc:
                self.log.error(
                    "job %s ended %s, but the job store could not record it: %s",
                    row.id,
                    status.value,
                    exc,
                )
                if status is not JobStatus.FAILED:
                    saved = dataclasses.replace(saved, status=JobStatus.FAILED)
                saved.error = f"{error + '; ' if error else ''}{exc}"
            with self._changed:
                entry.row = saved
                self._release_locked(entry, run)
                snapshot = snapshot_of(entry)
                self._changed.notify_all()
        level = logging.WARNING if saved.status is JobStatus.FAILED else logging.INFO
        self.log.log(
            level,
            "job %s %s: %d done, %d failed of %d%s",
            row.id,
            saved.status.value,
            saved.done,
            saved.failed,
            saved.total,
            f" ({saved.error})" if saved.error else "",
        )
        self.outbox.publish(snapshot)
        return snapshot

    def _release(self, entry: Entry, run: JobRun) -> None:
        """Free the job's run slot if ``run`` still holds it (a last resort after a crash)."""
        with self._changed:
            if entry.run is not run:
                return
            if not entry.row.status.terminal:
                entry.row = dataclasses.replace(
                    entry.row,
                    status=JobStatus.FAILED,
                    finished_at=now_iso(),
                    error="the job's run ended without recording an end; see the server log",
                    version=entry.row.version + 1,
                )
            self._release_locked(entry, run)
            self._changed.notify_all()
            snapshot = snapshot_of(entry)
        self.outbox.publish(snapshot)

    def _release_locked(self, entry: Entry, run: JobRun | None) -> None:
        if run is not None and entry.run is run:
            entry.run = None
            self._running.pop(entry.row.id, None)

    def _check_running(self) -> None:
        if self._stopping:
            raise StoreUnavailable("the server is shutting down; try again once it restarted")
        if self.store.lost is not None:
            raise StoreLost(self.store.lost)

    def _version(self, job_id: str) -> int | None:
        with self._lock:
            entry = self._jobs.get(job_id)
            return None if entry is None else entry.row.version

    # -- helpers ---------------------------------------------------------------

    def _entry(self, job_id: str) -> Entry:
        entry = self._jobs.get(job_id) if isinstance(job_id, str) else None
        if entry is None:
            raise JobNotFound(str(job_id))
        return entry
