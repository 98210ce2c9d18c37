"""The SSE stream of SPEC §4 over real sockets.

``jp_fetch`` buffers whole responses, so these tests speak HTTP/1.1 on a raw
socket, decode the chunked body and parse the event stream as a browser would.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from dataclasses import dataclass
from typing import Any

import pytest
from _helpers import Api, eventually

from batch_widget.server.app import BatchWidgetApp


@dataclass
class Message:
    """One parsed SSE message."""

    id: str | None
    event: str | None
    data: str | None
    retry: int | None

    def json(self) -> Any:
        """The decoded ``data:`` payload."""
        assert self.data is not None
        return json.loads(self.data)


def parse_message(block: str) -> Message:
    """Parse the lines of one SSE message."""
    fields: dict[str, str] = {}
    for line in block.split("\n"):
        name, _, value = line.partition(":")
        fields[name] = value.removeprefix(" ")
    retry = fields.get("retry")
    return Message(
        id=fields.get("id"),
        event=fields.get("event"),
        data=fields.get("data"),
        retry=int(retry) if retry is not None else None,
    )


class SSEClient:
    """A streaming HTTP/1.1 client for ``api/batch/events``."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.status = 0
        self.headers: dict[str, str] = {}
        self._text = ""
        self._chunked = False
        self.ended = False

    @classmethod
    async def open(cls, port: int, path: str, headers: dict[str, str] | None = None) -> SSEClient:
        """Connect, send the request and read the response head."""
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        client = cls(reader, writer)
        lines = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Accept: text/event-stream"]
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        client.status = int(status_line.split()[1])
        for line in header_lines:
            if line:
                name, _, value = line.partition(":")
                client.headers[name.strip().lower()] = value.strip()
        client._chunked = client.headers.get("transfer-encoding") == "chunked"
        return client

    async def _read_more(self) -> bool:
        if self._chunked:
            size = int((await self.reader.readuntil(b"\r\n")).strip(), 16)
            data = await self.reader.readexactly(size + 2)
            if size == 0:
                return False
            self._text += data[:-2].decode()
            return True
        data = await self.reader.read(65536)
        self._text += data.decode()
        return bool(data)

    async def next_message(self, timeout: float = 10) -> Message | None:
        """Return the next message, or None when the stream ends."""
        deadline = time.monotonic() + timeout
        while "\n\n" not in self._text:
            if self.ended:
                return None
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no SSE message in time")
            try:
                more = await asyncio.wait_for(self._read_more(), remaining)
            except asyncio.IncompleteReadError:
                more = False
            if not more:
                self.ended = True
        block, _, self._text = self._text.partition("\n\n")
        return parse_message(block)

    async def until_complete(self, job_id: str, timeout: float = 30) -> list[Message]:
        """Read job events until the ``complete`` event of ``job_id``; return them all."""
        deadline = time.monotonic() + timeout
        seen: list[Message] = []
        while True:
            message = await self.next_message(deadline - time.monotonic())
            assert message is not None, "the stream ended before the complete event"
            if message.event in {"progress", "complete"}:
                seen.append(message)
                if message.event == "complete" and message.json()["id"] == job_id:
                    return seen

    def close(self) -> None:
        """Drop the connection, as a closing browser tab does."""
        self.writer.close()


@pytest.fixture
def open_stream(
    jp_http_port: int, jp_base_url: str, server_token: str, batch_app: BatchWidgetApp
) -> Any:
    """Return ``open(query="", headers=None)`` opening authenticated streams; closes them."""
    clients: list[SSEClient] = []

    async def open_(query: str = "", headers: dict[str, str] | None = None) -> SSEClient:
        path = f"{jp_base_url}api/batch/events" + (f"?{query}" if query else "")
        auth = {"Authorization": f"token {server_token}", **(headers or {})}
        client = await SSEClient.open(jp_http_port, path, auth)
        clients.append(client)
        return client

    yield open_
    for client in clients:
        client.close()


def broadcaster_of(app: BatchWidgetApp) -> Any:
    """The running broadcaster."""
    assert app.broadcaster is not None
    return app.broadcaster


