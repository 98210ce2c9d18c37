"""Warm process pools: a process job does not pay for starting Python.

A real ``jupyter server``, started through its console script as users start
it (``jupyter server``), so its ``__main__`` is the script that a plain
forkserver child would import again; real worker processes, found by their pids.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from _server import ServerHandle, build_server

import batch_widget.kernel.job as bw
from batch_widget.kernel import client as _client

pytestmark = pytest.mark.timeout(240)

IDLE_TIMEOUT = 3.0  # the server's process_idle_timeout in these tests
SLACK = 10.0  # s: two busy shared cores, on top of what the settings promise


def worker_facts(item: int) -> dict[str, object]:
    """Where an item ran, and what that process had imported."""
    return {
        "pid": os.getpid(),
        "jupyter_server": "jupyter_server" in sys.modules,
        "tornado": "tornado" in sys.modules,
    }


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerHandle]:
    handle = build_server(tmp_path_factory.mktemp("server"), process_idle_timeout=IDLE_TIMEOUT)
    script = Path(sys.executable).with_name("jupyter-server")
    assert script.is_file(), script
    assert handle.args[1:3] == ["-m", "jupyter_server"]
    handle = dataclasses.replace(handle, args=[sys.executable, str(script), *handle.args[3:]])
    handle.start()
    try:
        yield handle
    finally:
        handle.stop()


@pytest.fixture(autouse=True)
def connected(server: ServerHandle, monkeypatch: pytest.MonkeyPatch) -> ServerHandle:
    monkeypatch.setattr(_client._default, "client", None)
    bw.connect(server.url, server.token)
    return server


def run_facts(items: int = 8) -> list[dict[str, object]]:
    return bw.map(worker_facts, range(items), executor="process", max_workers=2)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def worker_pids(server: ServerHandle) -> set[int]:
    """The server's worker processes: the forkserver's children (the forkserver is
    the server's child that has children of its own)."""
    found: set[int] = set()
    for child in psutil.Process(server.pid).children():
        found |= {grandchild.pid for grandchild in child.children()}
    return found


def test_a_second_process_job_reuses_the_first_ones_workers(server: ServerHandle) -> None:
    first = {int(str(fact["pid"])) for fact in run_facts()}
    workers = worker_pids(server)
    second = {int(str(fact["pid"])) for fact in run_facts()}
    assert server.pid not in first | second, "an item ran in the server process"
    assert len(workers) == 2, f"a pool of 2 started {workers}"
    assert first <= workers and second <= workers, (first, second, workers)
    assert worker_pids(server) == workers, "the second job started new worker processes"


def test_workers_import_neither_the_server_nor_its_main_module() -> None:
    facts = run_facts()
    assert not any(fact["jupyter_server"] for fact in facts), facts
    assert not any(fact["tornado"] for fact in facts), facts


def test_idle_workers_end_after_process_idle_timeout() -> None:
    pids = {int(str(fact["pid"])) for fact in run_facts()}
    assert all(alive(pid) for pid in pids)
    deadline = time.monotonic() + IDLE_TIMEOUT + SLACK
    while any(alive(pid) for pid in pids):
        assert time.monotonic() < deadline, f"workers {pids} outlived process_idle_timeout"
        time.sleep(0.1)
    again = {fact["pid"] for fact in run_facts()}
    assert not again & pids, "a new job after the timeout runs on new workers"
