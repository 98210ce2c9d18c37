"""The SQLite store: schema, WAL, atomic inserts, and surviving a SIGKILL mid-job."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from batch_widget import processors
from batch_widget.engine.ledger import Position
from batch_widget.engine.manager import JobManager
from batch_widget.engine.store import LOG_DROPPED, SCHEMA_VERSION, JobRow, Store, path_from_url
from batch_widget.protocol import InvalidRequest, ItemStatus, JobStatus


def _row(job_id: str = "j1", total: int = 3) -> JobRow:
    return JobRow(
        key=0,
        id=job_id,
        name="n",
        processor="m:f",
        callable_size=None,
        params="{}",
        max_workers=None,
        executor="thread",
        status=JobStatus.QUEUED,
        total=total,
    )


def test_the_store_is_a_versioned_wal_database(tmp_path: Path) -> None:
    store = Store(tmp_path / "deep" / "dir" / "jobs.sqlite")
    store.close()
    conn = sqlite3.connect(tmp_path / "deep" / "dir" / "jobs.sqlite")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"jobs", "items"} <= tables


def test_a_store_from_a_newer_release_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "jobs.sqlite"
    Store(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    with pytest.raises(RuntimeError, match="newer than this batch_widget"):
        Store(path)


def test_db_urls_must_name_a_sqlite_file() -> None:
    assert path_from_url("sqlite:////tmp/x/jobs.sqlite") == Path("/tmp/x/jobs.sqlite")
    for bad in ["postgres://x", "sqlite:///", "jobs.sqlite"]:
        with pytest.raises(ValueError, match="db_url"):
            path_from_url(bad)


def test_an_item_json_cannot_encode_stores_nothing(tmp_path: Path) -> None:
    store = Store(tmp_path / "jobs.sqlite")
    with pytest.raises(InvalidRequest, match="item 2 is not JSON-serialisable"):
        store.insert_job(_row(), [1, 2, {1, 2}])
    assert store.load_jobs() == []
    assert store.insert_job(_row(), ["a", {"b": [1]}, None]) == 3
    items, total = store.items(store.load_jobs()[0].key, None, 0, 10)
    assert total == 3
    assert [i["input"] for i in items] == ["a", {"b": [1]}, None]


def test_builtin_processors_do_what_they_say(tmp_path: Path) -> None:
    data = os.urandom(300_000)
    source = tmp_path / "data.bin"
    source.write_bytes(data)
    assert processors.checksum(str(source)) == hashlib.sha256(data).hexdigest()
    assert processors.checksum(str(source), algorithm="md5") == hashlib.md5(data).hexdigest()
    result = processors.gzip_file(str(source))
    assert result == {"outputs": [str(source) + ".gz"]}
    assert gzip.decompress(Path(result["outputs"][0]).read_bytes()) == data
    moved = processors.gzip_file(str(source), dest_dir=str(tmp_path / "out"))
    assert moved == {"outputs": [str(tmp_path / "out" / "data.bin.gz")]}
    assert processors.sleep("x", seconds=0) == "x"
    with pytest.raises(ValueError, match="asked to fail"):
        processors.sleep(3, seconds=0, fail=[3])


_CHILD = textwrap.dedent("""
    import sys, time
    from batch_widget.engine import JobManager, JobRequest, Settings, Store
    manager = JobManager(Store(sys.argv[1]), None, Settings(progress_interval=0.05, max_workers=2))
    manager.start()
    job = manager.create(JobRequest(list(range(400)), processor="batch_widget.processors:sleep",
                                    params={"seconds": 0.02}))
    print(job["id"], flush=True)
    time.sleep(600)
""")


def _committed(path: Path) -> dict[int, tuple[str, str]]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT idx, status, result FROM items WHERE status = 'done'")
        return {idx: (status, result) for idx, status, result in rows}
    finally:
        conn.close()


def test_a_sigkilled_server_leaves_an_interrupted_job_with_every_result_intact(
    tmp_path: Path,
) -> None:
    path = tmp_path / "jobs.sqlite"
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        job_id = child.stdout.readline().strip()
        deadline = time.monotonic() + 60
        while len(before := _committed(path)) < 50:
            assert time.monotonic() < deadline, "the child never committed 50 results"
            time.sleep(0.05)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait(10)
    assert child.returncode == -signal.SIGKILL
    assert len(before) < 400, "the job finished before the kill: nothing was tested"

    manager = JobManager(Store(path), None)
    snapshot = manager.get(job_id)
    assert snapshot["status"] == "interrupted"
    after = _committed(path)
    assert all(after[idx] == value for idx, value in before.items())
    assert snapshot["done"] == len(after)  # counters were committed with the results
    items, _ = manager.items(job_id)
    assert {i["status"] for i in items} == {"done", "pending"}
    done = [i for i in items if i["status"] == "done"]
    assert all(json.loads(after[i["index"]][1]) == i["index"] for i in done)

    manager.start()
    manager.retry(job_id)
    final = manager.wait(job_id, timeout=60)
    manager.stop()
    assert (final["status"], final["done"]) == ("completed", 400)
    assert [i["result"] for i in manager.items(job_id)[0]] == list(range(400))


def _disk_bytes(path: Path) -> int:
    """The store's size on disk: the database file and its write-ahead log."""
    wal = path.with_name(path.name + "-wal")
    return path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)


