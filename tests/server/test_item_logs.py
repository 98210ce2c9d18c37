"""What each item printed and logged, kept with the item (SPEC §13): real worker
threads and processes of the engine, a real SQLite ledger, and a real server for
the item that prints a megabyte."""

from __future__ import annotations

import sqlite3
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from _engine import ManagerFactory, create, make_manager, wait
from _helpers import Api
from _server import running_server
from test_sse import open_stream

from batch_widget.engine.capture import LOG_LIMIT
from batch_widget.engine.store import LOG_DROPPED
from batch_widget.server.app import BatchWidgetApp

__all__ = ["make_manager", "open_stream"]  # the fixtures, imported for pytest

CHATTY = "sample_processors:chatty"


def expected_log(item: int, lines: int = 3) -> list[str]:
    out = []
    for line in range(lines):
        out += [
            f"item {item} says {line}",
            f"item {item} warns {line}",
            f"WARNING chatty: item {item} logs {line}",
        ]
    return out


@pytest.mark.parametrize("executor", ["thread", "process"])
async def test_each_item_gets_exactly_its_own_lines(
    make_manager: ManagerFactory,
    executor: str,
) -> None:
    manager = make_manager()
    job = create(
        manager,
        list(range(200)),
        processor=CHATTY,
        max_workers=8,
        executor=executor,
        params={"fail_on": [7]},
    )
    final = await wait(manager, job["id"], timeout=120)
    assert (final["done"], final["failed"]) == (199, 1)

    records, _ = manager.items(job["id"], None, 0, 1000)
    for record in records:
        assert record["log"] is not None
        assert record["log"].splitlines() == expected_log(record["index"]), record["index"]
    failed = records[7]
    assert failed["status"] == "failed" and failed["log"].splitlines() == expected_log(7)


async def test_an_item_that_writes_nothing_has_no_log(make_manager: ManagerFactory) -> None:
    manager = make_manager()
    job = create(manager, [1, 2], processor="sample_processors:square")
    await wait(manager, job["id"])
    records, _ = manager.items(job["id"], None, 0, 10)
    assert [r["log"] for r in records] == [None, None]


def test_a_megabyte_per_item_is_cut_and_the_server_stays_responsive(
    tmp_path: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parents[1]))  # sample_processors
    with running_server(tmp_path) as server:
        job = server.api(
            "POST",
            "api/batch/jobs",
            {
                "processor": "sample_processors:loud",
                "items": list(range(40)),
                "params": {"size": 1024 * 1024},
                "max_workers": 4,
            },
        )
        slowest = 0.0
        while server.api("GET", f"api/batch/jobs/{job['id']}")["status"] not in {
            "completed",
            "failed",
        }:
            started = time.perf_counter()
            with urllib.request.urlopen(f"{server.url}api/status?token={server.token}", timeout=10):
                pass
            slowest = max(slowest, time.perf_counter() - started)
            time.sleep(0.02)
        final = server.api("GET", f"api/batch/jobs/{job['id']}")
        assert (final["status"], final["done"]) == ("completed", 40)
        page = server.api("GET", f"api/batch/jobs/{job['id']}/items?limit=40")
        for record in page["items"]:
            log = record["log"]
            assert log.startswith("x" * 1000)
            assert len(log.encode()) < LOG_LIMIT + 200
            assert f"[... {1024 * 1024 - LOG_LIMIT} more bytes cut" in log
        assert slowest < 2.0, f"a status request took {slowest:.2f} s during the job"


@pytest.mark.batch_config(max_job_log_bytes=100 * 1024)
async def test_a_jobs_logs_stop_at_its_cap_and_its_snapshot_says_so(
    api: Api,
    open_stream: Any,
    batch_app: BatchWidgetApp,
) -> None:
    stream = await open_stream()
    quiet = await api.create([1, 2], processor="sample_processors:square")
    job = await api.create(
        list(range(40)),
        processor="sample_processors:loud",
        params={"size": 2 * LOG_LIMIT},
        max_workers=4,
    )
    events = await stream.until_complete(job["id"], timeout=120)
    complete = events[-1].json()
    assert (complete["status"], complete["done"]) == ("completed", 40)
    assert complete["logs_cut"] is True, "the complete event says the job's logs were cut"
    assert (await api.get(job["id"]))["logs_cut"] is True
    assert (await api.wait(quiet["id"]))["logs_cut"] is False

    code, page, _ = await api.call("GET", "jobs", job["id"], "items", params={"limit": 40})
    assert code == 200
    logs = [record["log"] for record in page["items"]]
    kept = [log for log in logs if log != LOG_DROPPED]
    assert len(kept) == 2, "100 KiB holds the first log and the one that reaches the cap"
    assert all(log.startswith("x" * 1000) for log in kept)
    assert logs.count(LOG_DROPPED) == 38

    assert batch_app.store is not None
    with sqlite3.connect(f"file:{batch_app.store.path}?mode=ro", uri=True) as conn:
        (stored,) = conn.execute("SELECT sum(length(CAST(log AS BLOB))) FROM items").fetchone()
    conn.close()
    one_item = LOG_LIMIT + 200  # an item's log: its first 64 KiB and the note of what was cut
    assert stored <= 100 * 1024 + one_item, stored
