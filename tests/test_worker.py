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
    job = await api.create(list(range(40)), processor=SPIN, params={"seconds": 0.05})
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
    sleepy = await api.create(list(range(40)), processor=SLEEP, params={"seconds": 0.05})
    hashing = await api.create([str(data)] * 100, processor=CHECKSUM)  # hashlib frees the GIL
    spinning = await api.create(list(range(40)), processor=SPIN, params={"seconds": 0.05},
                                executor="process")
    for job in (sleepy, hashing, spinning):
        assert (await api.wait(job["id"]))["status"] == "completed"
    assert server_log.messages(logging.WARNING, ADVICE) == []
