"""The job engine without a server: state machine, cancel, retry, errors, broadcasting."""

from __future__ import annotations

import asyncio
import base64
import os
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import cloudpickle
import pytest
from _engine import ManagerFactory, Recorder, create, make_manager, wait, wait_until

from batch_widget.engine.manager import JobManager
from batch_widget.engine.pacing import ChunkSizer
from batch_widget.engine.store import Store
from batch_widget.engine.worker import Outcome
from batch_widget.protocol import (
    InvalidRequest,
    ItemStatus,
    JobNotFound,
    JobStateConflict,
    PermissionDenied,
)

SLEEP = "batch_widget.processors:sleep"
__all__ = ["make_manager"]  # the fixture, imported for pytest


async def test_a_job_goes_queued_processing_completed(make_manager: ManagerFactory) -> None:
    recorder = Recorder()
    manager = make_manager(recorder, start=False)
    created = create(manager, [1, 2, 3], processor=SLEEP, params={"seconds": 0.01})
    assert created["status"] == "queued"
    assert created["name"] == "sleep"
    assert created["processor"] == SLEEP
    counts = (created["total"], created["done"], created["failed"], created["pending"])
    assert counts == (3, 0, 0, 3)
    assert created["created_at"] is not None
    assert created["started_at"] is None and created["finished_at"] is None
    assert manager.get(created["id"]) == created  # nothing runs before start()

    manager.start()
    final = await wait(manager, created["id"])
    assert final["status"] == "completed"
    assert (final["done"], final["failed"], final["pending"]) == (3, 0, 0)
    assert final["started_at"] is not None and final["finished_at"] is not None
    assert final["eta"] is None and final["error"] is None

    seen = recorder.of(created["id"])
    statuses = [s["status"] for s in seen]
    assert statuses[0] == "queued" and "processing" in statuses and statuses[-1] == "completed"
    versions = [s["version"] for s in seen]
    assert versions == sorted(versions) and len(set(versions)) == len(versions)
    for snapshot in seen:
        assert snapshot["pending"] == snapshot["total"] - snapshot["done"] - snapshot["failed"]
    assert seen[-1] == final


async def test_results_errors_and_durations_land_in_the_ledger(
    make_manager: ManagerFactory,
) -> None:
    manager = make_manager()
    job = create(
        manager, list(range(10)), processor=SLEEP, params={"seconds": 0.001, "fail": [3, 7]}
    )
    final = await wait(manager, job["id"])
    assert (final["status"], final["done"], final["failed"]) == ("completed", 8, 2)
    items, total = manager.items(job["id"])
    assert total == 10
    assert [i["index"] for i in items] == list(range(10))
    for item in items:
        assert item["duration"] is not None and item["duration"] >= 0
        if item["index"] in (3, 7):
            assert item["status"] == "failed"
            assert item["error"] == f"ValueError: item {item['index']} was asked to fail"
            assert "Traceback" in (item["traceback"] or "")
            assert item["result"] is None
        else:
            assert (item["status"], item["result"], item["error"]) == ("done", item["index"], None)
    failed, count = manager.items(job["id"], status="failed")
    assert count == 2 and [i["index"] for i in failed] == [3, 7]


async def test_a_result_json_cannot_encode_fails_only_that_item(
    make_manager: ManagerFactory,
) -> None:
    manager = make_manager()
    job = create(manager, [0, 1, 2, 3], processor="sample_processors:unserialisable")
    final = await wait(manager, job["id"])
    assert (final["status"], final["done"], final["failed"]) == ("completed", 2, 2)
    items, _ = manager.items(job["id"], status="failed")
    assert [i["index"] for i in items] == [1, 3]
    assert all(i["error"].startswith("result is not JSON-serialisable:") for i in items)