@pytest.mark.batch_config(heartbeat_interval=0.2, reconnect_delay=1234)
async def test_stream_opens_with_headers_retry_and_heartbeats(
    api: Api, open_stream: Any, batch_app: BatchWidgetApp, jp_serverapp: Any
) -> None:
    settings = jp_serverapp.web_app.settings
    activity = settings.get("api_last_activity")
    stream = await open_stream()
    assert stream.status == 200
    assert stream.headers["content-type"].startswith("text/event-stream")
    assert stream.headers["cache-control"] == "no-cache"
    assert stream.headers["x-accel-buffering"] == "no"
    first = await stream.next_message()
    assert first is not None
    assert first.retry == 1234
    beats = [await stream.next_message(2) for _ in range(2)]
    for beat in beats:
        assert beat is not None
        assert beat.event == "heartbeat"
        assert beat.id is None
        payload = beat.json()
        assert payload["epoch"] == broadcaster_of(batch_app).epoch
        assert abs(payload["time"] - time.time()) < 5
    stream.close()
    await eventually(lambda: broadcaster_of(batch_app).subscriber_count == 0)
    assert settings.get("api_last_activity") == activity  # watching is not activity


async def test_job_events_carry_ids_snapshots_and_end_with_complete(
    api: Api, open_stream: Any, batch_app: BatchWidgetApp
) -> None:
    stream = await open_stream()
    assert (await stream.next_message()) is not None  # retry:
    job = await api.create(list(range(20)), params={"seconds": 0.01}, max_workers=2)
    events = await stream.until_complete(job["id"])
    epoch = broadcaster_of(batch_app).epoch
    seqs = []
    for event in events:
        assert event.id is not None
        match = re.fullmatch(rf"{re.escape(epoch)}-(\d+)", event.id)
        assert match, event.id
        seqs.append(int(match.group(1)))
    assert seqs == sorted(seqs)
    assert len(set(seqs)) == len(seqs)
    ours = [e.json() for e in events if e.json()["id"] == job["id"]]
    assert [s["version"] for s in ours] == sorted({s["version"] for s in ours})
    assert all(e.event == "progress" for e in events[:-1])
    final = events[-1].json()
    assert final["status"] == "completed"
    assert (final["done"], final["failed"], final["pending"]) == (20, 0, 0)
    assert final == await api.get(job["id"])


@pytest.mark.batch_config(progress_interval=0.2)
async def test_progress_is_coalesced_per_progress_interval(api: Api, open_stream: Any) -> None:
    stream = await open_stream()
    await stream.next_message()
    # ~1 s of work: long enough for several intervals, short enough for CI.
    job = await api.create(list(range(2000)), params={"seconds": 0.002}, max_workers=4)
    started = time.monotonic()
    events = await stream.until_complete(job["id"], timeout=60)
    duration = time.monotonic() - started
    progress = [e for e in events if e.event == "progress" and e.json()["id"] == job["id"]]
    # queued + processing + one per interval (+1 for a partial last interval)
    assert len(progress) <= duration / 0.2 + 4, (len(progress), duration)
    assert len(progress) >= 4, "progress was not streamed while the job ran"
    assert events[-1].json()["done"] == 2000


async def test_filtered_stream_only_carries_its_jobs(api: Api, open_stream: Any) -> None:
    other = await api.create([1, 2, 3], params={"seconds": 0.2})
    job = await api.create([1, 2, 3], params={"seconds": 0.01})
    stream = await open_stream(f"job={job['id']}")
    events = await stream.until_complete(job["id"])
    assert {e.json()["id"] for e in events} == {job["id"]}
    await api.wait(other["id"])


