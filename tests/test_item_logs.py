"""What each item printed and logged, kept with the item (SPEC §13): real worker
threads and processes of the engine, a real SQLite ledger, and a real server for
the item that prints a megabyte."""

from __future__ import annotations

import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from _engine import ManagerFactory, create, make_manager, wait
from _server import running_server

from batch_widget.engine.capture import LOG_LIMIT

__all__ = ["make_manager"]  # the fixture, imported for pytest

CHATTY = "sample_processors:chatty"


def expected_log(item: int, lines: int = 3) -> list[str]:
    out = []
    for line in range(lines):
        out += [f"item {item} says {line}", f"item {item} warns {line}",
                f"WARNING chatty: item {item} logs {line}"]
    return out


@pytest.mark.parametrize("executor", ["thread", "process"])
async def test_each_item_gets_exactly_its_own_lines(
    make_manager: ManagerFactory, executor: str,
) -> None:
    manager = make_manager()
    job = create(manager, list(range(200)), processor=CHATTY, max_workers=8,
                 executor=executor, params={"fail_on": [7]})
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
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parent))  # sample_processors
    with running_server(tmp_path) as server:
        job = server.api("POST", "api/batch/jobs", {
            "processor": "sample_processors:loud", "items": list(range(40)),
            "params": {"size": 1024 * 1024}, "max_workers": 4})
        slowest = 0.0
        while server.api("GET", f"api/batch/jobs/{job['id']}")["status"] not in {
                "completed", "failed"}:
            started = time.perf_counter()
            with urllib.request.urlopen(f"{server.url}api/status?token={server.token}",
                                        timeout=10):
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