async def test_an_unimportable_processor_is_refused_before_any_job_exists(
    make_manager: ManagerFactory,
) -> None:
    manager = make_manager()
    for processor in [
        "no_such_module_xyz:run",
        "batch_widget.processors:nope",
        "not a path",
        "os.path",
    ]:
        with pytest.raises(InvalidRequest):
            create(manager, [1], processor=processor)
    assert manager.list_jobs() == ([], 0)
    assert manager.store.load_jobs() == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"items": "abc"}, "'items' must be a list"),
        ({"items": []}, "must not be empty"),
        ({"items": [1], "params": [1]}, "'params' must be an object"),
        ({"items": [1], "params": {"bogus": 1}}, "cannot be called"),
        ({"items": [1], "max_workers": 0}, "'max_workers'"),
        ({"items": [1], "max_workers": True}, "'max_workers'"),
        ({"items": [1], "executor": "gpu"}, "'executor'"),
        ({"items": [1], "name": ""}, "'name'"),
        ({"items": [object()]}, "not JSON-serialisable"),
        ({"items": [1, 2, 3, 4]}, "too many items"),
    ],
)
async def test_bad_requests_are_refused_and_change_nothing(
    make_manager: ManagerFactory, kwargs: dict[str, Any], message: str
) -> None:
    manager = make_manager(max_items=3)
    items = kwargs.pop("items")
    with pytest.raises(InvalidRequest, match=message):
        create(manager, items, processor=SLEEP, **kwargs)
    assert manager.list_jobs() == ([], 0)
    assert manager.store.load_jobs() == []


async def test_allowed_processors_and_allow_callables_are_enforced(
    make_manager: ManagerFactory,
) -> None:
    manager = make_manager(allowed_processors=["batch_widget.processors:*"], allow_callables=False)
    with pytest.raises(PermissionDenied, match="allowed_processors"):
        create(manager, [1], processor="os:system")
    pickled = base64.b64encode(cloudpickle.dumps(lambda item: item)).decode()
    with pytest.raises(PermissionDenied, match="allow_callables"):
        create(manager, [1], callable_b64=pickled)
    assert manager.list_jobs()[1] == 0
    ok = create(manager, [1], processor=SLEEP, params={"seconds": 0})
    assert (await wait(manager, ok["id"]))["status"] == "completed"


async def test_cancel_mid_job_keeps_started_results_and_leaves_nothing_running(
    make_manager: ManagerFactory,
) -> None:
    manager = make_manager(max_workers=4)
    job = create(manager, list(range(60)), processor=SLEEP, params={"seconds": 0.1})
    await wait_until(lambda: manager.get(job["id"])["done"] >= 8)
    manager.cancel(job["id"])
    final = await wait(manager, job["id"])
    assert final["status"] == "cancelled"
    items, _ = manager.items(job["id"])
    statuses = [i["status"] for i in items]
    assert "running" not in statuses and "pending" not in statuses
    done = [i for i in items if i["status"] == "done"]
    assert len(done) == final["done"] >= 8
    assert all(i["result"] == i["input"] for i in done)  # started items finished and kept
    assert statuses.count("cancelled") == 60 - final["done"] - final["failed"] > 0
    with pytest.raises(JobStateConflict):
        manager.cancel(job["id"])


async def test_cancelling_a_queued_job_ends_it_at_once(make_manager: ManagerFactory) -> None:
    manager = make_manager(max_concurrent_jobs=1)
    first = create(manager, list(range(20)), processor=SLEEP, params={"seconds": 0.05})
    second = create(manager, [1, 2], processor=SLEEP)
    assert manager.get(second["id"])["status"] == "queued"  # waits for a slot
    cancelled = manager.cancel(second["id"])
    assert cancelled["status"] == "cancelled" and cancelled["finished_at"] is not None
    items, _ = manager.items(second["id"], status="cancelled")
    assert len(items) == 2
    manager.cancel(first["id"])
    await wait(manager, first["id"])