def test_jobs_load_without_their_pickles_which_load_one_at_a_time(tmp_path: Path) -> None:
    store = Store(tmp_path / "jobs.sqlite")
    pickled = os.urandom(3_000_000)
    store.insert_job(_row("with-function"), [1], pickled)
    store.insert_job(_row("with-path"), [1])
    loaded = {row.id: row for row in store.load_jobs()}
    assert loaded["with-function"].callable_size == len(pickled)
    assert loaded["with-path"].callable_size is None
    assert not any(isinstance(v, bytes) for row in loaded.values() for v in vars(row).values())
    assert store.load_callable(loaded["with-function"].key) == pickled
    with pytest.raises(KeyError):
        store.load_callable(loaded["with-path"].key)


def test_deleting_a_job_gives_its_disk_space_back(tmp_path: Path) -> None:
    path = tmp_path / "jobs.sqlite"
    store = Store(path)
    store.insert_job(_row("small"), ["x"])
    empty = _disk_bytes(path)
    store.insert_job(_row("big", total=2), ["y" * 5_000_000, "z"], os.urandom(20_000_000))
    assert _disk_bytes(path) > empty + 20_000_000
    (big,) = [row for row in store.load_jobs() if row.id == "big"]
    store.delete_job(big)
    assert _disk_bytes(path) < empty + 1_000_000, (_disk_bytes(path), empty)
    assert [row.id for row in store.load_jobs()] == ["small"]


_SCHEMA_1_WITHOUT_AUTO_VACUUM = """
CREATE TABLE jobs (key INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, name TEXT NOT NULL,
    processor TEXT NOT NULL, callable BLOB, params TEXT NOT NULL, max_workers INTEGER,
    executor TEXT NOT NULL, status TEXT NOT NULL, total INTEGER NOT NULL,
    done INTEGER NOT NULL DEFAULT 0, failed INTEGER NOT NULL DEFAULT 0,
    version INTEGER NOT NULL DEFAULT 0, created_at TEXT, started_at TEXT, finished_at TEXT,
    error TEXT);
CREATE TABLE items (job INTEGER NOT NULL REFERENCES jobs(key) ON DELETE CASCADE,
    idx INTEGER NOT NULL, input TEXT NOT NULL, status TEXT NOT NULL, result TEXT, error TEXT,
    traceback TEXT, duration REAL, PRIMARY KEY (job, idx)) WITHOUT ROWID;
INSERT INTO jobs (id, name, processor, callable, params, executor, status, total, version)
    VALUES ('old', 'old', '<f>', x'0102', '{}', 'thread', 'completed', 1, 3);
INSERT INTO items VALUES (1, 0, '7', 'done', '49', NULL, NULL, 0.1);
PRAGMA user_version = 1;
"""


def test_a_store_made_by_an_earlier_release_keeps_working(tmp_path: Path) -> None:
    path = tmp_path / "jobs.sqlite"
    with sqlite3.connect(path) as conn:
        conn.executescript(_SCHEMA_1_WITHOUT_AUTO_VACUUM)
    store = Store(path)
    (old,) = store.load_jobs()
    assert (old.id, old.callable_size) == ("old", 2)
    assert store.load_callable(old.key) == b"\x01\x02"
    assert store.items(old.key, None, 0, 10)[0][0]["result"] == 49
    assert store.items(old.key, None, 0, 10)[0][0]["attempts"] == 0, "schema 4: attempts"
    assert (old.retries, old.retry_delay, old.retry_on) == (0, 1.0, None)
    store.insert_job(_row("new"), [1], b"pickle")
    store.delete_job(old)
    assert [row.id for row in store.load_jobs()] == ["new"]
    store.close()


