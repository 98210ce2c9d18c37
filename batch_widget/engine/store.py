"""The job store: one SQLite file in WAL mode, written in batches.

Writes go through one connection under a lock, one transaction per batch;
reads use a connection per thread, so WAL lets them run beside a write.
The store knows nothing of HTTP, threads pools or widgets.
"""

from __future__ import annotations

import itertools
import json
import logging
import operator
import os
import re
import sqlite3
import stat
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from batch_widget.engine import jsontext, ledger
from batch_widget.engine.settings import DEFAULTS
from batch_widget.protocol import (
    InvalidRequest,
    ItemRecord,
    ItemStatus,
    JobStatus,
    StoreIOError,
    StoreLost,
    StoreUnavailable,
)
from batch_widget.runtime import UnsafeRuntimeDir, open_no_symlink

SCHEMA_VERSION = 4

#: What an item's log becomes once its job's logs reached ``max_job_log_bytes``.
LOG_DROPPED = (
    "[log dropped: this job's item logs reached max_job_log_bytes; the first items' logs are kept]"
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    key          INTEGER PRIMARY KEY,
    id           TEXT NOT NULL UNIQUE,
    name         TEXT NOT NULL,
    processor    TEXT NOT NULL,
    callable     BLOB,
    params       TEXT NOT NULL,
    max_workers  INTEGER,
    executor     TEXT NOT NULL,
    status       TEXT NOT NULL,
    total        INTEGER NOT NULL,
    done         INTEGER NOT NULL DEFAULT 0,
    failed       INTEGER NOT NULL DEFAULT 0,
    version      INTEGER NOT NULL DEFAULT 0,
    created_at   TEXT,
    started_at   TEXT,
    finished_at  TEXT,
    error        TEXT,
    log_bytes    INTEGER NOT NULL DEFAULT 0,
    logs_cut     INTEGER NOT NULL DEFAULT 0,
    retries      INTEGER NOT NULL DEFAULT 0,
    retry_delay  REAL NOT NULL DEFAULT 1.0,
    retry_on     TEXT
);
CREATE TABLE IF NOT EXISTS items (
    job          INTEGER NOT NULL REFERENCES jobs(key) ON DELETE CASCADE,
    idx          INTEGER NOT NULL,
    input        TEXT NOT NULL,
    status       TEXT NOT NULL,
    result       TEXT,
    error        TEXT,
    traceback    TEXT,
    duration     REAL,
    log          TEXT,
    attempts     INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (job, idx)
) WITHOUT ROWID;
"""

_JOB_COLUMNS = (
    "key",
    "id",
    "name",
    "processor",
    "callable_size",
    "params",
    "max_workers",
    "executor",
    "status",
    "total",
    "done",
    "failed",
    "version",
    "created_at",
    "started_at",
    "finished_at",
    "error",
    "log_bytes",
    "logs_cut",
    "retries",
    "retry_delay",
    "retry_on",
)
#: What ``load_jobs`` selects: the size of a pickled function, never the pickle itself.
_JOB_SELECT = ", ".join(
    "length(callable) AS callable_size" if name == "callable_size" else name
    for name in _JOB_COLUMNS
)
_MUTABLE_JOB_COLUMNS = (
    "status",
    "done",
    "failed",
    "version",
    "started_at",
    "finished_at",
    "error",
    "log_bytes",
    "logs_cut",
)
_INSERT_BATCH = 10_000
#: Indexes per ``IN (...)`` query (SQLite allows 32,766 parameters).
_IN_BATCH = 500
#: Free pages (4 KiB each) worth handing back to the file system after a delete.
_VACUUM_MIN_PAGES = 256
_INCREMENTAL = 2  # PRAGMA auto_vacuum answers 0 (none), 1 (full) or 2 (incremental)
#: Where an outcome row (``worker.Outcome``, or any tuple in its column order) holds the
#: item's status and its log: the store takes plain rows, so it reads them by position.
_STATUS_FIELD, _LOG_FIELD = 0, 5
_log_of = operator.itemgetter(_LOG_FIELD)
#: The UTF-8 bytes of a job's stored item logs but the notes of dropped ones (a sub-select
#: over ``jobs.key``, with ``LOG_DROPPED`` as its parameter).
_LOG_BYTES_OF_JOB = (
    "SELECT coalesce(sum(length(CAST(log AS BLOB))), 0) FROM items "
    "WHERE items.job = jobs.key AND log IS NOT ?"
)
_LOG = logging.getLogger("batch_widget")
_POSIX = os.name == "posix"
_PRIVATE_FILE = 0o600
_PRIVATE_DIR = 0o700
#: The files SQLite keeps beside a WAL store.
_SIDE_FILES = ("-wal", "-shm", "-journal")
_STORE_FILE_SUFFIX = re.compile(r"\.(sqlite3?|db)(-wal|-shm|-journal|\.lock)?$")


@dataclass
class JobRow:
    """A job as stored: its definition plus its durable counters."""

    key: int
    id: str
    name: str
    processor: str
    #: Bytes of the job's pickled function (loaded only to run it), None for an import path.
    callable_size: int | None
    params: str
    max_workers: int | None
    executor: str
    status: JobStatus
    total: int
    done: int = 0
    failed: int = 0
    version: int = 0
    created_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    error: str | None = None
    #: UTF-8 bytes of the item logs the store holds for the job (what max_job_log_bytes caps).
    log_bytes: int = 0
    #: True once an item's log was dropped because the job's logs reached the cap.
    logs_cut: bool = False
    #: The job's item policy (docs/configuration.md): re-runs of a failed item, the first
    #: re-run's delay, and the exception class names re-run (None: any).
    retries: int = 0
    retry_delay: float = 1.0
    retry_on: tuple[str, ...] | None = None

    def mutable_values(self) -> tuple[Any, ...]:
        """The columns a job changes over its life, in ``_MUTABLE_JOB_COLUMNS`` order."""
        return (
            self.status.value,
            self.done,
            self.failed,
            self.version,
            self.started_at,
            self.finished_at,
            self.error,
            self.log_bytes,
            int(self.logs_cut),
        )


def path_from_url(db_url: str) -> Path:
    """Return the file path of a ``sqlite:///path`` URL."""
    prefix = "sqlite:///"
    if not db_url.startswith(prefix) or len(db_url) == len(prefix):
        raise ValueError(f"db_url {db_url!r} must look like 'sqlite:////absolute/path.sqlite'")
    return Path(db_url[len(prefix) :])