async def test_retry_finishes_failed_and_cancelled_items(
    make_manager: ManagerFactory, tmp_path: Path
) -> None:
    manager = make_manager(max_workers=2)
    params = {"marker_dir": str(tmp_path / "markers"), "seconds": 0.05}
    job = create(manager, list(range(30)), processor="sample_processors:flaky", params=params)
    await wait_until(lambda: manager.get(job["id"])["failed"] >= 4)
    manager.cancel(job["id"])
    stopped = await wait(manager, job["id"])
    assert stopped["status"] == "cancelled" and stopped["failed"] >= 4
    assert stopped["done"] == 0  # every first attempt fails

    with pytest.raises(JobStateConflict):
        manager.retry(create(manager, [1], processor=SLEEP, params={"seconds": 1})["id"])
    retried = manager.retry(job["id"])
    assert retried["status"] == "queued" and retried["failed"] == 0
    assert retried["version"] > stopped["version"]
    after_first_retry = await wait(manager, job["id"])
    # items that had failed now succeed; items that were cancelled fail once (first attempt)
    assert after_first_retry["done"] == stopped["failed"]
    final = manager.retry(job["id"])
    final = await wait(manager, job["id"])
    assert (final["status"], final["done"], final["failed"]) == ("completed", 30, 0)
    results = [i["result"]["item"] for i in manager.items(job["id"])[0]]
    assert results == list(range(30))
    with pytest.raises(JobStateConflict, match="nothing to retry"):
        manager.retry(job["id"])


async def test_delete_forgets_a_finished_job_and_refuses_an_active_one(
    make_manager: ManagerFactory,
) -> None:
    manager = make_manager()
    slow = create(manager, [1], processor=SLEEP, params={"seconds": 0.5})
    with pytest.raises(JobStateConflict):
        manager.delete(slow["id"])
    await wait(manager, slow["id"])
    manager.delete(slow["id"])
    with pytest.raises(JobNotFound):
        manager.get(slow["id"])
    with pytest.raises(JobNotFound):
        manager.items(slow["id"])
    assert manager.store.load_jobs() == []


async def test_list_jobs_is_newest_first_filtered_and_paged(make_manager: ManagerFactory) -> None:
    manager = make_manager()
    ids = [create(manager, [i], processor=SLEEP, params={"seconds": 0})["id"] for i in range(5)]
    for job_id in ids:
        await wait(manager, job_id)
    jobs, total = manager.list_jobs()
    assert total == 5 and [j["id"] for j in jobs] == ids[::-1]
    page, total = manager.list_jobs(limit=2, offset=1)
    assert total == 5 and [j["id"] for j in page] == ids[3:1:-1]
    assert manager.list_jobs(status="completed")[1] == 5
    assert manager.list_jobs(status="queued")[1] == 0
    with pytest.raises(InvalidRequest):
        manager.list_jobs(status="nonsense")


async def test_max_concurrent_jobs_keeps_the_rest_queued(make_manager: ManagerFactory) -> None:
    manager = make_manager(max_concurrent_jobs=2)
    jobs = [
        create(manager, list(range(4)), processor=SLEEP, params={"seconds": 0.1}) for _ in range(4)
    ]
    await wait_until(lambda: manager.get(jobs[0]["id"])["status"] == "processing")
    statuses = [manager.get(j["id"])["status"] for j in jobs]
    assert statuses.count("processing") <= 2
    assert manager.get(jobs[3]["id"])["status"] == "queued"
    for job in jobs:
        assert (await wait(manager, job["id"]))["status"] == "completed"


