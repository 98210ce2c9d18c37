"""Faults a real ``jupyter server`` process meets: a second server on its store, SIGTERM
and SIGKILL with items that never return, its store file deleted under it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from _helpers import SLEEP, TERMINAL
from _server import ServerHandle, build_server

from batch_widget.server.app import TAKEOVER_INTERVAL

TESTS_DIR = Path(__file__).resolve().parents[1]  # tests/, where sample_processors lives


@contextlib.contextmanager
def server_at(tmp_path: Path, **traits: Any) -> Iterator[ServerHandle]:
    """A real server that can import ``sample_processors``; stopped at the end."""
    server = build_server(tmp_path, **traits)
    server.env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(TESTS_DIR), server.env.get("PYTHONPATH")])
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


def ledger(server: ServerHandle, job_id: str) -> dict[str, int]:
    """Item counts by status, from the job's item records."""
    counts: dict[str, int] = {}
    items = server.api("GET", f"api/batch/jobs/{job_id}/items?limit=10000")["items"]
    for item in items:
        counts[item["status"]] = counts.get(item["status"], 0) + 1
    return counts


def wait_for_file(path: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


# -- 4. two servers, one store ----------------------------------------------------------


def test_a_second_server_on_the_same_store_waits_and_takes_over_when_the_first_stops(
    tmp_path: Path,
) -> None:
    shared = f"sqlite:///{tmp_path / 'shared.sqlite'}"
    markers = tmp_path / "markers"
    markers.mkdir()
    gate = tmp_path / "gate"  # the first 10 items end at once; the rest once the test says
    gate.write_text("10", encoding="utf-8")
    with server_at(tmp_path / "a", db_url=shared) as first:
        code, job = first.call(
            "POST",
            "api/batch/jobs",
            {
                "processor": "sample_processors:once",
                "items": list(range(300)),
                "params": {"marker_dir": str(markers), "seconds": 0.02, "gate": str(gate)},
                "max_workers": 2,
            },
        )
        assert code == 201, job
        first.wait_for_job(job["id"], lambda s: s["done"] >= 10)

        with server_at(tmp_path / "b", db_url=shared) as second:
            code, answer = second.call("GET", "api/batch/jobs")
            assert code == 503
            assert "in use by another Jupyter server" in answer["message"]
            assert f"pid {first.pid}" in answer["message"]
            assert "db_url" in answer["message"]  # says how to run both
            for method, path in [
                ("POST", f"api/batch/jobs/{job['id']}/retry"),
                ("POST", f"api/batch/jobs/{job['id']}/cancel"),
                ("POST", "api/batch/jobs"),
            ]:
                assert second.call(method, path, {})[0] == 503, path
            assert "in use by another Jupyter server" in second.log()

            assert first.api("GET", f"api/batch/jobs/{job['id']}")["status"] == "processing"
            gate.write_text("300", encoding="utf-8")
            final = first.wait_for_job(job["id"], lambda s: s["status"] in TERMINAL)
            assert (final["status"], final["done"], final["failed"]) == ("completed", 300, 0)
            assert ledger(first, job["id"]) == {"done": 300}
            runs = sorted(int(p.name.split(".")[0]) for p in markers.iterdir())
            assert runs == list(range(300)), "every item ran exactly once"

            first.stop()
            deadline = time.monotonic() + TAKEOVER_INTERVAL + 10
            while (answer := second.call("GET", "api/batch/jobs"))[0] != 200:
                assert time.monotonic() < deadline, answer
                time.sleep(0.2)
            assert [j["id"] for j in answer[1]["jobs"]] == [job["id"]]
            assert answer[1]["jobs"][0]["status"] == "completed"
            assert "took over the job store" in second.log()


# -- 7. SIGTERM and SIGKILL with items that never return --------------------------------


@pytest.mark.parametrize("executor", ["thread", "process"])
def test_sigterm_with_a_hung_item_stops_the_server_and_leaves_no_process(
    tmp_path: Path, executor: str
) -> None:
    pids = tmp_path / "pids"
    pids.mkdir()
    with server_at(tmp_path, cancel_timeout=1) as server:
        code, job = server.call(
            "POST",
            "api/batch/jobs",
            {
                "processor": "sample_processors:hang",
                "items": [0, 1, 2, 3],
                "params": {"on": [0, 1], "pid_dir": str(pids)},
                "max_workers": 2,
                "executor": executor,
            },
        )
        assert code == 201, job
        wait_for_file(pids / "0.pid")
        wait_for_file(pids / "1.pid")
        family = psutil.Process(server.pid).children(recursive=True)
        process = server.process
        assert process is not None

        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=1 + 20)  # cancel_timeout, then a clean shutdown
        except subprocess.TimeoutExpired:
            pytest.fail("the server was still running 21 s after SIGTERM")
        _, alive = psutil.wait_procs(family, timeout=10)
        for leftover in alive:
            leftover.kill()
        assert not alive, f"processes outlived the server: {alive}"
        assert "batch_widget] stopped" in server.log()
        assert "still running 1.0 s after the server shutdown" in server.log()

        server.restart()  # the same store: the job is interrupted, nothing left running
        snapshot = server.api("GET", f"api/batch/jobs/{job['id']}")
        assert snapshot["status"] == "interrupted"
        assert "running" not in ledger(server, job["id"])