class Store:
    """SQLite persistence for jobs and their item ledgers."""

    def __init__(
        self,
        path: str | Path,
        *,
        max_job_log_bytes: int = DEFAULTS.max_job_log_bytes,
        log: logging.Logger | None = None,
    ) -> None:
        self.path = Path(path)
        #: The most bytes of item logs the store keeps per job; later items' logs are dropped.
        self.max_job_log_bytes = max_job_log_bytes
        private_dir(self.path.parent, log or _LOG)
        private_file(self.path, log or _LOG)
        self._lock = threading.Lock()
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._closed = False
        self._lost: str | None = None
        self._shrinks = False
        new = not self.path.exists() or self.path.stat().st_size == 0
        self._writer = self._connect(create=True, new_file=new)
        if self.path.is_symlink():  # planted between the check above and SQLite's open
            self._writer.close()
            raise _refused(self.path, "the job store", "is a symbolic link")
        self._identity = _file_identity(self.path)
        self._migrate()

    @classmethod
    def from_url(
        cls,
        db_url: str,
        *,
        max_job_log_bytes: int = DEFAULTS.max_job_log_bytes,
        log: logging.Logger | None = None,
    ) -> Store:
        """Open the store a ``sqlite:///...`` URL names, creating it if needed."""
        return cls(path_from_url(db_url), max_job_log_bytes=max_job_log_bytes, log=log)

    # -- connections -------------------------------------------------------

    def _connect(self, *, create: bool = False, new_file: bool = False) -> sqlite3.Connection:
        # Only the first connection may create the file: a reader opened after the
        # file was deleted must fail, not start an empty store beside the real one.
        uri = f"{self.path.resolve().as_uri()}?mode={'rwc' if create else 'rw'}"
        try:
            conn = sqlite3.connect(
                uri, uri=True, timeout=30, isolation_level=None, check_same_thread=False
            )
        except sqlite3.OperationalError:
            self.check_file()
            raise
        if new_file:
            # A file can take this mode only while empty, before journal_mode=WAL.
            # Stores made earlier keep mode NONE: they reuse freed pages, never shrink.
            conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        return conn

    def check_file(self) -> None:
        """Raise ``StoreLost`` if the store file was deleted or replaced since it was opened.

        SQLite keeps writing to a deleted file through its open descriptor, and a
        new connection would create an empty store in its place: both lose data
        silently, so every read and write checks first (one ``stat``).
        """
        if self._lost is None:
            try:
                identity = _file_identity(self.path)
            except OSError:
                identity = None
            if identity == self._identity:
                return
            state = "deleted" if identity is None else "replaced by another file"
            self._lost = (
                f"the job store {self.path} was {state} while the server was running; "
                "nothing more can be saved. Restart the Jupyter server to start a new store "
                "(restore the file first to keep its jobs)"
            )
        raise StoreLost(self._lost)

    @property
    def lost(self) -> str | None:
        """Why the store is gone for good, or None while it is fine."""
        return self._lost

    def _reader(self) -> sqlite3.Connection:
        self.check_file()
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
            with self._lock:
                self._readers.append(conn)
        return conn

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self._closed:
                raise RuntimeError("the job store is closed")
            self.check_file()
            conn = self._writer
            try:
                conn.execute("BEGIN IMMEDIATE")
                yield conn
                conn.execute("COMMIT")
            except BaseException as exc:
                if conn.in_transaction:
                    with suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                if _is_disk_error(exc):
                    self.check_file()
                    raise StoreIOError(
                        f"the job store {self.path} cannot be written: {exc}"
                    ) from exc
                raise

    def _migrate(self) -> None:
        with self._lock:
            (mode,) = self._writer.execute("PRAGMA auto_vacuum").fetchone()
            self._shrinks = mode == _INCREMENTAL
        with self._transaction() as conn:
            (version,) = conn.execute("PRAGMA user_version").fetchone()
            if version > SCHEMA_VERSION:
                raise RuntimeError(
                    f"{self.path} has schema {version}, newer than this batch_widget "
                    f"({SCHEMA_VERSION}); upgrade batch_widget or point db_url elsewhere"
                )
            # executescript() would COMMIT first and break the transaction.
            for statement in filter(str.strip, _SCHEMA.split(";")):
                conn.execute(statement)
            columns = {row[1] for row in conn.execute("PRAGMA table_info(items)")}
            if "log" not in columns:  # a store of schema 1: items gain their log
                conn.execute("ALTER TABLE items ADD COLUMN log TEXT")
            job_columns = {row[1] for row in conn.execute("PRAGMA table_info(jobs)")}
            if "log_bytes" not in job_columns:  # schema 2: jobs count their logs' bytes
                conn.execute("ALTER TABLE jobs ADD COLUMN log_bytes INTEGER NOT NULL DEFAULT 0")
                conn.execute("ALTER TABLE jobs ADD COLUMN logs_cut INTEGER NOT NULL DEFAULT 0")
                conn.execute(f"UPDATE jobs SET log_bytes = ({_LOG_BYTES_OF_JOB})", (LOG_DROPPED,))
            if "attempts" not in columns:  # schema 3: items count their attempts, jobs retry
                conn.execute("ALTER TABLE items ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0")
                conn.execute("ALTER TABLE jobs ADD COLUMN retries INTEGER NOT NULL DEFAULT 0")
                conn.execute("ALTER TABLE jobs ADD COLUMN retry_delay REAL NOT NULL DEFAULT 1.0")
                conn.execute("ALTER TABLE jobs ADD COLUMN retry_on TEXT")
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def release_reader(self) -> None:
        """Close the calling thread's read connection (a job's thread ends with its run)."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            return
        self._local.conn = None
        with self._lock:
            if conn in self._readers:
                self._readers.remove(conn)
                conn.close()

    def close(self) -> None:
        """Close every connection; later calls raise."""
        with self._lock:
            self._closed = True
            for conn in [self._writer, *self._readers]:
                conn.close()
            self._readers.clear()

    # -- jobs ----------------------------------------------------------------

    def insert_job(self, job: JobRow, items: Iterable[Any], pickled: bytes | None = None) -> int:
        """Store a job, its pickled function if any, and its items in one transaction.

        Return the item count. An item that is not JSON-serialisable raises
        ``InvalidRequest`` and stores nothing.
        """
        with self._transaction() as conn:
            cursor = conn.execute(
                "INSERT INTO jobs (key, id, name, processor, callable, params, max_workers, "
                "executor, status, total, done, failed, version, created_at, retries, "
                "retry_delay, retry_on) "
                "VALUES (NULL, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, 0, ?, ?, ?, ?, ?)",
                (
                    job.id,
                    job.name,
                    job.processor,
                    pickled,
                    job.params,
                    job.max_workers,
                    job.executor,
                    job.status.value,
                    job.total,
                    job.version,
                    job.created_at,
                    job.retries,
                    job.retry_delay,
                    None if job.retry_on is None else json.dumps(list(job.retry_on)),
                ),
            )
            job.key = int(cursor.lastrowid or 0)
            count = 0
            for batch in _item_rows(job.key, items):
                conn.executemany(
                    "INSERT INTO items (job, idx, input, status) VALUES (?, ?, ?, 'pending')",
                    batch,
                )
                count += len(batch)
            return count

    def load_jobs(self) -> list[JobRow]:
        """Every stored job, oldest first."""
        rows = self._reader().execute(f"SELECT {_JOB_SELECT} FROM jobs ORDER BY key").fetchall()
        return [_job_from_row(row) for row in rows]

    def load_callable(self, job_key: int) -> bytes:
        """The pickled function of a job created with one; read only when the job runs."""
        row = (
            self._reader().execute("SELECT callable FROM jobs WHERE key = ?", (job_key,)).fetchone()
        )
        if row is None or row[0] is None:
            raise KeyError(f"job key {job_key} has no stored function")
        blob: bytes = row[0]
        return blob

    def save_job(self, job: JobRow) -> None:
        """Commit a job's state and counters."""
        with self._transaction() as conn:
            _update_job(conn, job)

    def delete_job(self, job: JobRow) -> None:
        """Forget a job and its items, and give the file space they took back.

        Stores created with ``auto_vacuum=INCREMENTAL`` shrink here; older
        ones keep the freed pages and reuse them for later jobs.
        """
        with self._transaction() as conn:
            conn.execute("DELETE FROM items WHERE job = ?", (job.key,))
            conn.execute("DELETE FROM jobs WHERE key = ?", (job.key,))
        self._release_free_pages()

    def _release_free_pages(self) -> None:
        with self._lock:
            if self._closed or not self._shrinks:
                return
            (free,) = self._writer.execute("PRAGMA freelist_count").fetchone()
            if free < _VACUUM_MIN_PAGES:
                return
            try:
                # execute() would step it once, freeing one page; executescript() steps
                # it to the end (in autocommit mode its implicit COMMIT is a no-op).
                self._writer.executescript("PRAGMA incremental_vacuum")
                # The WAL grew by what the job wrote; a TRUNCATE checkpoint shrinks it
                # too (it does less, harmlessly, while a reader holds an old snapshot).
                self._writer.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
            except sqlite3.Error:  # giving space back is a courtesy: the delete is done
                return

    def interrupt_unfinished(self, now: str) -> tuple[list[str], list[str]]:
        """Close the jobs a dead server left active; return (interrupted ids, completed ids).

        A job with items still to run becomes ``interrupted``, its running items
        pending again. A job whose every item had ended (the server died between
        its last commit and its end) is ``completed``: there is nothing to resume.
        """
        active = (JobStatus.QUEUED.value, JobStatus.PROCESSING.value)
        with self._transaction() as conn:
            conn.execute(
                "UPDATE items SET status = 'pending' WHERE status = 'running' AND job IN "
                "(SELECT key FROM jobs WHERE status IN (?, ?))",
                active,
            )
            rows = conn.execute(
                "SELECT key, id, EXISTS (SELECT 1 FROM items WHERE job = jobs.key "
                "AND status = 'pending') FROM jobs WHERE status IN (?, ?)",
                active,
            ).fetchall()
            interrupted = [(key, job_id) for key, job_id, unfinished in rows if unfinished]
            completed = [(key, job_id) for key, job_id, unfinished in rows if not unfinished]
            conn.executemany(
                "UPDATE jobs SET status = ?, version = version + 1 WHERE key = ?",
                [(JobStatus.INTERRUPTED.value, key) for key, _ in interrupted],
            )
            conn.executemany(
                "UPDATE jobs SET status = ?, finished_at = ?, version = version + 1 WHERE key = ?",
                [(JobStatus.COMPLETED.value, now, key) for key, _ in completed],
            )
        return [i for _, i in interrupted], [i for _, i in completed]

    def pending_items(self, job_key: int, after: int, limit: int) -> list[tuple[int, str]]:
        """Up to ``limit`` pending ``(index, input_json)`` with index above ``after``."""
        with self._reading():
            rows: list[tuple[int, str]] = (
                self._reader()
                .execute(
                    "SELECT idx, input FROM items WHERE job = ? AND idx > ? AND status = 'pending' "
                    "ORDER BY idx LIMIT ?",
                    (job_key, after, limit),
                )
                .fetchall()
            )
        return rows

    @contextmanager
    def _reading(self) -> Iterator[None]:
        """A read a running job depends on: a disk error becomes ``StoreIOError`` (retried)."""
        try:
            yield
        except sqlite3.Error as exc:
            if not _is_disk_error(exc):
                raise
            self.check_file()
            raise StoreIOError(f"the job store {self.path} cannot be read: {exc}") from exc

    def attempts(self, job_key: int, indexes: Sequence[int]) -> dict[int, int]:
        """How many times each of ``indexes`` started, as committed (for the retry policy)."""
        found: dict[int, int] = {}
        with self._reading():
            conn = self._reader()
            for start in range(0, len(indexes), _IN_BATCH):
                part = list(indexes[start : start + _IN_BATCH])
                marks = ", ".join("?" * len(part))
                found.update(
                    conn.execute(
                        f"SELECT idx, attempts FROM items WHERE job = ? AND idx IN ({marks})",
                        (job_key, *part),
                    ).fetchall()
                )
        return found

    def commit_progress(
        self,
        job: JobRow,
        started: Sequence[tuple[int, int, int]],
        outcomes: Sequence[Sequence[Any]],
    ) -> None:
        """In one transaction: mark chunks running, record outcomes, save the job.

        ``started`` holds ``(job_key, first_index, last_index)`` of dispatched
        chunks; ``outcomes`` are worker outcome tuples (``worker.Outcome``, or any
        tuple whose first nine fields are in its order: what follows is the runner's and
        is not stored).
        """
        outcomes = self._within_log_budget(job, outcomes)
        with self._transaction() as conn:
            conn.executemany(
                "UPDATE items SET status = 'running' WHERE job = ? AND idx BETWEEN ? AND ? "
                "AND status = 'pending'",
                started,
            )
            conn.executemany(
                "UPDATE items SET status = ?, result = ?, error = ?, traceback = ?, "
                "duration = ?, log = ?, attempts = attempts + ? WHERE job = ? AND idx = ?",
                outcomes,
            )
            _update_job(conn, job)

    def _within_log_budget(
        self, job: JobRow, outcomes: Sequence[Sequence[Any]]
    ) -> Sequence[Sequence[Any]]:
        """``outcomes`` with the logs past the job's ``max_job_log_bytes`` dropped.

        Counted here, where outcomes are committed, in the job's row (``log_bytes``,
        ``logs_cut``: updated on ``job``, saved with it), so the count holds across
        runs, retries and restarts. Logs are kept while the job's total is under
        the cap, so the store holds at most the cap plus one item's log; each
        later log becomes :data:`LOG_DROPPED`, which is not counted (it is as
        small as an item's status). A log the store never saves (an item sent
        back to pending) is not counted either.
        """
        if not any(map(_log_of, outcomes)):  # no item printed: nothing to count
            return outcomes
        capped: list[Sequence[Any]] = []
        for outcome in outcomes:
            log = outcome[_LOG_FIELD]
            if log is None or outcome[_STATUS_FIELD] == ItemStatus.PENDING:  # sent back: not saved
                capped.append(outcome)
            elif job.log_bytes < self.max_job_log_bytes:
                job.log_bytes += len(log.encode("utf-8", "surrogatepass"))
                capped.append(outcome)
            else:
                job.logs_cut = True
                capped.append((*outcome[:_LOG_FIELD], LOG_DROPPED, *outcome[_LOG_FIELD + 1 :]))
        return capped

    def finish_items(self, job: JobRow, status: ItemStatus) -> int:
        """Set every pending or running item to ``status`` and save the job; return the count."""
        with self._transaction() as conn:
            cursor = conn.execute(
                "UPDATE items SET status = ? WHERE job = ? AND status IN ('pending', 'running')",
                (status.value, job.key),
            )
            _update_job(conn, job)
            return cursor.rowcount

    def reset_for_retry(self, job: JobRow) -> None:
        """Send every item not ``done`` back to ``pending``, attempts uncounted; save the job."""
        with self._transaction() as conn:
            conn.execute(
                "UPDATE items SET status = 'pending', result = NULL, error = NULL, "
                "traceback = NULL, duration = NULL, log = NULL, attempts = 0 "
                "WHERE job = ? AND status != 'done'",
                (job.key,),
            )
            # The cleared logs leave the job's count; a note left on a done item keeps it cut.
            (job.log_bytes,) = conn.execute(
                f"SELECT ({_LOG_BYTES_OF_JOB}) FROM jobs WHERE key = ?", (LOG_DROPPED, job.key)
            ).fetchone()
            (cut,) = conn.execute(
                "SELECT EXISTS (SELECT 1 FROM items WHERE job = ? AND log = ?)",
                (job.key, LOG_DROPPED),
            ).fetchone()
            job.logs_cut = bool(cut)
            _update_job(conn, job)

    def items(
        self, job_key: int, status: ItemStatus | None, offset: int, limit: int
    ) -> tuple[list[ItemRecord], int]:
        """A page of the ledger in index order (decoded), and the number of matching items."""
        conn = self._reader()
        total = ledger.count_items(conn, job_key, status)
        rows = ledger.item_rows(conn, job_key, status, ledger.Position(offset=offset), limit)
        return [ledger.item_record(row) for row in rows], total

    def items_page(
        self,
        job_key: int,
        status: ItemStatus | None,
        position: ledger.Position,
        limit: int,
        *,
        total: int | None = None,
        max_bytes: int = ledger.PAGE_BYTES,
    ) -> bytes:
        """A page of the ledger as the JSON body ``{"items": [...], "total": n}``.

        ``total`` is the number of matching items when the caller knows it (the
        job's counters); otherwise it is counted. The page ends before the item
        that would take it past ``max_bytes``, so it may hold fewer than ``limit``
        items, but never none while items match: readers advance by what they got.
        """
        conn = self._reader()
        if total is None:
            total = ledger.count_items(conn, job_key, status)
        rows = ledger.item_rows(conn, job_key, status, position, limit)
        return ledger.items_page(rows, total, max_bytes)

    def results_chunk(
        self, job_key: int, status: ItemStatus | None, after: int, limit: int
    ) -> ledger.ResultsChunk:
        """The next lines of the results stream after index ``after`` (see ``ledger``)."""
        return ledger.results_chunk(self._reader(), job_key, status, after, limit)

    def outputs(
        self, job_key: int, after: int = -1, limit: int = 1000, *, total: int | None = None
    ) -> OutputsPage:
        """The paths listed under ``"outputs"`` by the done items after index ``after``.

        A page holds the outputs of up to ``limit`` items (each item's outputs whole),
        in item order. SQLite reads each result's ``"outputs"`` itself (JSON1), so
        the job's ``total`` (every output) is counted without loading the results
        into Python, and the page parses only the lists it returns. A ``total`` the
        caller already knows (a finished job's) is not counted again: that count
        reads every result of the job.
        """
        conn = self._reader()
        conn.execute("BEGIN")  # one snapshot for the page and its total
        try:
            rows = conn.execute(
                f"SELECT idx, json_extract(result, '$.outputs') FROM items "
                f"WHERE job = ? AND idx > ? AND {_HAS_OUTPUTS} ORDER BY idx LIMIT ?",
                (job_key, after, limit + 1),
            ).fetchall()
            if total is None:
                (total,) = conn.execute(
                    f"SELECT COALESCE(SUM(json_array_length(result, '$.outputs')), 0) "
                    f"FROM items WHERE job = ? AND {_HAS_OUTPUTS}",
                    (job_key,),
                ).fetchone()
        finally:
            conn.execute("COMMIT")
        paths: list[str] = []
        for _, listed in rows[:limit]:
            paths.extend(str(path) for path in json.loads(listed))
        next_after = rows[limit - 1][0] if len(rows) > limit else None
        return OutputsPage(paths, int(total), next_after)


