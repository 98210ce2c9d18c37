"""Items that run again when they fail (docs/configuration.md: retries, retry_delay, retry_on).

Against one real ``jupyter server`` (a subprocess, the tests on its ``PYTHONPATH``)
for each executor: its thread pool, its warm worker processes, and the Dask
``LocalCluster`` it starts. Every item counts its calls in a file of its own, so
a test reads how many times each item really ran and compares it with the
``attempts`` the server reports.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _helpers import Api
from _server import ServerHandle, build_server
from traitlets import TraitError

from batch_widget.server.app import BatchWidgetApp

pytestmark = pytest.mark.timeout(300)

FAILS_FIRST = "sample_processors:fails_first"
FAILS_BY_KIND = "sample_processors:fails_by_kind"
DIES_ON = "sample_processors:dies_on"
EXECUTORS = ["thread", "process", "dask"]
#: The server's progress_interval here, and the slack two busy shared cores need.
PROGRESS_INTERVAL = 0.05
SLACK = 30.0
#: The first Dask job starts the server's LocalCluster; the others reuse it.
JOB_TIMEOUT = 120.0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerHandle]:
    """One real server for the module, ``sample_processors`` importable by every worker."""
    tests_dir = Path(__file__).resolve().parents[1]
    handle = build_server(
        tmp_path_factory.mktemp("retries"),
        progress_interval=PROGRESS_INTERVAL,
        max_concurrent_jobs=3,
    )
    handle.env["PYTHONPATH"] = str(tests_dir)
    handle.start()
    try:
        yield handle
    finally:
        handle.stop()


def run(server: ServerHandle, body: dict[str, Any], timeout: float = JOB_TIMEOUT) -> Any:
    """Create a job and wait for its end; return its final snapshot."""
    job = server.api("POST", "api/batch/jobs", body)
    return server.wait_for_job(
        job["id"], lambda s: s["status"] in ("completed", "failed", "cancelled"), timeout
    )


def items_of(server: ServerHandle, job_id: str) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = server.api("GET", f"api/batch/jobs/{job_id}/items?limit=1000")[
        "items"
    ]
    return records


def calls(marker_dir: Path, item: int) -> int:
    """How many times ``item`` was really called (its file's length)."""
    path = marker_dir / f"{item}.attempts"
    return path.stat().st_size if path.exists() else 0


@pytest.mark.parametrize("executor", EXECUTORS)
def test_flaky_items_pass_after_their_retries_with_their_attempts_counted(
    server: ServerHandle, tmp_path: Path, executor: str
) -> None:
    failures = {str(item): item % 3 for item in range(12)}  # 0, 1 or 2 failures each
    final = run(
        server,
        {
            "processor": FAILS_FIRST,
            "items": list(range(12)),
            "executor": executor,
            "params": {"marker_dir": str(tmp_path), "failures": failures},
            "retries": 3,
            "retry_delay": 0.05,
        },
    )
    assert (final["status"], final["done"], final["failed"]) == ("completed", 12, 0), final
    assert final["retrying"] == 0
    for record in items_of(server, final["id"]):
        index = record["index"]
        assert record["attempts"] == index % 3 + 1 == calls(tmp_path, index), record
        assert record["result"] == {"item": index, "attempt": index % 3 + 1}
        assert record["error"] is None, "a passing attempt clears the earlier ones' error"


@pytest.mark.parametrize("executor", EXECUTORS)
def test_retry_on_retries_only_the_named_classes_and_their_subclasses(
    server: ServerHandle, tmp_path: Path, executor: str
) -> None:
    final = run(
        server,
        {
            "processor": FAILS_BY_KIND,
            "items": list(range(8)),
            "executor": executor,
            "params": {"marker_dir": str(tmp_path)},
            "retries": 2,
            "retry_delay": 0.05,
            "retry_on": ["OSError"],  # ConnectionError derives from it; ValueError does not
        },
    )
    assert (final["done"], final["failed"]) == (4, 4), final
    for record in items_of(server, final["id"]):
        index = record["index"]
        if index % 2:
            assert (record["status"], record["attempts"]) == ("done", 2), record
        else:
            assert (record["status"], record["attempts"]) == ("failed", 1), record
            assert record["error"] == f"ValueError: item {index} is bad (attempt 1)"
        assert record["attempts"] == calls(tmp_path, index)


@pytest.mark.parametrize("executor", EXECUTORS)
def test_an_item_whose_attempts_run_out_fails_with_its_last_error(
    server: ServerHandle, tmp_path: Path, executor: str
) -> None:
    final = run(
        server,
        {
            "processor": FAILS_FIRST,
            "items": [0, 1],
            "executor": executor,
            "params": {"marker_dir": str(tmp_path), "failures": {"1": 99}},
            "retries": 2,
            "retry_delay": 0,
        },
    )
    assert (final["status"], final["done"], final["failed"]) == ("completed", 1, 1), final
    records = items_of(server, final["id"])
    assert [(r["status"], r["attempts"]) for r in records] == [("done", 1), ("failed", 3)]
    assert records[1]["error"] == "ConnectionError: attempt 3 at 1 fails"
    assert calls(tmp_path, 1) == 3


def test_a_worker_that_dies_costs_its_item_an_attempt_and_no_other_item_any(
    server: ServerHandle, tmp_path: Path
) -> None:
    final = run(
        server,
        {
            "processor": DIES_ON,
            "items": list(range(6)),
            "executor": "process",
            "max_workers": 2,
            "params": {"marker_dir": str(tmp_path), "on": [3]},
            "retries": 1,
            "retry_delay": 0,
            "retry_on": ["WorkerDied"],
        },
    )
    assert (final["done"], final["failed"]) == (5, 1), final
    records = {r["index"]: r for r in items_of(server, final["id"])}
    assert records[3]["status"] == "failed" and records[3]["attempts"] == 2, records[3]
    assert "worker process" in records[3]["error"], records[3]["error"]
    for index in (0, 1, 2, 4, 5):
        assert (records[index]["status"], records[index]["attempts"]) == ("done", 1)


def test_items_waiting_for_their_next_attempt_are_pending_and_counted_as_retrying(
    server: ServerHandle, tmp_path: Path
) -> None:
    delay = 5.0  # at least 3.75 s (jitter): the window in which the test reads the waiting items
    job = server.api(
        "POST",
        "api/batch/jobs",
        {
            "processor": FAILS_FIRST,
            "items": list(range(4)),
            "params": {"marker_dir": str(tmp_path), "failures": dict.fromkeys("0123", 1)},
            "retries": 1,
            "retry_delay": delay,
        },
    )
    waiting = server.wait_for_job(job["id"], lambda s: s["retrying"] == 4, timeout=SLACK)
    assert (waiting["status"], waiting["pending"], waiting["failed"]) == ("processing", 4, 0)
    pending = server.api("GET", f"api/batch/jobs/{job['id']}/items?status=pending")["items"]
    assert [(r["attempts"], r["error"]) for r in pending] == [
        (1, f"ConnectionError: attempt 1 at {i} fails") for i in range(4)
    ], "a waiting item keeps its last error"
    final = server.wait_for_job(
        job["id"], lambda s: s["status"] == "completed", timeout=delay * 1.25 + SLACK
    )
    assert (final["done"], final["retrying"]) == (4, 0)


def test_cancel_does_not_wait_for_a_retry_delay(server: ServerHandle, tmp_path: Path) -> None:
    job = server.api(
        "POST",
        "api/batch/jobs",
        {
            "processor": FAILS_FIRST,
            "items": [0, 1],
            "params": {"marker_dir": str(tmp_path), "failures": {"0": 1, "1": 1}},
            "retries": 1,
            "retry_delay": 60,
        },
    )
    server.wait_for_job(job["id"], lambda s: s["retrying"] == 2, timeout=SLACK)
    cancelled_at = time.monotonic()
    server.api("POST", f"api/batch/jobs/{job['id']}/cancel")
    final = server.wait_for_job(job["id"], lambda s: s["status"] == "cancelled", timeout=SLACK)
    assert time.monotonic() - cancelled_at < 45, "the cancel waited out the 45-75 s delay"
    assert (final["done"], final["failed"], final["retrying"]) == (0, 0, 0)
    statuses = [r["status"] for r in items_of(server, final["id"])]
    assert statuses == ["cancelled", "cancelled"]
    assert calls(tmp_path, 0) == calls(tmp_path, 1) == 1, "nothing ran again"


def test_retry_of_a_job_runs_its_failed_items_again_with_attempts_from_zero(
    server: ServerHandle, tmp_path: Path
) -> None:
    body = {
        "processor": FAILS_FIRST,
        "items": [0, 1],
        "params": {"marker_dir": str(tmp_path), "failures": {"1": 2}},
        "retries": 1,
        "retry_delay": 0,
    }
    final = run(server, body)
    assert [r["attempts"] for r in items_of(server, final["id"])] == [1, 2]
    server.api("POST", f"api/batch/jobs/{final['id']}/retry")
    again = server.wait_for_job(
        final["id"], lambda s: s["status"] == "completed" and s["done"] == 2, timeout=SLACK
    )
    records = items_of(server, again["id"])
    assert [(r["status"], r["attempts"]) for r in records] == [("done", 1), ("done", 1)]
    assert records[1]["result"] == {"item": 1, "attempt": 3}, "its third call, its first attempt"
    assert calls(tmp_path, 0) == 1, "the done item did not run again"


def test_the_results_stream_carries_each_items_attempts(
    server: ServerHandle, tmp_path: Path
) -> None:
    final = run(
        server,
        {
            "processor": FAILS_FIRST,
            "items": [0, 1, 2],
            "params": {"marker_dir": str(tmp_path), "failures": {"1": 1, "2": 5}},
            "retries": 1,
            "retry_delay": 0,
        },
    )
    request = urllib.request.Request(
        f"{server.url}api/batch/jobs/{final['id']}/results",
        headers={"Authorization": f"token {server.token}"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        lines = [json.loads(line) for line in response.read().decode().splitlines() if line]
    records = [line for line in lines if "index" in line]
    assert [(r["index"], r["status"], r["attempts"]) for r in records] == [
        (0, "done", 1),
        (1, "done", 2),
        (2, "failed", 2),
    ]


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"retries": -1}, "'retries' must be an integer from 0 to 100"),
        ({"retries": 101}, "'retries' must be an integer from 0 to 100"),
        ({"retries": True}, "'retries' must be an integer"),
        ({"retries": "3"}, "'retries' must be an integer"),
        ({"retry_delay": -0.5}, "'retry_delay' must be a number of seconds from 0 to 60"),
        ({"retry_delay": 61}, "'retry_delay' must be a number of seconds from 0 to 60"),
        ({"retry_delay": "1s"}, "'retry_delay' must be a number"),
        ({"retry_on": "ConnectionError"}, "'retry_on' must be a list of exception class names"),
        ({"retry_on": [1]}, "'retry_on' must be a list of exception class names"),
        ({"retry_on": ["not a name"]}, "'retry_on' must be a list of exception class names"),
    ],
)
async def test_a_bad_retry_policy_is_a_400_that_names_it_and_creates_nothing(
    api: Api, fields: dict[str, Any], named: str
) -> None:
    code, body, _ = await api.call(
        "POST", "jobs", body={"processor": "batch_widget.processors:sleep", "items": [1], **fields}
    )
    assert code == 400, body
    assert named in body["message"], body["message"]
    assert (await api.jobs())["total"] == 0


