"""Faults injected through configuration (SPEC §4, §5, §9), observed over real sockets.

The doubles in ``fault_doubles`` are named by dotted path in
``c.BatchWidgetApp.broadcaster_class`` / ``manager_class`` (the ``batch_config``
marker), exactly as a deployment's ``jupyter_server_config.py`` would: nothing is
monkeypatched. Streams are read with the raw-socket SSE client of ``test_sse``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
from _helpers import Api, eventually
from fault_doubles import (
    FailEveryComplete,
    FailFirstTwoCompletes,
    RecordingBroadcaster,
    RecordingJobManager,
)
from test_sse import Message, SSEClient

from batch_widget.server.app import BatchWidgetApp

#: The longest job name the API accepts: big snapshots fill socket buffers fast.
LONG_NAME = "n" * 200

RETRIES = 3
RETRY_DELAY = 0.1


class _Records(logging.Handler):
    """Keep every record the server's logger emits."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def messages(self, level: int, containing: str = "") -> list[str]:
        """Messages logged at exactly ``level`` that contain ``containing``."""
        return [
            r.getMessage()
            for r in self.records
            if r.levelno == level and containing in r.getMessage()
        ]


@pytest.fixture
def server_log(batch_app: BatchWidgetApp) -> Iterator[_Records]:
    """Records of the Jupyter server's logger, where batch_widget logs (SPEC §9).

    Under pytest-jupyter that logger is ``ServerApp`` (level DEBUG, no handler of
    its own, propagating), so ``caplog`` would see it too; a handler on the logger
    itself does not depend on propagation.
    """
    log = batch_app.server_log
    assert log.isEnabledFor(logging.WARNING)
    handler = _Records()
    log.addHandler(handler)
    yield handler
    log.removeHandler(handler)


@pytest.fixture
def open_stream(
    jp_http_port: int, jp_base_url: str, server_token: str, batch_app: BatchWidgetApp
) -> Any:
    """Return ``open(query="")`` opening authenticated SSE streams; closes them after."""
    clients: list[SSEClient] = []

    async def open_(query: str = "") -> SSEClient:
        path = f"{jp_base_url}api/batch/events" + (f"?{query}" if query else "")
        client = await SSEClient.open(
            jp_http_port, path, {"Authorization": f"token {server_token}"}
        )
        clients.append(client)
        first = await client.next_message()
        assert first is not None
        assert first.retry is not None  # the stream is open and past its retry: line
        return client

    yield open_
    for client in clients:
        client.close()


async def read_for(stream: SSEClient, seconds: float) -> list[Message]:
    """Every message the stream delivers in the next ``seconds``."""
    deadline = time.monotonic() + seconds
    messages: list[Message] = []
    while (remaining := deadline - time.monotonic()) > 0:
        try:
            message = await stream.next_message(remaining)
        except TimeoutError:
            break
        assert message is not None, "the stream ended"
        messages.append(message)
    return messages


# -- 1. a failing complete broadcast ----------------------------------------------------


@pytest.mark.batch_config(
    broadcaster_class="fault_doubles.FailFirstTwoCompletes",
    completion_broadcast_retries=RETRIES,
    broadcast_retry_delay=RETRY_DELAY,
)
async def test_complete_arrives_when_the_first_two_broadcasts_fail(
    api: Api, open_stream: Any, batch_app: BatchWidgetApp, server_log: _Records
) -> None:
    broadcaster = batch_app.broadcaster
    assert type(broadcaster) is FailFirstTwoCompletes  # the dotted name reached the app
    stream = await open_stream()
    job = await api.create(list(range(5)), params={"seconds": 0.01}, name="flaky complete")

    events = await stream.until_complete(job["id"], timeout=15)

    final = events[-1]
    assert final.event == "complete"
    assert final.json()["status"] == "completed"
    assert final.json() == await api.get(job["id"])
    assert [e.event for e in events if e.json()["id"] == job["id"]].count("complete") == 1
    # Two failures, then the third attempt went out, broadcast_retry_delay apart.
    assert broadcaster.attempts_for(job["id"]) == [True, True, False]
    times = broadcaster.attempt_times(job["id"])
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(gap >= RETRY_DELAY * 0.9 for gap in gaps), gaps
    retrying = server_log.messages(logging.WARNING, f"job {job['id']} failed (attempt")
    assert len(retrying) == 2, retrying
    assert f"attempt 1 of {RETRIES + 1}" in retrying[0]
    assert f"attempt 2 of {RETRIES + 1}" in retrying[1]
    assert all("InjectedFault" in line and "retrying" in line for line in retrying)
    assert not server_log.messages(logging.WARNING, "giving up")
    # The stream outlived the failures: the next job's complete arrives normally.
    second = await api.create([1], params={"seconds": 0.01})
    events = await stream.until_complete(second["id"], timeout=15)
    assert events[-1].json()["status"] == "completed"
    assert broadcaster.attempts_for(second["id"]) == [False]


