"""executor="dask": jobs on a Dask cluster, tested against real Dask processes.

A ``dask scheduler`` and ``dask worker``s started through the ``dask`` command
line (``_dask.DaskProcesses``), a real SQLite ledger, real faults: a worker and
a scheduler killed with SIGKILL, a scheduler that is not there yet, workers with
another batch_widget installed. The server's own ``LocalCluster`` and the
refusal without ``distributed`` run in a real ``jupyter server``.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import psutil
import pytest
from _dask import START_TIMEOUT, TESTS_DIR, DaskProcesses
from _engine import ManagerFactory, Recorder, create, make_manager, wait, wait_until
from _server import ServerHandle, build_server, free_port
from distributed import Client

import batch_widget.kernel.job as bw
from batch_widget.engine.cluster import DaskPool
from batch_widget.engine.manager import JobManager
from batch_widget.kernel import client as _client

__all__ = ["make_manager"]  # the fixture, imported for pytest

pytestmark = pytest.mark.timeout(240)

WHERE = "sample_processors:where_and_when"
#: The engine's dask_connect_timeout in these tests.
CONNECT_TIMEOUT = 3.0
#: Seconds of slack on top of what the settings promise: two busy shared cores.
SLACK = 15.0


@pytest.fixture
def dask_cluster(tmp_path: Path) -> Iterator[DaskProcesses]:
    """A scheduler port and a log folder; each test starts the processes it needs."""
    processes = DaskProcesses(port=free_port(), logs=tmp_path)
    try:
        yield processes
    finally:
        processes.stop()


def on(
    make: ManagerFactory,
    cluster: DaskProcesses,
    recorder: Recorder | None = None,
) -> JobManager:
    return make(recorder, dask_address=cluster.address, dask_connect_timeout=CONNECT_TIMEOUT)


async def started(cluster: DaskProcesses, *names: str, nthreads: int = 2) -> dict[str, int]:
    """Start the scheduler and the named workers; return the workers' pids."""
    cluster.start_scheduler()
    pids = {name: cluster.start_worker(name, nthreads) for name in names}
    await asyncio.to_thread(cluster.wait_for_workers, len(names))
    return pids


def records(manager: JobManager, job_id: str) -> list[dict[str, Any]]:
    rows, _ = manager.items(job_id, None, 0, 10_000)
    return rows  # type: ignore[return-value]  # ItemRecord is a dict


def statuses(manager: JobManager, job_id: str) -> dict[str, int]:
    """Item counts by status, read from the SQLite file with a connection of our own."""
    key = manager._jobs[job_id].row.key
    with sqlite3.connect(manager.store.path) as conn:
        return dict(
            conn.execute(
                "SELECT status, COUNT(*) FROM items WHERE job = ? GROUP BY status", (key,)
            ).fetchall()
        )


async def test_items_run_in_the_dask_workers_and_come_back_in_item_order(
    make_manager: ManagerFactory,
    dask_cluster: DaskProcesses,
) -> None:
    pids = await started(dask_cluster, "w1", "w2")
    recorder = Recorder()
    manager = on(make_manager, dask_cluster, recorder)

    job = create(
        manager, list(range(300)), processor=WHERE, params={"seconds": 0.005}, executor="dask"
    )
    final = await wait(manager, job["id"])

    assert (final["status"], final["done"], final["failed"]) == ("completed", 300, 0)
    assert final["executor"] == "dask"
    rows = records(manager, job["id"])
    assert [row["result"]["item"] for row in rows] == list(range(300))
    ran_in = {row["result"]["pid"] for row in rows}
    assert ran_in == set(pids.values()), "both workers ran items, and nothing else did"
    assert os.getpid() not in ran_in
    running = [s for s in recorder.of(job["id"]) if s["status"] == "processing"]
    assert {s["workers"] for s in running} == {2}, "the widget is told: on Dask, 2 workers"
    assert final["workers"] is None