#: The done items whose result is an object with a non-empty ``"outputs"`` list
#: (json_array_length is 0 for anything else at that path). The LIKE skips most
#: results before SQLite parses any; CASE keeps the JSON functions off text that
#: is not JSON (they would raise).
_HAS_OUTPUTS = (
    "status = 'done' AND result LIKE '%\"outputs\"%' "
    "AND CASE WHEN json_valid(result) THEN json_array_length(result, '$.outputs') END > 0"
)


class OutputsPage(NamedTuple):
    """A page of ``GET .../outputs``: paths as the processors wrote them."""

    paths: list[str]
    #: Outputs of the whole job (every page).
    total: int
    #: The index to pass as ``after`` for the next page; None on the last page.
    next_after: int | None


def _is_disk_error(exc: BaseException) -> bool:
    """True for failures of the disk or the file (full, locked, read-only, I/O), not of SQL."""
    disk = (sqlite3.OperationalError, OSError)
    return isinstance(exc, disk) or type(exc) is sqlite3.DatabaseError


def _file_identity(path: Path) -> tuple[int, int]:
    """The file at ``path`` itself: a symbolic link put in its place is another file."""
    info = os.lstat(path)
    return info.st_dev, info.st_ino


def _item_rows(job_key: int, items: Iterable[Any]) -> Iterator[list[tuple[int, int, str]]]:
    """Rows of ``items`` for ``executemany``, ``_INSERT_BATCH`` at a time."""
    source = iter(items)
    start = 0
    while part := list(itertools.islice(source, _INSERT_BATCH)):
        try:
            texts = list(map(jsontext.dumps, part))
        except (TypeError, ValueError):
            raise _not_storable(part, start) from None
        yield list(
            zip(itertools.repeat(job_key), range(start, start + len(part)), texts, strict=False)
        )
        start += len(part)