@pytest.mark.batch_config(
    broadcaster_class="fault_doubles.FailEveryComplete",
    completion_broadcast_retries=RETRIES,
    broadcast_retry_delay=RETRY_DELAY,
    heartbeat_interval=0.2,
)
async def test_when_every_complete_broadcast_fails_polling_still_sees_the_end(
    api: Api, open_stream: Any, batch_app: BatchWidgetApp, server_log: _Records
) -> None:
    broadcaster = batch_app.broadcaster
    assert type(broadcaster) is FailEveryComplete
    stream = await open_stream()
    job = await api.create(list(range(5)), params={"seconds": 0.01}, name="lost complete")

    # Read until the manager gave up (1 attempt + RETRIES retries), then a while longer.
    messages: list[Message] = []
    deadline = time.monotonic() + 15
    while len(broadcaster.attempts_for(job["id"])) < RETRIES + 1:
        assert time.monotonic() < deadline, broadcaster.complete_attempts
        messages += await read_for(stream, 0.2)
    tail = await read_for(stream, 1.0)  # > any retry delay, several heartbeats
    messages += tail

    ours = [m for m in messages if m.event in {"progress", "complete"}]
    assert ours, "no progress event reached the stream"
    assert all(m.json()["id"] == job["id"] for m in ours)
    assert [m.event for m in ours if m.event == "complete"] == []
    assert ours[-1].json()["status"] in {"queued", "processing"}  # what the client last saw
    # The stream is alive, not wedged: heartbeats kept coming after the last attempt.
    assert sum(m.event == "heartbeat" for m in tail) >= 2, tail
    # Retries are bounded by configuration, not endless.
    assert broadcaster.attempts_for(job["id"]) == [True] * (RETRIES + 1)

    # The client's poll path reports the terminal state the stream never carried.
    polled = await api.get(job["id"])
    assert polled["status"] == "completed"
    assert (polled["done"], polled["failed"], polled["pending"]) == (5, 0, 0)
    assert polled["version"] > ours[-1].json()["version"]
    # So does a fresh stream for the job (catch-up comes from the manager's state).
    fresh = await open_stream(f"job={job['id']}")
    caught_up = await fresh.next_message(timeout=5)
    assert caught_up is not None
    assert caught_up.event == "complete"
    assert caught_up.json() == polled

    retrying = server_log.messages(logging.WARNING, f"job {job['id']} failed (attempt")
    assert [f"attempt {n} of {RETRIES + 1}" in line for n, line in enumerate(retrying, 1)] == [
        True
    ] * RETRIES, retrying
    gave_up = server_log.messages(logging.WARNING, "giving up")
    assert len(gave_up) == 1, gave_up
    assert job["id"] in gave_up[0]
    assert "InjectedFault" in gave_up[0]
    assert "polling" in gave_up[0]


# -- 2. a stalled subscriber ---------------------------------------------------------------


async def open_stalled_socket(port: int, path: str, token: str) -> socket.socket:
    """Send an SSE request on a socket that will never be read (until the test drains it).

    Both options must be set before ``connect``. ``SO_RCVBUF`` keeps the client's
    window small. ``TCP_MAXSEG`` matters more: on loopback (MTU 64 KiB) the kernel
    sizes the *server's* send buffer from the MSS at connection set-up, to about
    4 MB, which hides a stalled reader for minutes; a 536-byte MSS keeps that
    buffer near 180 kB.
    """
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 536)
    sock.setblocking(False)
    await loop.sock_connect(sock, ("127.0.0.1", port))
    request = (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: text/event-stream\r\n"
        f"Authorization: token {token}\r\n\r\n"
    )
    await loop.sock_sendall(sock, request.encode())
    return sock


@pytest.fixture
def open_stalled(
    jp_http_port: int, jp_base_url: str, server_token: str, batch_app: BatchWidgetApp
) -> Any:
    """Return ``open()`` opening a stalled SSE client socket; closes them after."""
    socks: list[socket.socket] = []

    async def open_() -> socket.socket:
        path = f"{jp_base_url}api/batch/events"
        sock = await open_stalled_socket(jp_http_port, path, server_token)
        socks.append(sock)
        return sock

    yield open_
    for sock in socks:
        sock.close()


