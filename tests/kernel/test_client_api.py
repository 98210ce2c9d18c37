"""The kernel-side API end to end, against a real ``jupyter server`` subprocess.

Runs alone: ``pytest -q tests/kernel/test_client_api.py``. The server helper lives in
``tests/_server.py``.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _server import ServerHandle, running_server

import batch_widget.kernel.job as bw
from batch_widget.kernel import client as _client
from batch_widget.kernel.client import default_client
from batch_widget.protocol import JobNotFound, JobStateConflict, JobStatus, PermissionDenied

SLEEP = "batch_widget.processors:sleep"

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerHandle]:
    """One real server for the module's ordinary tests."""
    with running_server(tmp_path_factory.mktemp("server")) as handle:
        yield handle


@pytest.fixture(autouse=True)
def connected(server: ServerHandle, monkeypatch: pytest.MonkeyPatch) -> ServerHandle:
    """Point the API at the module's server; forget the choice after the test."""
    monkeypatch.setattr(_client._default, "client", None)  # restored after the test
    bw.connect(server.url, server.token)
    return server


def wait_for(job: bw.Job, done: int, timeout: float = 30) -> None:
    """Wait until ``job`` has at least ``done`` items done."""
    deadline = time.monotonic() + timeout
    while job.snapshot()["done"] < done:
        assert time.monotonic() < deadline, f"job {job!r} never reached {done} done"
        time.sleep(0.05)


# --------------------------------------------------------------------------- basics


def test_submit_wait_results_and_errors() -> None:
    job = bw.submit(
        SLEEP, range(10), name="ten", params={"seconds": 0.01, "fail": [3, 7]}, max_workers=3
    )
    assert job.id
    snap = job.wait(timeout=60)

    assert snap["status"] == "completed"
    assert (snap["total"], snap["done"], snap["failed"], snap["pending"]) == (10, 8, 2, 0)
    assert job.status is JobStatus.COMPLETED
    assert job.snapshot()["name"] == "ten"
    assert job.snapshot()["processor"] == SLEEP
    assert job.results() == [0, 1, 2, None, 4, 5, 6, None, 8, 9]
    errors = job.errors()
    assert [(e["index"], e["input"]) for e in errors] == [(3, 3), (7, 7)]
    assert all("asked to fail" in (e["error"] or "") for e in errors)
    assert all("ValueError" in (e["traceback"] or "") for e in errors)
    assert job.outputs() == []
    assert "ten" in repr(job)
    assert "completed" in repr(job)


def test_results_page_through_many_items() -> None:
    job = bw.submit(SLEEP, list(range(2500)), params={"seconds": 0}, max_workers=4)
    assert job.wait(timeout=120)["done"] == 2500
    assert job.results() == list(range(2500))


def test_cancel_mid_job() -> None:
    job = bw.submit(SLEEP, range(60), params={"seconds": 0.1}, max_workers=1)
    wait_for(job, 1)
    job.cancel()
    snap = job.wait(timeout=30)

    assert snap["status"] == "cancelled"
    assert 1 <= snap["done"] < 60
    results = job.results()
    assert results[: snap["done"]] == list(range(snap["done"]))
    assert results[-1] is None
    with pytest.raises(JobStateConflict):
        job.cancel()


def test_retry_after_failures_completes(tmp_path: Path) -> None:
    marker = tmp_path / "fixed"

    def flaky(item: int) -> int:
        if item % 4 == 1 and not marker.exists():
            raise RuntimeError(f"{item} is not fixed yet")
        return item * 2

    job = bw.submit(flaky, range(8), max_workers=2)
    first = job.wait(timeout=60)
    assert (first["status"], first["failed"]) == ("completed", 2)
    with pytest.raises(JobStateConflict):
        bw.submit(SLEEP, [1], params={"seconds": 5}).retry()  # an active job cannot be retried

    marker.touch()
    job.retry()
    second = job.wait(timeout=60)

    assert (second["status"], second["done"], second["failed"]) == ("completed", 8, 0)
    assert second["version"] > first["version"]
    assert job.results() == [i * 2 for i in range(8)]
    assert job.errors() == []


def test_delete() -> None:
    job = bw.submit(SLEEP, range(20), params={"seconds": 0.2}, max_workers=1)
    with pytest.raises(JobStateConflict):
        job.delete()
    job.cancel()
    job.wait(timeout=30)
    job.delete()
    with pytest.raises(JobNotFound):
        job.snapshot()
    with pytest.raises(JobNotFound):
        bw.attach(job.id)