def _not_storable(part: list[Any], start: int) -> InvalidRequest:
    """The error for the first item of ``part`` that has no JSON text."""
    for offset, item in enumerate(part):
        try:
            jsontext.dumps(item)
        except (TypeError, ValueError) as exc:
            return InvalidRequest(f"item {start + offset} is not JSON-serialisable: {exc}")
    return InvalidRequest(f"items {start} to {start + len(part) - 1} are not JSON-serialisable")


def _update_job(conn: sqlite3.Connection, job: JobRow) -> None:
    assignments = ", ".join(f"{name} = ?" for name in _MUTABLE_JOB_COLUMNS)
    conn.execute(f"UPDATE jobs SET {assignments} WHERE key = ?", (*job.mutable_values(), job.key))


def _job_from_row(row: Sequence[Any]) -> JobRow:
    values = dict(zip(_JOB_COLUMNS, row, strict=True))
    values["status"] = JobStatus(values["status"])
    values["logs_cut"] = bool(values["logs_cut"])
    retry_on = values["retry_on"]
    values["retry_on"] = None if retry_on is None else tuple(json.loads(retry_on))
    return JobRow(**values)


# -- who may read the store (docs/security.md) ------------------------------------------


def private_dir(path: Path, log: logging.Logger) -> None:
    """Make the store's directory, 0700; tighten one of ours that only holds job stores.

    A directory of the user's that holds other files too (a home or project
    folder named in ``db_url``) is left as it is: its mode is the user's
    choice, and the store files in it are 0600 whatever it is. So is a
    directory of another user (a team's shared folder): only its owner may
    change its mode, and closing it would lock its other users out. Either way
    an INFO line says so.
    """
    try:
        path.mkdir(mode=_PRIVATE_DIR, parents=True)
        return
    except FileExistsError:
        pass
    if not _POSIX:  # Windows: no POSIX modes (docs/internals.md); the profile's ACLs apply
        return
    info = path.stat()
    mode = stat.S_IMODE(info.st_mode)
    if not mode & 0o077:
        return
    if info.st_uid != os.getuid():
        log.info(
            "the job store's directory %s (mode %o) belongs to another "
            "user (uid %d): left as it is; the store's files in it are readable by their "
            "owner only",
            path,
            mode,
            info.st_uid,
        )
    elif not _holds_only_stores(path):
        log.info(
            "the job store's directory %s (mode %o) holds other files: "
            "left as it is; the store's files in it are readable by their owner only",
            path,
            mode,
        )
    else:
        os.chmod(path, _PRIVATE_DIR)
        log.info(
            "the job store's directory %s was open to other users "
            "(mode %o): made it %o (owner only)",
            path,
            mode,
            _PRIVATE_DIR,
        )