async def drain_until_eof(sock: socket.socket, timeout: float) -> int:
    """Read ``sock`` until the server closes it; return the bytes read."""
    loop = asyncio.get_running_loop()
    deadline = time.monotonic() + timeout
    total = 0
    while True:
        remaining = deadline - time.monotonic()
        try:
            data = await asyncio.wait_for(loop.sock_recv(sock, 65536), max(remaining, 0))
        except ConnectionResetError:
            return total
        except TimeoutError:
            pytest.fail(f"the server kept the stalled connection open ({total} bytes read)")
        if not data:
            return total
        total += len(data)


@pytest.mark.skipif(not hasattr(socket, "TCP_MAXSEG"), reason="needs TCP_MAXSEG (Linux)")
@pytest.mark.batch_config(
    broadcaster_class="fault_doubles.RecordingBroadcaster",
    sse_timeout=1,
    progress_interval=0.01,
    max_concurrent_jobs=4,
)
async def test_a_stalled_subscriber_is_dropped_while_a_live_one_keeps_streaming(
    api: Api,
    open_stream: Any,
    batch_app: BatchWidgetApp,
    open_stalled: Any,
    server_log: _Records,
) -> None:
    broadcaster = batch_app.broadcaster
    assert type(broadcaster) is RecordingBroadcaster
    good = await open_stream()
    await eventually(lambda: broadcaster.subscriber_count == 1)
    stalled_sock = await open_stalled()
    await eventually(lambda: broadcaster.subscriber_count == 2)
    live, stalled = broadcaster.subscribers_seen

    received: list[Message] = []

    async def read_good() -> None:
        while (message := await good.next_message(timeout=60)) is not None:
            received.append(message)

    reader = asyncio.create_task(read_good())
    try:
        jobs: list[str] = []
        started = time.monotonic()
        # Feed events (about 570 bytes each) until the stalled stream is dropped.
        while not stalled.closed:
            assert time.monotonic() - started < 30, "the stalled subscriber was never dropped"
            assert not reader.done(), "the live stream ended"
            if len(jobs) - len(completes(received)) < 8:
                job = await api.create(
                    list(range(200)), params={"seconds": 0.005}, max_workers=2, name=LONG_NAME
                )
                jobs.append(job["id"])
            await asyncio.sleep(0.1)
        dropped_after = time.monotonic() - started

        assert not live.closed
        assert broadcaster.subscriber_count == 1
        assert "took" in (stalled.close_reason or "")
        dropped = server_log.messages(logging.WARNING, f"dropping SSE subscriber {stalled!r}")
        assert len(dropped) == 1, server_log.messages(logging.WARNING)
        assert "took" in dropped[0]

        # The live subscriber keeps going: a job created after the drop reaches it too.
        after = await api.create([1, 2], params={"seconds": 0.01}, name=LONG_NAME)
        jobs.append(after["id"])
        await eventually(lambda: set(jobs) <= set(completes(received)), timeout=30)
        final = completes(received)
        for job_id in jobs:
            assert final[job_id] == await api.get(job_id)
            assert final[job_id]["status"] == "completed"
        assert broadcaster.subscriber_count == 1
        assert not live.closed

        # The server hung up on the stalled client (it did not just forget it).
        unread = await drain_until_eof(stalled_sock, timeout=10)
        assert unread > 0
        assert not [r for r in server_log.records if r.levelno >= logging.ERROR]
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, OSError):
            await reader
    good.close()
    await eventually(lambda: broadcaster.subscriber_count == 0)
    print(f"stalled subscriber dropped after {dropped_after:.1f} s, {len(jobs)} jobs")


def completes(messages: list[Message]) -> dict[str, Any]:
    """The snapshot of each ``complete`` event, by job id."""
    return {m.json()["id"]: m.json() for m in messages if m.event == "complete"}


# -- 3. manager_class ----------------------------------------------------------------------


@pytest.mark.batch_config(
    manager_class="fault_doubles.RecordingJobManager", completion_broadcast_retries=5
)
async def test_a_configured_manager_class_serves_the_api(
    api: Api, batch_app: BatchWidgetApp, jp_serverapp: Any
) -> None:
    manager = batch_app.require_manager()
    assert type(manager) is RecordingJobManager
    assert manager is batch_app.manager
    assert manager.broadcaster is batch_app.broadcaster
    assert manager.settings.completion_broadcast_retries == 5
    assert batch_app.config_summary()["manager_class"] == "fault_doubles.RecordingJobManager"
    job = await api.create([1, 2, 3], params={"seconds": 0.01})
    assert manager.created == [job["id"]]
    assert (await api.wait(job["id"]))["status"] == "completed"