def test_sigkill_leaves_no_worker_process_behind(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    pids.mkdir()
    with server_at(tmp_path) as server:
        code, job = server.call(
            "POST",
            "api/batch/jobs",
            {
                "processor": "sample_processors:hang",
                "items": [0, 1, 2, 3],
                "params": {"on": [0, 1], "pid_dir": str(pids)},
                "max_workers": 2,
                "executor": "process",
            },
        )
        assert code == 201, job
        wait_for_file(pids / "0.pid")
        wait_for_file(pids / "1.pid")
        family = psutil.Process(server.pid).children(recursive=True)
        workers = {int((pids / f"{i}.pid").read_text()) for i in (0, 1)}
        assert workers <= {p.pid for p in family}

        server.kill()
        _, alive = psutil.wait_procs(family, timeout=10)
        for leftover in alive:
            leftover.kill()
        assert not alive, f"processes outlived the killed server: {alive}"


# -- the store file deleted under a running server ---------------------------------------


def test_a_deleted_store_answers_503_and_says_so_in_the_log(tmp_path: Path) -> None:
    with server_at(tmp_path) as server:
        code, job = server.call(
            "POST",
            "api/batch/jobs",
            {"processor": SLEEP, "items": list(range(200)), "params": {"seconds": 0.02}},
        )
        assert code == 201, job
        server.wait_for_job(job["id"], lambda s: s["done"] >= 2)

        for suffix in ("", "-wal", "-shm"):
            Path(f"{server.db_path}{suffix}").unlink(missing_ok=True)
        final = server.wait_for_job(job["id"], lambda s: s["status"] in TERMINAL, timeout=30)
        assert final["status"] == "failed"
        assert "was deleted" in final["error"]

        for method, path in [
            ("GET", f"api/batch/jobs/{job['id']}/items"),
            ("GET", f"api/batch/jobs/{job['id']}/outputs"),
            ("POST", "api/batch/jobs"),
        ]:
            body = {"processor": SLEEP, "items": [1]} if method == "POST" else None
            code, answer = server.call(method, path, body)
            assert code == 503, (path, code, answer)
            assert "was deleted" in answer["message"]
            assert "Restart the Jupyter server" in answer["message"]
        assert not server.db_path.exists(), "an empty store was created in its place"
        errors = [
            line
            for line in server.log().splitlines()
            if "was deleted" in line and line.startswith("[E")
        ]
        assert errors, server.log()[-3000:]
