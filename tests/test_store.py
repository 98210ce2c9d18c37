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

import pytest

from batch_widget import processors
from batch_widget._errors import InvalidRequest
from batch_widget._manager import JobManager
from batch_widget._store import SCHEMA_VERSION, JobRow, Store, path_from_url
from batch_widget._types import JobStatus


def _row(job_id: str = "j1", total: int = 3) -> JobRow:
    return JobRow(key=0, id=job_id, name="n", processor="m:f", callable=None, params="{}",
                  max_workers=None, executor="thread", status=JobStatus.QUEUED, total=total)


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
    from batch_widget._manager import JobManager
    from batch_widget._store import Store
    manager = JobManager(Store(sys.argv[1]), None, progress_interval=0.05, max_workers=2)
    manager.start()
    job = manager.create(list(range(400)), processor="batch_widget.processors:sleep",
                         params={"seconds": 0.02})
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
    child = subprocess.Popen([sys.executable, "-c", _CHILD, str(path)], stdout=subprocess.PIPE,
                             text=True)
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
