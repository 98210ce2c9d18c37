"""What the workers check on every chunk, seen through a real server (pytest-jupyter).

- A thread-pool job whose processor keeps the CPU busy in Python holds the GIL
  and slows every request of the server: the log says so once, naming
  ``executor="process"``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
from _helpers import SLEEP, Api
from test_faults import _Records, server_log

__all__ = ["server_log"]  # a fixture, imported for the tests below

SPIN = "sample_processors:spin"
CHECKSUM = "batch_widget.processors:checksum"
ADVICE = 'executor="process"'


@pytest.mark.batch_config(max_workers=4)
async def test_a_cpu_bound_job_on_threads_is_named_once_in_the_log(
    api: Api, server_log: _Records
) -> None:
    # 3 s of CPU: the probe starts after 1 s and has the rest of the job to measure in
    job = await api.create(list(range(60)), processor=SPIN, params={"seconds": 0.05})
    assert (await api.wait(job["id"]))["status"] == "completed"
    warnings = server_log.messages(logging.WARNING, ADVICE)
    assert len(warnings) == 1, server_log.messages(logging.WARNING)
    assert job["id"] in warnings[0] and "GIL" in warnings[0]


@pytest.mark.batch_config(max_workers=4)
async def test_io_bound_gil_releasing_and_process_jobs_draw_no_such_warning(
    api: Api, server_log: _Records, tmp_path: Path
) -> None:
    data = tmp_path / "data.bin"
    data.write_bytes(os.urandom(8 * 1024 * 1024))
    # One job at a time: the process job's two busy workers on these two cores would make
    # the hashing threads wait for a CPU while one of them holds the GIL, which the probe
    # (rightly) counts as a held GIL: that is the CPU's doing, not the job's.
    jobs = [
        (list(range(40)), {"processor": SLEEP, "params": {"seconds": 0.05}}),
        ([str(data)] * 100, {"processor": CHECKSUM}),  # hashlib frees the GIL
        (list(range(40)), {"processor": SPIN, "params": {"seconds": 0.05}, "executor": "process"}),
    ]
    for items, fields in jobs:
        job = await api.create(items, **fields)
        assert (await api.wait(job["id"]))["status"] == "completed"
    assert server_log.messages(logging.WARNING, ADVICE) == []


# --------------------------------------------------------------------------- result size

SIZED = "sample_processors:sized_result"
MiB = 1024 * 1024


async def test_a_result_over_max_result_bytes_fails_only_its_item(api: Api) -> None:
    job = await api.create([10, 17 * MiB, 20], processor=SIZED)  # the default cap: 16 MiB
    final = await api.wait(job["id"])
    assert (final["status"], final["done"], final["failed"]) == ("completed", 2, 1)
    code, answer, _ = await api.call("GET", "jobs", job["id"], "items")
    assert code == 200
    items = answer["items"]
    assert [i["status"] for i in items] == ["done", "failed", "done"]
    assert items[0]["result"] == "r" * 10 and items[1]["result"] is None
    error = items[1]["error"]
    assert "17.0 MiB" in error and "max_result_bytes" in error and '"outputs"' in error, error


@pytest.mark.batch_config(max_result_bytes=1000)
async def test_max_result_bytes_reaches_process_workers(api: Api) -> None:
    job = await api.create([998, 999], processor=SIZED, executor="process")
    final = await api.wait(job["id"])
    assert (final["done"], final["failed"]) == (1, 1)
    _, answer, _ = await api.call("GET", "jobs", job["id"], "items")
    assert [i["status"] for i in answer["items"]] == ["done", "failed"]
    assert "max_result_bytes (1000 bytes)" in answer["items"][1]["error"]