async def test_reconnect_with_last_event_id_gets_the_newest_state_at_once(
    api: Api, open_stream: Any, batch_app: BatchWidgetApp
) -> None:
    stream = await open_stream()
    await stream.next_message()
    job = await api.create(list(range(40)), params={"seconds": 0.02}, max_workers=2)
    first = await stream.next_message()
    assert first is not None
    assert first.id is not None
    stream.close()  # the network drops; the job goes on
    final = await api.wait(job["id"])

    for headers, query in [({"Last-Event-ID": first.id}, ""), ({}, f"last_event_id={first.id}")]:
        again = await open_stream(query, headers)
        assert (await again.next_message()) is not None  # retry:
        caught_up = await again.next_message(timeout=2)
        assert caught_up is not None
        assert caught_up.event == "complete"
        assert caught_up.json() == final
        again.close()

    # An id from another epoch (a restarted server) gets the filtered job's current state.
    foreign = await open_stream(f"job={job['id']}", {"Last-Event-ID": "oldepoch-7"})
    await foreign.next_message()
    snapshot = await foreign.next_message(timeout=2)
    assert snapshot is not None
    assert snapshot.event == "complete"
    assert snapshot.json() == final
    assert snapshot.id == broadcaster_of(batch_app).current_id


async def test_connecting_without_an_id_sends_every_active_job(api: Api, open_stream: Any) -> None:
    job = await api.create(list(range(10)), params={"seconds": 0.1}, max_workers=1)
    stream = await open_stream()
    await stream.next_message()
    current = await stream.next_message(timeout=2)
    assert current is not None
    assert current.event == "progress"
    assert current.json()["id"] == job["id"]
    await api.call("POST", "jobs", job["id"], "cancel")
    events = await stream.until_complete(job["id"])
    assert events[-1].json()["status"] == "cancelled"


async def test_fifty_subscribers_all_receive_complete_then_leave(
    api: Api, open_stream: Any, batch_app: BatchWidgetApp
) -> None:
    streams = [await open_stream() for _ in range(50)]
    await eventually(lambda: broadcaster_of(batch_app).subscriber_count == 50)
    job = await api.create(list(range(200)), params={"seconds": 0.001})
    results = await asyncio.gather(*(s.until_complete(job["id"]) for s in streams))
    assert all(r[-1].json()["status"] == "completed" for r in results)
    for stream in streams:
        stream.close()
    await eventually(lambda: broadcaster_of(batch_app).subscriber_count == 0)


async def test_a_client_that_disconnects_while_idle_is_unsubscribed(
    api: Api, open_stream: Any, batch_app: BatchWidgetApp
) -> None:
    stream = await open_stream()
    await stream.next_message()
    assert broadcaster_of(batch_app).subscriber_count == 1
    stream.close()
    await eventually(lambda: broadcaster_of(batch_app).subscriber_count == 0, timeout=5)


async def test_stopping_the_extension_ends_open_streams(
    api: Api, open_stream: Any, batch_app: BatchWidgetApp
) -> None:
    stream = await open_stream()
    await stream.next_message()
    broadcaster = broadcaster_of(batch_app)
    await batch_app.stop_extension()
    assert not broadcaster.running
    assert await stream.next_message(timeout=5) is None  # the response ended cleanly
    assert broadcaster.subscriber_count == 0


async def test_deleting_a_job_tells_its_subscribers_with_a_deleted_event(
    api: Api, open_stream: Any, batch_app: BatchWidgetApp
) -> None:
    job = await api.create([1, 2], params={"seconds": 0})
    final = await api.wait(job["id"])
    before = broadcaster_of(batch_app).current_id
    stream = await open_stream(f"job={job['id']}")
    await stream.next_message()  # retry:
    code, _, _ = await api.call("DELETE", "jobs", job["id"])
    assert code == 204
    deadline = time.monotonic() + 10
    while True:  # the catch-up `complete` may come first
        message = await stream.next_message(deadline - time.monotonic())
        assert message is not None
        if message.event == "deleted":
            break
        assert message.event in {"complete", "heartbeat"}, message
    farewell = message.json()
    assert farewell["id"] == job["id"]
    assert farewell["status"] == "deleted"
    assert farewell["version"] == final["version"] + 1
    assert (farewell["done"], farewell["total"]) == (2, 2)

    # A browser that was away when it happened learns it when it reconnects.
    again = await open_stream("", {"Last-Event-ID": before})
    await again.next_message()
    missed = await again.next_message(timeout=2)
    assert missed is not None
    assert (missed.event, missed.json()["id"]) == ("deleted", job["id"])