def _holds_only_stores(path: Path) -> bool:
    """True when every entry of ``path`` is a job store's file (db, -wal, -shm, .lock)."""
    with os.scandir(path) as entries:
        return all(_STORE_FILE_SUFFIX.search(entry.name) for entry in entries)


def private_file(path: Path, log: logging.Logger, *, suffixes: Sequence[str] = _SIDE_FILES) -> None:
    """Create the store file 0600 before SQLite opens it, never through a symbolic link.

    SQLite gives its ``-wal`` and ``-shm`` files the mode of the database file,
    so they are 0600 too. An existing file of the user's that others may read
    (made by an earlier release, or a ``-wal`` left by a killed server) is made
    0600, with an INFO line. A symbolic link at any of those paths is refused
    (another user may have planted it to make the server write elsewhere).
    """
    fd = open_private(path, os.O_RDWR | os.O_CREAT, log, what="the job store")
    os.close(fd)
    for suffix in suffixes:
        side = Path(f"{path}{suffix}")
        if side.is_symlink() or side.exists():
            os.close(open_private(side, os.O_RDWR, log, what="the job store"))


def open_private(path: Path, flags: int, log: logging.Logger, *, what: str) -> int:
    """Open ``path`` (mode 0600 if created) without following a symbolic link; return the fd.

    An existing regular file of the user's that group or others may read is
    made 0600 (INFO line). Raise ``StoreUnavailable`` for a symbolic link or
    anything but a regular file, naming it and what to do; nothing is written.
    """
    try:
        fd = open_no_symlink(path, flags)
    except UnsafeRuntimeDir:
        raise _refused(path, what, "is a symbolic link") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise _refused(path, what, "is not a regular file")
        mode = stat.S_IMODE(info.st_mode)
        if _POSIX and mode & 0o077 and info.st_uid == os.getuid():
            os.fchmod(fd, _PRIVATE_FILE)
            log.info(
                "%s file %s was readable by other users (mode %o): made it %o (owner only)",
                what,
                path,
                mode,
                _PRIVATE_FILE,
            )
    except BaseException:
        os.close(fd)
        raise
    return fd


def _refused(path: Path, what: str, why: str) -> StoreUnavailable:
    return StoreUnavailable(
        f"{what} {path} {why}; batch_widget does not follow it, since another user may "
        "have put it there to make this server write elsewhere. Nothing was written. Remove "
        "it (check who made it), or point BatchWidgetApp.db_url at a real file in a "
        "directory of your own"
    )