def test_an_items_page_is_the_ledger_as_json_cut_to_a_byte_budget(tmp_path: Path) -> None:
    store = Store(tmp_path / "jobs.sqlite")
    inputs = ["a", {"b": [1, "é"]}, None, 3.5, "x" * 1000]
    store.insert_job(_row(total=len(inputs)), inputs)
    (row,) = store.load_jobs()
    outcomes = [
        ("done", json.dumps({"r": i, "s": "ü\n"}), None, None, 0.25, None, 1, row.key, i)
        for i in (0, 1, 4)
    ]
    outcomes.append(
        ("failed", None, "ValueError: no", "Traceback...\n", 0.5, "oops\n", 1, row.key, 2)
    )
    store.commit_progress(row, [], outcomes)

    start = Position(offset=0)
    whole = json.loads(store.items_page(row.key, None, start, 100))
    records, total = store.items(row.key, None, 0, 100)
    assert whole == {"items": records, "total": total} and total == 5

    for by_index in (False, True):
        received: list[Any] = []
        while len(received) < total:
            at = (
                Position(after=received[-1]["index"] if received else -1)
                if by_index
                else Position(offset=len(received))
            )
            page = json.loads(store.items_page(row.key, None, at, 100, max_bytes=300))
            assert 1 <= len(page["items"]) < total and page["total"] == total
            received += page["items"]
        assert received == records
    failed = json.loads(store.items_page(row.key, ItemStatus.FAILED, start, 100))
    assert [i["index"] for i in failed["items"]] == [2] and failed["total"] == 1
    assert failed["items"][0]["log"] == "oops\n"
    told = json.loads(store.items_page(row.key, None, Position(after=3), 100, total=5))
    assert [i["index"] for i in told["items"]] == [4] and told["total"] == 5


def test_a_jobs_log_bytes_are_capped_counted_across_restarts_and_given_back_by_retry(
    tmp_path: Path,
) -> None:
    path = tmp_path / "jobs.sqlite"
    store = Store(path, max_job_log_bytes=1000)
    store.insert_job(_row(total=4), range(4))
    (row,) = store.load_jobs()
    talk = "é" * 300  # 600 bytes of UTF-8

    def outcome(index: int, status: str = "done") -> tuple[Any, ...]:
        return (status, "1", None, None, 0.1, talk, 1, row.key, index)

    store.commit_progress(row, [], [outcome(0, "failed")])
    store.close()
    store = Store(path, max_job_log_bytes=1000)  # a restart: the count is in the store
    (row,) = store.load_jobs()
    assert (row.log_bytes, row.logs_cut) == (600, False)
    store.commit_progress(row, [], [outcome(1), outcome(2)])  # 600 < 1000: kept; then cut
    logs = [r["log"] for r in store.items(row.key, None, 0, 10)[0]]
    assert logs == [talk, talk, LOG_DROPPED, None]
    assert (row.log_bytes, row.logs_cut) == (1200, True)
    (stored,) = store.load_jobs()
    assert (stored.log_bytes, stored.logs_cut) == (1200, True)

    store.reset_for_retry(row)  # item 0's log is cleared; item 2 (done) keeps its note
    assert (row.log_bytes, row.logs_cut) == (600, True)
    store.close()
    (stored,) = Store(path).load_jobs()
    assert (stored.log_bytes, stored.logs_cut) == (600, True)


def test_attempts_add_up_per_item_keep_a_jobs_policy_and_restart_on_retry(tmp_path: Path) -> None:
    path = tmp_path / "jobs.sqlite"
    store = Store(path)
    row = _row(total=2)
    row.retries, row.retry_delay, row.retry_on = 3, 0.5, ("ConnectionError", "TimeoutError")
    store.insert_job(row, ["a", "b"])
    sent_back = ("pending", None, "ConnectionError: x", None, 0.1, None, 1, row.key, 0)
    not_started = ("pending", None, None, None, None, None, 0, row.key, 1)
    store.commit_progress(row, [], [sent_back, not_started])
    store.commit_progress(row, [], [("failed", None, "E: y", None, 0.1, None, 1, row.key, 0)])
    assert store.attempts(row.key, [0, 1]) == {0: 2, 1: 0}
    store.close()
    store = Store(path)  # a restart: the policy and the counts are in the file
    (loaded,) = store.load_jobs()
    assert (loaded.retries, loaded.retry_delay, loaded.retry_on) == (
        3,
        0.5,
        ("ConnectionError", "TimeoutError"),
    )
    records, _ = store.items(loaded.key, None, 0, 10)
    assert [(r["status"], r["attempts"]) for r in records] == [("failed", 2), ("pending", 0)]
    store.reset_for_retry(loaded)
    assert store.attempts(loaded.key, [0, 1]) == {0: 0, 1: 0}
    store.close()
