"""What a job costs the server's memory once it is stored (issue 9, items 8 and 10).

Real ``jupyter server`` subprocesses (``_server.running_server``) measured with
``psutil``, the kernel side through the public ``batch_widget`` API.
"""

from __future__ import annotations

import os
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest
from _helpers import TERMINAL
from _server import ServerHandle, running_server

import batch_widget as bw
from batch_widget.kernel import client as _client
from batch_widget.kernel.client import Client

MB = 1024 * 1024
CAPTURED = 20 * MB
JOBS = 10


def captures(size: int, marker: Path) -> Callable[[int], int]:
    """A notebook-style function that captures ``size`` bytes of data.

    Item 1 fails until ``marker`` exists, so the job has something to retry.
    """
    data = os.urandom(size)

    def uses_data(item: int) -> int:
        if item == 1 and not os.path.exists(marker):
            raise RuntimeError("not yet")
        return len(data) + item

    return uses_data


def rss_mb(server: ServerHandle) -> float:
    """The server process's resident memory, in MiB."""
    return psutil.Process(server.pid).memory_info().rss / MB


def wait_terminal(client: Client, job_id: str, timeout: float = 60) -> Any:
    """Poll the job until it ends; return its snapshot."""
    deadline = time.monotonic() + timeout
    while True:
        snapshot = client.get(job_id)
        if snapshot["status"] in TERMINAL:
            return snapshot
        assert time.monotonic() < deadline, snapshot
        time.sleep(0.05)


@pytest.fixture
def kernel_client(monkeypatch: pytest.MonkeyPatch) -> Callable[[ServerHandle], Client]:
    """``connect(server)`` points the kernel API at a server; forgotten after the test."""
    monkeypatch.setattr(_client._default, "client", None)  # restored after the test

    def connect(server: ServerHandle) -> Client:
        return bw.connect(server.url, server.token)

    return connect


def test_stored_functions_are_not_kept_in_server_memory(
    tmp_path: Path, kernel_client: Callable[[ServerHandle], Client]
) -> None:
    marker = tmp_path / "item-1-may-pass"
    with running_server(tmp_path, max_concurrent_jobs=2) as server:
        client = kernel_client(server)
        warm = bw.submit(captures(1024, marker), [0, 1])  # imports cloudpickle & co. once
        wait_terminal(client, warm.id)
        before = rss_mb(server)

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the kernel warns of each big function
            job_ids = [bw.submit(captures(CAPTURED, marker), [0, 1, 2]).id for _ in range(JOBS)]
        ended = [wait_terminal(client, job_id) for job_id in job_ids]
        assert [(s["done"], s["failed"]) for s in ended] == [(2, 1)] * JOBS
        grown = rss_mb(server) - before
        # The old server kept every pickle and 64 unpickled functions: +500 MB here.
        assert grown < JOBS * CAPTURED / MB / 2, f"server RSS grew by {grown:.0f} MB"

        server.restart()
        after_restart = rss_mb(server)
        assert after_restart < before + 40, (
            f"RSS after restart {after_restart:.0f} MB, first start {before:.0f} MB"
        )

        marker.touch()
        client.retry(job_ids[0])
        retried = wait_terminal(client, job_ids[0])
        assert (retried["status"], retried["done"], retried["failed"]) == ("completed", 3, 0)
        assert bw.attach(job_ids[0]).results() == [CAPTURED, CAPTURED + 1, CAPTURED + 2]


def test_the_kernel_warns_when_a_function_carries_much_data(
    tmp_path: Path, kernel_client: Callable[[ServerHandle], Client]
) -> None:
    with running_server(tmp_path) as server:
        client = kernel_client(server)
        with pytest.warns(UserWarning, match=r"pickled function .* is 11\.\d MiB") as caught:
            job = bw.submit(captures(11 * MB, tmp_path), [0])
        message = str(caught[0].message)
        assert "Pass the data as items" in message and "files" in message, message
        assert wait_terminal(client, job.id)["status"] == "completed"

        with warnings.catch_warnings():
            warnings.simplefilter("error")
            small = bw.submit(captures(1024, tmp_path), [0])
        assert wait_terminal(client, small.id)["status"] == "completed"


# --------------------------------------------------------------------------- big results

TESTS_DIR = Path(__file__).resolve().parents[1]  # tests/, where sample_processors lives
NEAR_CAP = 15 * MB  # the default max_result_bytes is 16 MiB


def status_latencies_during(server: ServerHandle, request: Callable[[], Any]) -> list[float]:
    """Seconds each ``GET api/status`` took while ``request()`` ran in another thread."""
    worker = threading.Thread(target=request)
    worker.start()
    seconds: list[float] = []
    while worker.is_alive():
        started = time.perf_counter()
        server.api("GET", "api/status", timeout=60)
        seconds.append(time.perf_counter() - started)
        time.sleep(0.005)
    worker.join()
    return seconds


def test_big_results_come_in_short_pages_built_off_the_event_loop(
    tmp_path: Path,
    kernel_client: Callable[[ServerHandle], Client],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PYTHONPATH", str(TESTS_DIR))  # the server imports sample_processors
    sizes = [NEAR_CAP + i for i in range(8)]
    with running_server(tmp_path) as server:
        client = kernel_client(server)
        job = bw.submit("sample_processors:sized_result", sizes, max_workers=2)
        assert wait_terminal(client, job.id)["done"] == 8

        pages: list[Any] = []
        slowest = max(
            status_latencies_during(
                server,
                lambda: pages.append(
                    server.api("GET", f"api/batch/jobs/{job.id}/items", timeout=120)
                ),
            )
        )
        (page,) = pages
        assert page["total"] == 8
        assert 1 <= len(page["items"]) < 8, "one page carried every big result"
        # Measured on a 2-core machine: 0.45 s when the page held all eight results
        # (decoded, encoded and hashed for an ETag around the loop); 0.03 s now.
        assert slowest < 0.2, f"GET api/status took {slowest:.2f} s during the page"

        results = job.results()
        assert [len(r) for r in results] == sizes
        assert all(set(r) == {"r"} for r in results)