async def test_an_infinite_retry_delay_is_refused(api: Api) -> None:
    raw = '{"processor": "batch_widget.processors:sleep", "items": [1], "retry_delay": 1e999}'
    code, body, _ = await api.call("POST", "jobs", body=raw)
    assert code == 400 and "'retry_delay' must be" in body["message"], body
    assert (await api.jobs())["total"] == 0


@pytest.mark.batch_config(retries=2, retry_delay=0.0, retry_on=["RuntimeError"])
async def test_the_server_wide_policy_applies_to_a_job_that_names_none(
    api: Api, tmp_path: Path
) -> None:
    job = await api.create(
        [0, 1],
        processor="sample_processors:flaky",  # fails each item's first call, RuntimeError
        params={"marker_dir": str(tmp_path)},
    )
    final = await api.wait(job["id"], timeout=SLACK)
    assert (final["done"], final["failed"]) == (2, 0), final
    code, page, _ = await api.call("GET", "jobs", job["id"], "items")
    assert code == 200 and [r["attempts"] for r in page["items"]] == [2, 2]
    # a job's own fields win over the server's
    job = await api.create(
        [5], processor="sample_processors:flaky", params={"marker_dir": str(tmp_path)}, retries=0
    )
    final = await api.wait(job["id"], timeout=SLACK)
    assert (final["done"], final["failed"]) == (0, 1), final


@pytest.mark.parametrize(
    ("trait", "value"),
    [("retries", -1), ("retries", 101), ("retry_delay", 61.0), ("retry_on", ["no such"])],
)
def test_a_bad_server_wide_policy_is_refused_when_configured(trait: str, value: Any) -> None:
    with pytest.raises(TraitError, match=f"BatchWidgetApp.'{trait}' must be"):
        BatchWidgetApp(**{trait: value})