async def test_a_worker_killed_mid_job_costs_only_time(
    make_manager: ManagerFactory,
    dask_cluster: DaskProcesses,
) -> None:
    pids = await started(dask_cluster, "w1", "w2")
    manager = on(make_manager, dask_cluster)
    job = create(
        manager, list(range(80)), processor=WHERE, params={"seconds": 0.1}, executor="dask"
    )
    await wait_until(lambda: manager.get(job["id"])["done"] >= 8, timeout=60)

    dask_cluster.kill_worker("w1")  # SIGKILL while it runs two items
    final = await wait(manager, job["id"], timeout=120)

    assert (final["status"], final["done"], final["failed"]) == ("completed", 80, 0)
    assert statuses(manager, job["id"]) == {"done": 80}
    rows = records(manager, job["id"])
    assert [row["result"]["item"] for row in rows] == list(range(80))
    ran_in = [row["result"]["pid"] for row in rows]
    assert pids["w1"] in ran_in, "the killed worker had run items before it died"
    assert ran_in[-1] == pids["w2"], "the survivor ran the rest"


def poll(condition: Any, what: str, timeout: float = START_TIMEOUT) -> None:
    """Wait until ``condition()`` holds; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout:g} s: {what}"
        time.sleep(0.02)


def test_a_result_lost_with_its_worker_before_it_was_fetched_is_computed_again(
    dask_cluster: DaskProcesses,
) -> None:
    """A chunk's outcome stays on its worker until the pool fetches it, on Dask's one
    callback thread. Here that thread is held (another future's callback waits on a
    gate) while the chunk finishes on w1, w1 is SIGKILLed with the outcome (the
    client's future reads "lost": Dask will run it again) and w2 starts; then the gate
    opens. The pool waits for the run again instead of failing the chunk."""
    dask_cluster.start_scheduler()
    dask_cluster.start_worker("w1", nthreads=1)
    dask_cluster.wait_for_workers(1)
    with Client(
        dask_cluster.address,
        timeout=START_TIMEOUT,  # type: ignore[no-untyped-call]
        set_as_default=False,
    ) as client:
        pool = DaskPool(client, "the test's cluster")
        entered, gate = threading.Event(), threading.Event()
        blocker = client.submit(int, 1, pure=False)
        blocker.add_done_callback(lambda _: (entered.set(), gate.wait(START_TIMEOUT)))
        assert entered.wait(START_TIMEOUT), "the callback thread is held"
        try:
            settled = pool.submit(os.getpid)
            [key] = set(client.futures) - {blocker.key}
            poll(lambda: client.futures[key].status == "finished", "the chunk ran on w1")
            dask_cluster.kill_worker("w1")
            poll(lambda: client.futures[key].status != "finished", "the outcome was lost")
            w2 = dask_cluster.start_worker("w2", nthreads=1)
        finally:
            gate.set()
        assert settled.result(timeout=START_TIMEOUT) == w2, "w2 ran the chunk again"


async def test_an_item_that_kills_its_workers_fails_alone(
    make_manager: ManagerFactory,
    dask_cluster: DaskProcesses,
) -> None:
    """Dask gives up on a task that took a worker down (``allowed_failures=0`` here, so
    one death is enough): the items of that chunk run again one at a time, and only
    the item that kills its worker fails. The nanny starts the worker again each time."""
    dask_cluster.start_scheduler(allowed_failures=0)
    dask_cluster.start_worker("w1", nthreads=1, nanny=True)
    await asyncio.to_thread(dask_cluster.wait_for_workers, 1)
    manager = on(make_manager, dask_cluster)

    job = create(
        manager,
        list(range(12)),
        processor="sample_processors:crash",
        params={"on": [5]},
        executor="dask",
    )
    final = await wait(manager, job["id"], timeout=120)

    assert (final["status"], final["done"], final["failed"]) == ("completed", 11, 1), final
    [failed] = manager.items(job["id"], "failed")[0]
    assert failed["index"] == 5
    assert "the Dask workers running this item died" in failed["error"]
    assert [row["result"] for row in records(manager, job["id"])] == [
        *range(5),
        None,
        *range(6, 12),
    ]


async def test_an_unreachable_scheduler_fails_the_job_naming_it_and_retry_completes_it(
    make_manager: ManagerFactory,
    dask_cluster: DaskProcesses,
) -> None:
    manager = on(make_manager, dask_cluster)  # nothing listens at its address yet
    clock = time.monotonic()
    job = create(manager, list(range(20)), processor=WHERE, executor="dask")
    failed = await wait(manager, job["id"], timeout=CONNECT_TIMEOUT + SLACK)
    took = time.monotonic() - clock

    assert failed["status"] == "failed", failed
    assert dask_cluster.address in failed["error"]
    assert "cannot reach the Dask scheduler" in failed["error"]
    assert took < CONNECT_TIMEOUT + SLACK
    assert statuses(manager, job["id"]) == {"pending": 20}

    await started(dask_cluster, "w1")
    manager.retry(job["id"])
    final = await wait(manager, job["id"], timeout=60)
    assert (final["status"], final["done"], final["failed"]) == ("completed", 20, 0)


async def test_a_lost_scheduler_fails_the_job_and_retry_runs_only_what_was_left(
    make_manager: ManagerFactory,
    dask_cluster: DaskProcesses,
) -> None:
    pids = await started(dask_cluster, "w1")
    manager = on(make_manager, dask_cluster)
    job = create(
        manager, list(range(60)), processor=WHERE, params={"seconds": 0.1}, executor="dask"
    )
    await wait_until(lambda: manager.get(job["id"])["done"] >= 6, timeout=60)

    dask_cluster.kill_scheduler()
    failed = await wait(manager, job["id"], timeout=SLACK)

    assert failed["status"] == "failed", failed
    assert dask_cluster.address in failed["error"] and "lost" in failed["error"]
    kept = failed["done"]
    assert 6 <= kept < 60
    assert "running" not in statuses(manager, job["id"]), "unfinished items went back to pending"

    dask_cluster.kill_worker("w1")
    again = await started(dask_cluster, "w2")
    manager.retry(job["id"])
    final = await wait(manager, job["id"], timeout=60)

    assert (final["status"], final["done"], final["failed"]) == ("completed", 60, 0)
    ran_in = [row["result"]["pid"] for row in records(manager, job["id"])]
    assert ran_in.count(pids["w1"]) == kept, "what was done before the loss did not run again"
    assert ran_in.count(again["w2"]) == 60 - kept


async def test_cancel_reaches_every_worker_within_a_second(
    make_manager: ManagerFactory,
    dask_cluster: DaskProcesses,
) -> None:
    """Items that slow down after their chunks were sized (25 fast items make a chunk,
    then each takes 0.2 s): the chunks out on the workers hold 5 s of work each, and
    only the flag they check between items stops them."""
    pids = await started(dask_cluster, "w1", "w2")
    manager = on(make_manager, dask_cluster)
    job = create(
        manager,
        list(range(600)),
        processor=WHERE,
        executor="dask",
        params={"seconds": 0.002, "slow_from": 200, "slow_seconds": 0.2},
    )
    await wait_until(lambda: manager.get(job["id"])["done"] >= 200, timeout=60)

    requested = time.monotonic()  # the clock the items stamp their start with
    manager.cancel(job["id"])
    final = await wait(manager, job["id"], timeout=60)

    assert final["status"] == "cancelled"
    ran = [row["result"] for row in records(manager, job["id"]) if row["status"] == "done"]
    assert {r["pid"] for r in ran} == set(pids.values())
    latest = max(r["started"] for r in ran)
    assert latest <= requested + 1.0, f"an item started {latest - requested:.2f} s after cancel"
    assert final["done"] < 600 and statuses(manager, job["id"])["cancelled"] == 600 - final["done"]


async def test_workers_with_another_batch_widget_fail_the_job_with_a_clear_error(
    make_manager: ManagerFactory,
    dask_cluster: DaskProcesses,
    tmp_path: Path,
) -> None:
    other = tmp_path / "other-env"
    info = other / "batch_widget-0.0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: batch_widget\nVersion: 0.0.1\n")
    dask_cluster.start_scheduler()
    dask_cluster.start_worker("old", first_on_path=str(other))
    await asyncio.to_thread(dask_cluster.wait_for_workers, 1)
    manager = on(make_manager, dask_cluster)

    job = create(manager, list(range(10)), processor=WHERE, executor="dask")
    failed = await wait(manager, job["id"], timeout=SLACK)

    assert failed["status"] == "failed"
    ours = version("batch_widget")
    assert f"has batch_widget 0.0.1, this server {ours}" in failed["error"]
    assert dask_cluster.address in failed["error"]
    assert "pip install 'batch_widget[dask]'" in failed["error"]
    assert statuses(manager, job["id"]) == {"pending": 10}, "nothing ran"


# -- in a real jupyter server ----------------------------------------------------------


def post_job(server: ServerHandle, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        f"{server.url}api/batch/jobs",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Authorization": f"token {server.token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_the_servers_local_cluster_runs_a_job_and_ends_with_the_server(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = build_server(tmp_path)
    server.env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(TESTS_DIR), server.env.get("PYTHONPATH")])
    )
    server.start()
    try:
        monkeypatch.setattr(_client._default, "client", None)
        bw.connect(server.url, server.token)
        job = bw.submit(WHERE, list(range(40)), params={"seconds": 0.05}, executor="dask")
        dask_processes: set[psutil.Process] = set()
        while not job.status.terminal:
            dask_processes |= set(psutil.Process(server.pid).children(recursive=True))
            time.sleep(0.05)
        snapshot = job.snapshot()
        assert (snapshot["status"], snapshot["done"]) == ("completed", 40)
        ran_in = {r["pid"] for r in job.results()}
        assert ran_in and ran_in <= {p.pid for p in dask_processes}, "the cluster's workers ran it"
        assert server.pid not in ran_in
    finally:
        server.stop()
    _, alive = psutil.wait_procs(dask_processes, timeout=SLACK)
    assert not alive, f"Dask processes left behind: {alive}"


def test_without_distributed_a_dask_job_is_refused_with_what_to_install(
    tmp_path: Path,
) -> None:
    site = tmp_path / "no-dask"
    site.mkdir()
    (site / "sitecustomize.py").write_text("import sys\nsys.modules['distributed'] = None\n")
    server = build_server(tmp_path / "server")
    server.env["PYTHONPATH"] = os.pathsep.join([str(site), str(TESTS_DIR)])
    server.start()
    try:
        code, body = post_job(server, {"processor": WHERE, "items": [1], "executor": "dask"})
        assert code == 400
        assert "pip install 'batch_widget[dask]'" in body["message"]
        code, _ = post_job(server, {"processor": WHERE, "items": [1]})
        assert code == 201, "other jobs are still accepted"
    finally:
        server.stop()


async def test_what_items_print_on_dask_workers_is_kept_per_item(
    make_manager: ManagerFactory,
    dask_cluster: DaskProcesses,
) -> None:
    await started(dask_cluster, "w1", nthreads=4)
    manager = on(make_manager, dask_cluster)
    job = create(manager, list(range(60)), processor="sample_processors:chatty", executor="dask")
    final = await wait(manager, job["id"], timeout=60)
    assert final["done"] == 60
    for row in records(manager, job["id"]):
        index = row["index"]
        assert row["log"].splitlines() == [
            text
            for line in range(3)
            for text in (
                f"item {index} says {line}",
                f"item {index} warns {line}",
                f"WARNING chatty: item {index} logs {line}",
            )
        ]