def test_attach() -> None:
    job = bw.submit(SLEEP, ["a", "b"], params={"seconds": 0})
    job.wait(timeout=30)
    again = bw.attach(job.id)
    assert again.id == job.id
    assert again.results() == ["a", "b"]
    with pytest.raises(JobNotFound) as caught:
        bw.attach("no-such-job")
    assert caught.value.status_code == 404


def test_jobs_lists_newest_first_with_a_table() -> None:
    first = bw.submit(SLEEP, [1], name="first <b>", params={"seconds": 0})
    second = bw.submit(SLEEP, [2], name="second", params={"seconds": 0})
    first.wait(timeout=30)
    second.wait(timeout=30)

    listed = bw.jobs(limit=2)
    assert [snap["id"] for snap in listed] == [second.id, first.id]
    assert listed.total >= 2
    assert all(snap["status"] == "completed" for snap in bw.jobs(status="completed"))
    html = bw.jobs()._repr_html_()
    assert "<table" in html
    assert first.id in html
    assert "first &lt;b&gt;" in html  # names are escaped
    assert "1/0/1" in html


def test_wait_times_out_with_the_job_attached() -> None:
    job = bw.submit(SLEEP, range(10), params={"seconds": 1}, max_workers=1)
    started = time.monotonic()
    with pytest.raises(TimeoutError) as caught:
        job.wait(timeout=0.5)
    assert time.monotonic() - started < 5
    assert caught.value.job is job  # type: ignore[attr-defined]
    job.cancel()


def test_displaying_a_job_builds_the_widget() -> None:
    job = bw.submit(SLEEP, [1], params={"seconds": 0})
    bundle = job._repr_mimebundle_()
    data = bundle[0] if isinstance(bundle, tuple) else bundle
    assert "application/vnd.jupyter.widget-view+json" in data
    assert job.id in data["text/plain"]
    assert job.widget().job_id == job.id


# --------------------------------------------------------------------------- map


def test_map_returns_results_in_item_order() -> None:
    assert bw.map(SLEEP, [5, 4, 3, 2, 1], params={"seconds": 0.01}, max_workers=5) == [
        5,
        4,
        3,
        2,
        1,
    ]


def test_map_raises_naming_the_failures() -> None:
    with pytest.raises(bw.BatchFailed) as caught:
        bw.map(SLEEP, ["a", "b", "c", "d"], params={"seconds": 0, "fail": ["b", "d"]})
    message = str(caught.value)
    assert "2 of 4 items failed" in message
    assert "item 1" in message
    assert "'b'" in message
    assert "asked to fail" in message
    assert caught.value.job.results() == ["a", None, "c", None]


@pytest.mark.parametrize("executor", ["thread", "process"])
def test_map_with_retries_raises_only_for_what_stays_failed(tmp_path: Path, executor: str) -> None:
    marker_dir = tmp_path / "calls"

    def download(item: int) -> int:  # a notebook function: flaky for odd items, broken for 4
        marker = marker_dir / str(item)
        marker.parent.mkdir(exist_ok=True)
        with open(marker, "ab") as stream:
            stream.write(b".")
            call = stream.tell()
        if item == 4:
            raise KeyError(f"no such file {item}")
        if item % 2 and call < 3:
            raise ConnectionResetError(f"reset on call {call}")
        return item * 10

    assert bw.map(
        download, [1, 2, 3], retries=2, retry_delay=0, retry_on=[OSError], executor=executor
    ) == [10, 20, 30]
    with pytest.raises(bw.BatchFailed) as caught:
        bw.map(download, [4, 5], retries=3, retry_delay=0, retry_on=[ConnectionError, "KeyError"])
    assert "1 of 2 items failed" in str(caught.value) and "KeyError" in str(caught.value)
    (error,) = caught.value.job.errors()
    assert (error["index"], error["attempts"]) == (0, 4), error
    assert caught.value.job.results() == [None, 50]


def test_retry_on_takes_exception_classes_or_their_names_only() -> None:
    with pytest.raises(TypeError, match=r"retry_on takes exception classes or their names"):
        bw.submit(SLEEP, [1], retries=1, retry_on=[42])  # type: ignore[list-item]
    with pytest.raises(bw.InvalidRequest, match="'retries' must be an integer from 0 to 100"):
        bw.submit(SLEEP, [1], retries=1000)


# --------------------------------------------------------------------------- callables


def test_a_notebook_function_runs_on_the_server() -> None:
    offset = 1000

    def add_offset(item: int) -> int:
        return item + offset

    assert bw.processor_fields(add_offset).keys() == {"callable"}
    assert bw.map(add_offset, range(5)) == [1000, 1001, 1002, 1003, 1004]


