"""Results back in the kernel: the NDJSON stream, ``iter_results`` and any iterable as items.

Against a real ``jupyter server`` subprocess.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _server import ServerHandle, running_server

import batch_widget.kernel.job as bw
from batch_widget.kernel import client as _client

ECHO = "batch_widget.processors:sleep"

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerHandle]:
    with running_server(tmp_path_factory.mktemp("server")) as handle:
        yield handle


@pytest.fixture(autouse=True)
def connected(server: ServerHandle, monkeypatch: pytest.MonkeyPatch) -> ServerHandle:
    monkeypatch.setattr(_client._default, "client", None)
    bw.connect(server.url, server.token)
    return server


def held_after_first(item: int, marker: str) -> int:
    """Item 0 returns at once; the others wait until ``marker`` exists (at most 60 s)."""
    deadline = time.monotonic() + 60
    while item > 0 and not Path(marker).exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    return item * 10


def test_iter_results_yields_the_first_result_before_the_job_ends(tmp_path: Path) -> None:
    marker = tmp_path / "go"
    job = bw.submit(held_after_first, range(5), params={"marker": str(marker)}, max_workers=2)
    results = job.iter_results(poll_interval=0.05)
    assert next(results) == 0
    assert job.snapshot()["status"] == "processing", "the first result came only at the end"
    # The result is read from the store, which the server commits to a moment
    # before it counts the item in the job's snapshot: the count follows at once.
    deadline = time.monotonic() + 10
    while (snapshot := job.snapshot())["done"] < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert (snapshot["status"], snapshot["done"]) == ("processing", 1)
    marker.touch()
    assert list(results) == [10, 20, 30, 40]
    assert job.snapshot()["status"] == "completed"


def test_iter_results_gives_none_for_failed_and_never_run_items() -> None:
    failing = bw.submit(ECHO, range(6), params={"seconds": 0, "fail": [2, 5]})
    assert list(failing.iter_results()) == [0, 1, None, 3, 4, None]
    slow = bw.submit(ECHO, range(40), params={"seconds": 0.2}, max_workers=1)
    deadline = time.monotonic() + 30
    while slow.snapshot()["done"] < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    slow.cancel()
    slow.wait(timeout=30)
    got = list(slow.iter_results())
    done = slow.snapshot()["done"]
    assert got[:done] == list(range(done))
    assert got[done:] == [None] * (40 - done) and len(got) == 40


def test_results_and_map_read_the_stream_in_item_order() -> None:
    job = bw.submit(ECHO, range(3000), params={"seconds": 0, "fail": [7]}, max_workers=4)
    job.wait(timeout=120)
    results = job.results()
    assert len(results) == 3000 and results[7] is None
    assert results[:7] == list(range(7)) and results[8:] == list(range(8, 3000))
    lines = list(job.client.results(job.id, status="failed"))
    assert [line["index"] for line in lines] == [7]
    assert bw.map(ECHO, [3, 1, 2], params={"seconds": 0}) == [3, 1, 2]


def test_a_generator_is_taken_as_items() -> None:
    consumed = threading.Event()

    def items() -> Iterator[int]:
        yield from range(5)
        consumed.set()

    assert bw.map(lambda x: x + 100, items()) == [100, 101, 102, 103, 104]
    assert consumed.is_set()
    assert bw.map(ECHO, (n * n for n in range(4)), params={"seconds": 0}) == [0, 1, 4, 9]


def test_snapshots_carry_the_executor() -> None:
    job = bw.submit(ECHO, [1], params={"seconds": 0}, executor="process")
    snap: dict[str, Any] = dict(job.wait(timeout=60))
    assert snap["executor"] == "process"


def test_the_stream_decodes_the_same_whatever_the_block_size(server: ServerHandle) -> None:
    from batch_widget.kernel.streams import ndjson_records, open_connection, start_stream

    job = bw.submit(ECHO, [{"text": "é\n" * i} for i in range(50)], params={"seconds": 0})
    job.wait(timeout=60)
    client = job.client
    url = client._endpoint(client._job_path(job.id, "results"))
    expected = list(client.results(job.id))
    for block in (1, 7, 64, 1 << 20):
        conn = open_connection(url, 30)
        try:
            resp = start_stream(conn, url, client._headers())
            assert resp.status == 200
            assert list(ndjson_records(resp, block=block)) == expected
        finally:
            conn.close()
    assert [line["result"]["text"] for line in expected] == ["é\n" * i for i in range(50)]
