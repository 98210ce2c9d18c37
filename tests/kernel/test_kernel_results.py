"""Results back in the kernel: the NDJSON stream, ``iter_results`` and any iterable as items.

Against a real ``jupyter server`` subprocess.
"""

from __future__ import annotations

import http.server
import json
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from _relay import HoldingRelay, holding_relay
from _server import ServerHandle, running_server

import batch_widget.kernel.job as bw
from batch_widget.kernel import client as _client
from batch_widget.protocol import BatchError

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


# --------------------------------------------------------------------------- reads that never lie

BIG = 150_000  # ~10 MB of results lines: more than twice what the sockets between hold (4 MB)


def relayed_client(server: ServerHandle, relay: HoldingRelay) -> _client.Client:
    """A client of ``server`` through ``relay``, as through a reverse proxy."""
    return bw.connect(f"http://127.0.0.1:{relay.port}{server.base_url}", server.token)


def big_job(client: _client.Client) -> bw.Job:
    """A completed job of ``BIG`` fast items, each result its index."""
    job = bw.submit(ECHO, range(BIG), params={"seconds": 0}, max_workers=4)
    assert job.client is client
    assert job.wait(timeout=180)["status"] == "completed"
    return job


def delete_once_held(server: ServerHandle, relay: HoldingRelay) -> threading.Thread:
    """Delete the job whose results answer the relay holds (through the server's own
    port), then let the answer go on: the job is deleted while its results are read."""

    def run() -> None:
        try:
            if relay.held.wait(120):
                server.api("DELETE", f"api/batch/jobs/{relay.held_job}")
        finally:
            relay.release.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def outcome(read: Callable[[], Any]) -> tuple[Any, BatchError | None]:
    """``(what read() returned, None)`` or ``(None, the BatchError it raised)``."""
    try:
        return read(), None
    except BatchError as error:
        return None, error


def assert_incomplete(error: BaseException | None, got: Any, job_id: str) -> None:
    """The read raised ResultsIncomplete naming the deletion; it returned nothing that lies."""
    nones = sum(result is None for result in got) if isinstance(got, list) else "-"
    assert error is not None, f"no error: {len(got)} results of {BIG}, {nones} of them None"
    assert type(error).__name__ == "ResultsIncomplete", repr(error)
    text = str(error)
    assert f"the results of job {job_id} ended early" in text, text
    assert "the job was deleted on the server while they were read" in text, text
    assert "the connection broke off (IncompleteRead(" in text, "the server ended it cleanly"
    assert f"of {BIG} lines came" in text and "Nothing partial is returned" in text, text
    assert 0 < error.received < BIG  # type: ignore[attr-defined]


def test_iter_results_of_a_job_deleted_meanwhile_raises(server: ServerHandle) -> None:
    with holding_relay(server.port) as relay:
        job = big_job(relayed_client(server, relay))
        relay.arm()
        results = job.iter_results()
        got = [next(results) for _ in range(10)]
        assert relay.held.wait(60), "the relay never held the results answer"
        server.api("DELETE", f"api/batch/jobs/{job.id}")
        relay.release.set()
        error = None
        try:
            got.extend(results)
        except BatchError as exc:
            error = exc
        assert_incomplete(error, got, job.id)
        assert got == list(range(len(got))), "a done item read as None, or out of order"


def test_results_of_a_job_deleted_meanwhile_raises(server: ServerHandle) -> None:
    with holding_relay(server.port) as relay:
        client = relayed_client(server, relay)
        job = big_job(client)
        assert job.results() == list(range(BIG))  # the relay alone changes nothing
        relay.arm()
        deleter = delete_once_held(server, relay)
        got, error = outcome(job.results)
        deleter.join(130)
        assert relay.held_job == job.id
        assert_incomplete(error, got, job.id)


def test_map_of_a_job_deleted_meanwhile_raises(server: ServerHandle) -> None:
    with holding_relay(server.port) as relay:
        relayed_client(server, relay)
        relay.arm()
        deleter = delete_once_held(server, relay)
        got, error = outcome(
            lambda: bw.map(ECHO, range(BIG), params={"seconds": 0}, max_workers=4, timeout=180)
        )
        deleter.join(130)
        assert relay.held_job is not None
        assert_incomplete(error, got, relay.held_job)


class _ShortLedger(http.server.BaseHTTPRequestHandler):
    """A server whose results answer ends cleanly after 3 of a completed job's 5 lines:
    what a proxy that cuts an answer, or a server that lost the job between two
    parts, gives. The real server breaks the connection off instead."""

    def do_GET(self) -> None:  # http.server names the methods
        if self.path.split("?")[0].endswith("/results"):
            after = int(
                urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query).get("after", ["-1"])[
                    0
                ]
            )
            lines = [
                {"index": i, "status": "done", "result": i * 10, "error": None}
                for i in range(after + 1, 3)
            ]
            body = "".join(json.dumps(line) + "\n" for line in lines).encode()
            content_type = "application/x-ndjson"
        else:
            body = json.dumps({"id": "short", "status": "completed", "total": 5}).encode()
            content_type = "application/json"
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return


def test_a_stream_that_ends_cleanly_but_short_is_an_error_too() -> None:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _ShortLedger)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        job = bw.Job("short", _client.Client(f"http://127.0.0.1:{httpd.server_address[1]}/"))
        for read in (job.results, lambda: list(job.iter_results())):
            got, error = outcome(read)
            assert error is not None, f"no error, and {got!r}"
            assert type(error).__name__ == "ResultsIncomplete", repr(error)
            assert "3 of 5 lines came, because the stream ended before the last item" in str(
                error
            ), str(error)
            assert "call job.results() again" in str(error)
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(10)