async def test_a_processor_that_vanishes_fails_the_job_not_the_server(
    make_manager: ManagerFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module_dir = tmp_path / "mods"
    module_dir.mkdir()
    (module_dir / "vanishing_mod.py").write_text("def run(item):\n    return item\n")
    monkeypatch.syspath_prepend(str(module_dir))
    manager = make_manager(start=False)
    job = create(manager, [1, 2], processor="vanishing_mod:run")
    (module_dir / "vanishing_mod.py").unlink()
    sys.modules.pop("vanishing_mod", None)
    manager.start()
    final = await wait(manager, job["id"])
    assert final["status"] == "failed"
    assert "cannot be imported" in (final["error"] or "")
    assert final["pending"] == 2


async def test_stop_interrupts_unfinished_jobs_and_a_new_manager_retries_them(
    make_manager: ManagerFactory,
) -> None:
    manager = make_manager(max_concurrent_jobs=1)
    running = create(manager, list(range(40)), processor=SLEEP, params={"seconds": 0.05})
    queued = create(manager, [1, 2], processor=SLEEP, params={"seconds": 0})
    await wait_until(lambda: manager.get(running["id"])["done"] >= 4)
    await asyncio.to_thread(manager.stop)
    stopped = manager.get(running["id"])
    assert stopped["status"] == "interrupted" and 4 <= stopped["done"] < 40
    assert manager.get(queued["id"])["status"] == "interrupted"
    items, _ = manager.items(running["id"])
    assert {i["status"] for i in items} <= {"done", "pending"}

    again = make_manager(resume_interrupted=True)
    for job_id in (running["id"], queued["id"]):
        final = await wait(again, job_id)
        assert final["status"] == "completed" and final["done"] == final["total"]
    assert [i["result"] for i in again.items(running["id"])[0]] == list(range(40))


async def test_progress_events_are_coalesced_per_interval(make_manager: ManagerFactory) -> None:
    recorder = Recorder()
    manager = make_manager(recorder, progress_interval=0.2, max_workers=4)
    started = time.monotonic()
    job = create(manager, list(range(2000)), processor=SLEEP, params={"seconds": 0.001})
    final = await wait(manager, job["id"])
    duration = time.monotonic() - started
    assert final["done"] == 2000
    progress = [s for s in recorder.of(job["id"]) if s["status"] != "completed"]
    assert len(progress) <= duration / 0.2 + 4, (len(progress), duration)
    assert len(progress) >= 3  # and progress was shown along the way
    assert recorder.of(job["id"])[-1]["status"] == "completed"


async def test_complete_still_arrives_when_two_broadcasts_raise(
    make_manager: ManagerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    recorder = Recorder(fail_terminal=2)
    manager = make_manager(recorder, broadcast_retry_delay=0.05, completion_broadcast_retries=3)
    job = create(manager, [1, 2], processor=SLEEP, params={"seconds": 0})
    await wait(manager, job["id"])
    await wait_until(lambda: any(s["status"] == "completed" for s in recorder.of(job["id"])))
    terminal_attempts = [s for s in recorder.attempts if s["status"] == "completed"]
    assert len(terminal_attempts) == 3
    assert recorder.of(job["id"])[-1]["status"] == "completed"
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert sum("retrying" in w for w in warnings) == 2


async def test_the_process_executor_runs_items_in_other_processes(
    make_manager: ManagerFactory,
) -> None:
    manager = make_manager()
    job = create(
        manager,
        list(range(8)),
        processor="sample_processors:pid_of_worker",
        executor="process",
        max_workers=2,
    )
    final = await wait(manager, job["id"], timeout=120)
    assert (final["status"], final["done"]) == ("completed", 8)
    pids = {i["result"] for i in manager.items(job["id"])[0]}
    assert pids and not pids & {__import__("os").getpid()}


async def test_a_notebook_function_runs_from_its_pickle(make_manager: ManagerFactory) -> None:
    namespace: dict[str, Any] = {}
    # a function defined outside any module, as in a notebook cell
    exec(
        textwrap.dedent("""
        offset = 100
        def add_offset(item, scale=1):
            return item * scale + offset
    """),
        namespace,
    )
    pickled = base64.b64encode(cloudpickle.dumps(namespace["add_offset"])).decode()
    manager = make_manager()
    for executor in ("thread", "process"):
        job = create(
            manager, [1, 2, 3], callable_b64=pickled, params={"scale": 2}, executor=executor
        )
        assert job["processor"] == "<add_offset>" and job["name"] == "add_offset"
        final = await wait(manager, job["id"], timeout=120)
        assert final["done"] == 3
        assert [i["result"] for i in manager.items(job["id"])[0]] == [102, 104, 106]
    with pytest.raises(InvalidRequest, match="base64"):
        create(manager, [1], callable_b64="not base64!!")


async def test_workers_run_at_lower_priority_than_the_server(
    make_manager: ManagerFactory,
) -> None:
    server_niceness = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    manager = make_manager()
    for executor in ("thread", "process"):
        job = create(manager, [1, 2], processor="sample_processors:niceness", executor=executor)
        await wait(manager, job["id"], timeout=120)
        results = {i["result"] for i in manager.items(job["id"])[0]}
        assert results == {min(server_niceness + 10, 19)}, executor
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == server_niceness


async def test_a_hung_item_is_named_in_a_warning(
    make_manager: ManagerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    manager = make_manager(stall_warning_after=0.3, max_workers=1)
    job = create(manager, ["quick", "hung"], processor=SLEEP, params={"seconds": 0.6})
    await wait(manager, job["id"])
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    stalls = [w for w in warnings if "no item has finished" in w]
    assert stalls, warnings
    assert f"job {job['id']}" in stalls[0]
    assert "starting at item index(es) 1." in stalls[-1]  # the item still running
    assert len(stalls) <= 4  # repeated every 0.3 s at most, not on every wait


class GatedStore(Store):
    """A real store whose item-wide writes wait for a gate: a stand-in for a slow disk."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.entered = threading.Event()
        self.gate = threading.Event()

    def finish_items(self, job: Any, status: Any) -> int:
        self.entered.set()
        assert self.gate.wait(30)
        return super().finish_items(job, status)


async def test_reads_do_not_wait_for_a_slow_state_change(tmp_path: Path) -> None:
    store = GatedStore(tmp_path / "jobs.sqlite")
    manager = JobManager(store, None)  # not started: the job stays queued
    job = create(manager, list(range(100)), processor=SLEEP)
    cancelling = asyncio.ensure_future(asyncio.to_thread(manager.cancel, job["id"]))
    assert await asyncio.to_thread(store.entered.wait, 10)
    # The cancel holds its write open; status reads and listings still answer.
    assert manager.get(job["id"])["status"] == "queued"
    assert manager.list_jobs()[1] == 1
    store.gate.set()
    cancelled = await cancelling
    assert cancelled["status"] == "cancelled"
    assert manager.get(job["id"]) == cancelled
    store.close()


def test_chunks_are_small_for_slow_items_and_large_for_fast_ones() -> None:
    sizer = ChunkSizer(target=0.05)
    assert sizer.size(undispatched=10_000, workers=4) == 1  # nothing measured yet
    sizer.observe([Outcome(ItemStatus.DONE, "1", None, None, 1.0, None, 1, 1, 0)])
    assert sizer.size(undispatched=10_000, workers=4) == 1
    fast = ChunkSizer(target=0.05)
    fast.observe(
        [Outcome(ItemStatus.DONE, "1", None, None, 0.00001, None, 1, 1, i) for i in range(100)]
    )
    assert fast.size(undispatched=100_000, workers=4) >= 1000
    assert fast.size(undispatched=400, workers=4) == 100  # the tail is shared fairly


async def test_a_retried_job_keeps_its_start_and_shows_no_rate_until_an_item_ends(
    make_manager: ManagerFactory,
) -> None:
    recorder = Recorder()
    manager = make_manager(recorder)
    params = {"seconds": 0.3, "fail": [1]}
    job = create(manager, [0, 1, 2], processor=SLEEP, params=params, max_workers=1)
    first = await wait(manager, job["id"])
    assert first["failed"] == 1 and first["started_at"] is not None
    manager.retry(job["id"])
    await wait(manager, job["id"])
    retried = [
        s for s in recorder.events if s["id"] == job["id"] and s["version"] > first["version"]
    ]
    processing = [s for s in retried if s["status"] == "processing"]
    assert processing, retried
    # elapsed time goes on from the first start; no "0.0 items/s" before an item of the run ends
    assert {s["started_at"] for s in retried} == {first["started_at"]}
    assert processing[0]["rate"] is None
    assert processing[0]["eta"] is None
