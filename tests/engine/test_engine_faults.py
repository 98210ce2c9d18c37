"""Faults inside the engine (no server): every job still reaches a terminal state.

Each fault is real: a processor that calls ``sys.exit()``, a worker process that
dies by ``os._exit`` or a segfault, an item that never returns, store files made
immutable with ``chattr +i`` (root on ext4, as on the CI machines), a retry the
instant a job ends.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _engine import ManagerFactory, Recorder, create, make_manager, wait, wait_until

from batch_widget.engine.manager import JobManager
from batch_widget.engine.store import Store
from batch_widget.protocol import JobStateConflict

__all__ = ["make_manager"]  # the fixture, imported for pytest

SLEEP = "batch_widget.processors:sleep"
TERMINAL = {"completed", "failed", "cancelled", "interrupted"}


def ledger_counts(store_path: Path, job_key: int) -> dict[str, int]:
    """Item counts by status, read from the SQLite file with a connection of our own."""
    with sqlite3.connect(store_path) as conn:
        rows = conn.execute(
            "SELECT status, COUNT(*) FROM items WHERE job = ? GROUP BY status", (job_key,)
        ).fetchall()
    return dict(rows)


def job_key(manager: JobManager, job_id: str) -> int:
    return manager._entry(job_id).row.key


# -- 2. a processor that exits, in both executors -----------------------------------------


@pytest.mark.parametrize("executor", ["thread", "process"])
async def test_sys_exit_and_keyboard_interrupt_fail_only_their_items(
    make_manager: ManagerFactory, executor: str
) -> None:
    manager = make_manager()
    job = create(
        manager,
        list(range(10)),
        processor="sample_processors:exits",
        executor=executor,
        params={"exit_on": [3], "interrupt_on": [6]},
        max_workers=2,
    )
    final = await wait(manager, job["id"], timeout=60)

    assert (final["status"], final["done"], final["failed"]) == ("completed", 8, 2)
    failed, _ = manager.items(job["id"], status="failed")
    errors = {i["index"]: i["error"] for i in failed}
    assert errors == {3: "SystemExit: 2", 6: "KeyboardInterrupt: "}
    done, _ = manager.items(job["id"], status="done")
    assert [i["result"] for i in done] == [0, 1, 2, 4, 5, 7, 8, 9]


# -- 2. the store fails for a moment, or for good ------------------------------------------


@pytest.fixture
def immutable(tmp_path: Path) -> Iterator[Any]:
    """Return ``freeze(paths)`` / ``thaw()``: ``chattr +i`` on real files, undone at the end."""
    frozen: list[Path] = []

    def chattr(flag: str, paths: list[Path]) -> None:
        subprocess.run(["chattr", flag, *map(str, paths)], check=True, capture_output=True)

    class Immutable:
        @staticmethod
        def freeze(paths: list[Path]) -> None:
            present = [p for p in paths if p.exists()]
            chattr("+i", present)
            frozen.extend(present)

        @staticmethod
        def thaw() -> None:
            if frozen:
                chattr("-i", frozen)
                frozen.clear()

    yield Immutable
    Immutable.thaw()


def store_files(path: Path) -> list[Path]:
    return [path, Path(f"{path}-wal"), Path(f"{path}-shm")]


def written_files(path: Path) -> list[Path]:
    """The files a write changes: the store and its WAL.

    Not the ``-shm`` index: SQLite maps it into memory and grows it in place, and a
    mapping past the end of a file that could not grow is a SIGBUS, not an error.
    """
    return [path, Path(f"{path}-wal")]


async def test_a_store_unwritable_for_a_moment_loses_nothing(
    make_manager: ManagerFactory, immutable: Any, tmp_path: Path
) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    manager = make_manager(store_write_timeout=30)
    store_path = manager.store.path
    job = create(
        manager,
        list(range(60)),
        processor="sample_processors:once",
        params={"marker_dir": str(markers), "seconds": 0.02},
        max_workers=2,
    )
    await wait_until(lambda: manager.get(job["id"])["done"] >= 5)

    immutable.freeze(written_files(store_path))
    await asyncio.sleep(20 * manager.settings.progress_interval)  # the fault lasts 20 commit rounds
    during = manager.get(job["id"])
    immutable.thaw()
    final = await wait(manager, job["id"], timeout=60)

    assert during["status"] == "processing"
    assert (final["status"], final["done"], final["failed"]) == ("completed", 60, 0)
    assert ledger_counts(store_path, job_key(manager, job["id"])) == {"done": 60}
    runs = sorted(int(p.name.split(".")[0]) for p in markers.iterdir())
    assert runs == list(range(60)), "every item ran exactly once"


async def test_a_store_that_stays_unwritable_fails_the_job_and_retry_finishes_it(
    make_manager: ManagerFactory, immutable: Any
) -> None:
    recorder = Recorder()
    manager = make_manager(recorder, store_write_timeout=0.5)
    store_path = manager.store.path
    job = create(manager, list(range(40)), processor=SLEEP, params={"seconds": 0.05}, max_workers=2)
    await wait_until(lambda: manager.get(job["id"])["done"] >= 2)

    immutable.freeze(written_files(store_path))
    failed = await wait(manager, job["id"], timeout=30)
    immutable.thaw()

    assert failed["status"] == "failed"
    assert str(store_path) in failed["error"] and "cannot be written" in failed["error"]
    assert recorder.of(job["id"])[-1] == failed  # the browser hears of it too
    retried = manager.retry(job["id"])
    assert retried["status"] == "queued"
    final = await wait(manager, job["id"], timeout=60)
    assert (final["status"], final["done"], final["failed"]) == ("completed", 40, 0)
    assert ledger_counts(store_path, job_key(manager, job["id"])) == {"done": 40}


# -- 3. a retry the instant a job ends --------------------------------------------------------


class SlowLogHandler(logging.Handler):
    """A log handler that takes its time over job ends, as one writing to a busy disk does.

    It widens the moment between a job's end becoming visible and its thread
    finishing, where a retry used to start a run that the old thread then orphaned.
    """

    def handle(self, record: logging.LogRecord) -> bool:
        if any(f" {end}: " in record.getMessage() for end in TERMINAL):
            time.sleep(0.05)  # before taking the handler's lock, which other logging waits on
        return super().handle(record)

    def emit(self, record: logging.LogRecord) -> None:
        pass


async def test_retry_and_cancel_the_instant_a_job_ends_never_strand_a_run(
    make_manager: ManagerFactory,
) -> None:
    log = logging.getLogger("test_engine_faults.slow")
    log.addHandler(SlowLogHandler())
    log.propagate = False
    log.setLevel(logging.INFO)
    manager = make_manager(max_concurrent_jobs=2, log=log)
    jobs = [
        create(
            manager,
            [0, 1, 2],
            processor="sample_processors:sleep_then_fail",
            params={"seconds": 0.2, "fail": [0]},
        )
        for _ in range(3)
    ]
    most_processing = 0
    stop_sampling = threading.Event()

    def sample() -> None:
        nonlocal most_processing
        while not stop_sampling.is_set():
            processing = manager.list_jobs(status="processing")[1]
            most_processing = max(most_processing, processing)

    sampler = threading.Thread(target=sample)
    sampler.start()

    def hammer(job_id: str, rounds: int) -> list[str]:
        outcomes = []
        for _ in range(rounds):
            manager.wait(job_id, timeout=30)
            manager.retry(job_id)  # the moment the end is visible
            time.sleep(0.1)  # while the retried item runs
            try:
                manager.cancel(job_id)
                outcomes.append("cancelled")
            except JobStateConflict:
                outcomes.append("already over")
        return outcomes

    try:
        results = await asyncio.gather(*(asyncio.to_thread(hammer, job["id"], 10) for job in jobs))
    finally:
        stop_sampling.set()
        sampler.join()

    assert all(len(r) == 10 for r in results)
    finals = [await wait(manager, job["id"], timeout=30) for job in jobs]
    assert {f["status"] for f in finals} <= {"completed", "cancelled"}
    assert most_processing <= 2
    # Nothing is left running: the runs all ended, so stop() returns at once.
    started = time.monotonic()
    await asyncio.to_thread(manager.stop)
    assert time.monotonic() - started < manager.settings.cancel_timeout
    assert not [t for t in threading.enumerate() if t.name.startswith("batch-job-")]


# -- 5. resuming interrupted jobs, each on its own ----------------------------------------------


async def finished_job_left(make_manager: ManagerFactory, tmp_path: Path, status: str) -> str:
    """Run a job to its end, stop, and leave it in ``status`` in the store, as a crash
    between the last commit and the end would; return its id."""
    first = make_manager()
    job_id: str = create(first, [1, 2], processor=SLEEP, params={"seconds": 0})["id"]
    await wait(first, job_id)
    await asyncio.to_thread(first.stop)
    first.store.close()
    with sqlite3.connect(tmp_path / "jobs.sqlite") as conn:
        conn.execute("UPDATE jobs SET status = ? WHERE id = ?", (status, job_id))
    return job_id


async def test_resume_interrupted_resumes_each_job_on_its_own(
    make_manager: ManagerFactory, tmp_path: Path
) -> None:
    # The crash window: every item done, the job's end never written.
    finished_job = await finished_job_left(make_manager, tmp_path, "interrupted")
    then = make_manager(start=False)  # a server stopped before these two could start
    forbidden_job = create(then, [1, 2], processor="sample_processors:square")
    plain_job = create(then, [1, 2, 3], processor=SLEEP, params={"seconds": 0})
    await asyncio.to_thread(then.stop)
    then.store.close()
    for job in (forbidden_job, plain_job):
        assert then.get(job["id"])["status"] == "interrupted"

    second = make_manager(resume_interrupted=True, allowed_processors=["batch_widget.*"])

    assert (await wait(second, finished_job))["status"] == "completed"
    assert (await wait(second, plain_job["id"]))["status"] == "completed"
    assert second.get(forbidden_job["id"])["status"] == "interrupted"  # stranded no other


async def test_a_server_that_died_after_the_last_item_leaves_the_job_completed(
    make_manager: ManagerFactory, tmp_path: Path
) -> None:
    job_id = await finished_job_left(make_manager, tmp_path, "processing")  # died before its end

    second = make_manager()

    assert second.get(job_id)["status"] == "completed"
    with pytest.raises(JobStateConflict, match="nothing to retry"):
        second.retry(job_id)


# -- 6. a worker process that dies --------------------------------------------------------------


@pytest.mark.parametrize("how", ["exit", "segfault"])
async def test_a_crashing_worker_process_fails_only_its_item(
    make_manager: ManagerFactory, how: str
) -> None:
    manager = make_manager()
    job = create(
        manager,
        list(range(60)),
        processor="sample_processors:crash",
        executor="process",
        max_workers=2,
        params={"on": [7, 41], "how": how, "seconds": 0.005},
    )
    final = await wait(manager, job["id"], timeout=120)

    assert (final["status"], final["done"], final["failed"]) == ("completed", 58, 2)
    failed, _ = manager.items(job["id"], status="failed")
    assert [i["index"] for i in failed] == [7, 41]
    assert all("worker process running this item died" in (i["error"] or "") for i in failed)
    done, _ = manager.items(job["id"], status="done")
    assert [i["result"] for i in done] == [i for i in range(60) if i not in (7, 41)]


# -- 7. an item that never returns ------------------------------------------------------------


@pytest.mark.parametrize("executor", ["thread", "process"])
async def test_cancelling_a_hung_job_frees_its_slot_after_cancel_timeout(
    make_manager: ManagerFactory, executor: str, tmp_path: Path
) -> None:
    pids = tmp_path / "pids"
    pids.mkdir()
    manager = make_manager(max_concurrent_jobs=1, cancel_timeout=1.0)
    release = tmp_path / "release"
    hung = create(
        manager,
        [0, 1],
        processor="sample_processors:hang",
        executor=executor,
        params={"on": [0], "pid_dir": str(pids), "release": str(release)},
        max_workers=1,
    )
    behind = create(manager, [1, 2, 3], processor=SLEEP, params={"seconds": 0.01})
    await wait_until((pids / "0.pid").exists, timeout=60)
    assert manager.get(behind["id"])["status"] == "queued"

    cancelled_at = time.monotonic()
    manager.cancel(hung["id"])
    final = await wait(manager, hung["id"], timeout=30)
    ended_after = time.monotonic() - cancelled_at

    assert final["status"] == "cancelled"
    assert manager.settings.cancel_timeout <= ended_after < manager.settings.cancel_timeout + 10
    items = {i["index"]: i["status"] for i in manager.items(hung["id"])[0]}
    assert items == {0: "cancelled", 1: "cancelled"}
    assert (await wait(manager, behind["id"], timeout=30))["status"] == "completed"
    if executor == "process":  # the stuck worker process was ended, not left behind
        pid = int((pids / "0.pid").read_text())
        await wait_until(lambda: not _alive(pid), timeout=10)
    else:  # the abandoned thread is still stuck, until the processor returns
        stuck = f"batch-worker-{job_key(manager, hung['id'])}-"
        assert [t for t in threading.enumerate() if t.name.startswith(stuck)]
        release.touch()
        await wait_until(lambda: not [t for t in threading.enumerate() if t.name.startswith(stuck)])


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


# -- the store file deleted while a job runs --------------------------------------------------


async def test_a_deleted_store_fails_the_job_loudly_and_is_never_recreated(
    make_manager: ManagerFactory,
) -> None:
    recorder = Recorder()
    manager = make_manager(recorder)
    store_path = manager.store.path
    job = create(
        manager, list(range(200)), processor=SLEEP, params={"seconds": 0.02}, max_workers=2
    )
    await wait_until(lambda: manager.get(job["id"])["done"] >= 2)

    for path in store_files(store_path):
        path.unlink(missing_ok=True)
    final = await wait(manager, job["id"], timeout=30)

    assert final["status"] == "failed"
    assert "was deleted" in final["error"] and str(store_path) in final["error"]
    with pytest.raises(Exception, match="was deleted") as refused:
        create(manager, [1], processor=SLEEP)
    assert getattr(refused.value, "status_code", None) == 503
    with pytest.raises(Exception, match="was deleted"):
        await asyncio.to_thread(manager.items, job["id"])
    assert not store_path.exists(), "a new, empty store appeared in place of the deleted one"


def test_a_store_opened_on_a_missing_file_after_deletion_refuses_readers(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite")
    store.path.unlink()
    with pytest.raises(Exception, match="was deleted"):
        store.load_jobs()
    assert not store.path.exists()
    store.close()