def test_an_importable_function_travels_by_name() -> None:
    from batch_widget.processors import sleep

    assert bw.processor_fields(sleep) == {"processor": SLEEP}
    job = bw.submit(sleep, [1, 2], params={"seconds": 0})
    assert job.snapshot()["processor"] == SLEEP
    assert job.wait(timeout=30)["done"] == 2


def test_a_function_from_a_kernel_only_module_travels_by_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "bw_kernel_only_helpers.py").write_text(
        "FACTOR = 7\n\ndef times_factor(item):\n    return item * FACTOR\n", encoding="utf-8"
    )
    monkeypatch.syspath_prepend(str(tmp_path))  # importable here, not in the server
    module = importlib.import_module("bw_kernel_only_helpers")

    assert bw.processor_fields(module.times_factor) == {
        "processor": "bw_kernel_only_helpers:times_factor"
    }
    job = bw.submit(module.times_factor, [1, 2, 3])

    assert job.snapshot()["processor"] != "bw_kernel_only_helpers:times_factor"
    assert job.wait(timeout=30)["status"] == "completed"
    assert job.results() == [7, 14, 21]


def test_callable_job_survives_a_server_crash(tmp_path: Path) -> None:
    scale = 3

    def slow_triple(item: int) -> int:
        time.sleep(0.1)
        return item * scale

    with running_server(tmp_path) as server:
        bw.connect(server.url, server.token)
        job = bw.submit(slow_triple, range(40), max_workers=1)
        wait_for(job, 5)
        server.kill()
        server.restart()

        crashed = job.snapshot()
        assert crashed["status"] == "interrupted"
        assert crashed["done"] >= 4  # committed results survive (at most one batch redone)
        job.retry()
        snap = job.wait(timeout=60)

        assert (snap["status"], snap["done"], snap["failed"]) == ("completed", 40, 0)
        assert job.results() == [i * 3 for i in range(40)]


def test_callables_refused_when_disabled(tmp_path: Path) -> None:
    with running_server(tmp_path, allow_callables=False) as server:
        bw.connect(server.url, server.token)
        with pytest.raises(PermissionDenied) as caught:
            bw.submit(lambda item: item, [1])
        assert caught.value.status_code == 403
        assert "allow_callables" in str(caught.value)
        assert bw.map(SLEEP, [1, 2], params={"seconds": 0}) == [1, 2]  # import paths still work


def test_a_rejected_token_says_what_to_do_without_the_servers_jargon(
    server: ServerHandle,
) -> None:
    """Jupyter answers a write with a wrong token (or none) "'_xsrf' argument missing from
    POST": the user sees what to pass instead."""
    bw.connect(server.url, "not-the-token")
    for call in (
        lambda: bw.submit(SLEEP, [1], params={"seconds": 0}),
        lambda: _client.Client(server.url, "").cancel("0123456789ab"),
        bw.jobs,
    ):
        with pytest.raises(PermissionDenied) as denied:
            call()
        text = str(denied.value)
        assert "_xsrf" not in text and "argument missing" not in text, text
        sent = "no token was sent" if "no token" in text else "the token sent was rejected"
        assert f"the Jupyter server at {server.url} refused the request: {sent} (HTTP 403)." in text
        assert "Use the token Jupyter printed at start" in text
        assert "bw.connect(url, token=...)" in text


# --------------------------------------------------------------------------- discovery


def test_a_kernel_finds_the_server_that_launched_it(
    server: ServerHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("BATCH_WIDGET_URL", "JUPYTERHUB_SERVICE_PREFIX", "JUPYTERHUB_API_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(server.runtime_dir))
    monkeypatch.setenv("JPY_PARENT_PID", str(server.pid))

    client = bw.connect()

    assert client.url.endswith(server.base_url)
    assert client.token == server.token
    assert default_client() is client
    job = bw.submit(SLEEP, [1], params={"seconds": 0})
    assert job.wait(timeout=30)["status"] == "completed"


def test_events_stream_a_job_to_its_end(server: ServerHandle) -> None:
    client = default_client()
    job = bw.submit(SLEEP, range(5), params={"seconds": 0.05}, max_workers=1)
    kinds: list[str] = []
    snapshots: list[dict[str, Any]] = []
    for event in client.events([job.id], timeout=30):
        kinds.append(event.event)
        if event.event in {"progress", "complete"}:
            snapshots.append(event.json())
        if event.event == "complete":
            break
    assert kinds[-1] == "complete"
    assert {snap["id"] for snap in snapshots} == {job.id}
    versions = [snap["version"] for snap in snapshots]
    assert versions == sorted(versions)
    assert snapshots[-1]["done"] == 5
    assert event.id is not None
