"""Broadcaster units: ids, coalescing per subscriber, catch-up, heartbeats, stalls."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import pytest

from batch_widget.protocol import Snapshot
from batch_widget.server.events import (
    Broadcaster,
    Event,
    format_event,
    format_heartbeat,
    format_retry,
)


def snap(job_id: str, status: str = "processing", version: int = 1, **extra: Any) -> Snapshot:
    """Return a job snapshot with the fields of SPEC §2."""
    done = extra.pop("done", 0)
    data: dict[str, Any] = {
        "id": job_id,
        "name": job_id,
        "processor": "batch_widget.processors:sleep",
        "status": status,
        "total": 10,
        "done": done,
        "failed": 0,
        "pending": 10 - done,
        "version": version,
        "created_at": "2024-01-01T00:00:00Z",
        "started_at": None,
        "finished_at": None,
        "rate": None,
        "eta": None,
        "error": None,
    }
    data.update(extra)
    return Snapshot(**data)  # type: ignore[typeddict-item]


def test_epoch_is_url_safe_and_ids_grow() -> None:
    b = Broadcaster()
    assert b.epoch
    assert "-" not in b.epoch
    assert b.epoch.isalnum()
    first = b.publish(snap("a"))
    second = b.publish(snap("b"))
    assert first == f"{b.epoch}-1"
    assert second == f"{b.epoch}-2"
    assert b.current_id == second
    assert Broadcaster().epoch != b.epoch


@pytest.mark.parametrize(
    ("status", "name"),
    [
        ("queued", "progress"),
        ("processing", "progress"),
        ("completed", "complete"),
        ("failed", "complete"),
        ("cancelled", "complete"),
        ("interrupted", "complete"),
    ],
)
def test_event_name_follows_terminal_status(status: str, name: str) -> None:
    b = Broadcaster()
    sub = b.subscribe(None)
    b.publish(snap("a", status))
    events, _ = sub.take()
    assert [e.name for e in events] == [name]


def test_slow_subscriber_keeps_only_newest_event_per_job() -> None:
    b = Broadcaster()
    sub = b.subscribe(None)
    for version in range(1, 1001):
        b.publish(snap("a", version=version, done=version % 10))
        b.publish(snap("b", version=version))
    assert sub.pending_count == 2
    events, heartbeat = sub.take()
    assert not heartbeat
    assert [(e.job_id, e.snapshot["version"]) for e in events] == [("a", 1000), ("b", 1000)]
    assert sub.take() == ([], False)


def test_filtered_subscriber_only_gets_its_jobs() -> None:
    b = Broadcaster()
    sub = b.subscribe({"a"})
    everyone = b.subscribe(None)
    b.publish(snap("a"))
    b.publish(snap("b"))
    assert [e.job_id for e in sub.take()[0]] == ["a"]
    assert [e.job_id for e in everyone.take()[0]] == ["a", "b"]


def test_changed_since_returns_newest_event_per_job_after_the_id() -> None:
    b = Broadcaster()
    b.publish(snap("a", version=1))
    cursor = b.publish(snap("b", version=1))
    b.publish(snap("a", version=2))
    b.publish(snap("a", version=3))
    b.publish(snap("c", version=1))
    changed = b.changed_since(cursor, None)
    assert changed is not None
    assert [(e.job_id, e.snapshot["version"]) for e in changed] == [("a", 3), ("c", 1)]
    assert [e.job_id for e in b.changed_since(cursor, {"c", "b"}) or []] == ["c"]
    assert b.changed_since(b.current_id, None) == []


@pytest.mark.parametrize(
    "last_id",
    [None, "", "garbage", "otherepoch-1", "-1", "{epoch}-x", "{epoch}-", "{epoch}-999"],
)
def test_changed_since_unknown_ids_ask_for_full_catch_up(last_id: str | None) -> None:
    b = Broadcaster()
    b.publish(snap("a"))
    if last_id is not None:
        last_id = last_id.replace("{epoch}", b.epoch)
    assert b.changed_since(last_id, None) is None


def test_changed_since_is_bounded_and_refuses_forgotten_ids() -> None:
    b = Broadcaster(max_tracked_jobs=3)
    early = b.publish(snap("a"))
    for name in "bcde":
        b.publish(snap(name))
    assert b.changed_since(early, None) is None  # "a" and "b" were evicted
    recent = f"{b.epoch}-3"
    assert [e.job_id for e in b.changed_since(recent, None) or []] == ["d", "e"]


def test_wire_format() -> None:
    assert format_retry(5000) == "retry: 5000\n\n"
    event = Event(id="e-1", seq=1, name="progress", snapshot=snap("a"))
    text = format_event(event.id, event.name, event.snapshot)
    lines = text.split("\n")
    assert lines[0] == "id: e-1"
    assert lines[1] == "event: progress"
    assert json.loads(lines[2].removeprefix("data: "))["id"] == "a"
    assert text.endswith("\n\n")
    beat = format_heartbeat("ep", now=12.5)
    assert beat == 'event: heartbeat\ndata: {"time":12.5,"epoch":"ep"}\n\n'


async def test_wait_wakes_on_publish_and_times_out_when_idle() -> None:
    b = Broadcaster()
    sub = b.subscribe(None)
    assert await sub.wait(timeout=0.05) is False
    waiter = asyncio.ensure_future(sub.wait(timeout=5))
    await asyncio.sleep(0.01)
    b.publish(snap("a"))
    assert await asyncio.wait_for(waiter, 1) is True
    assert len(sub.take()[0]) == 1


async def test_heartbeats_reach_subscribers_and_stop_cleanly() -> None:
    b = Broadcaster(heartbeat_interval=0.05, sse_timeout=5)
    sub = b.subscribe(None)
    b.start()
    b.start()  # idempotent
    try:
        assert await sub.wait(timeout=2) is True
        assert sub.take() == ([], True)
    finally:
        b.stop()
    assert not b.running
    assert sub.closed
    assert b.subscriber_count == 0


async def test_stalled_subscriber_is_dropped_with_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    b = Broadcaster(heartbeat_interval=10, sse_timeout=0.2, log=logging.getLogger("bw-test"))
    stalled = b.subscribe(None)
    healthy = b.subscribe(None)
    b.start()
    caplog.set_level(logging.DEBUG, logger="bw-test")
    try:
        deadline = time.monotonic() + 3
        while not stalled.closed and time.monotonic() < deadline:
            b.publish(snap("a"))
            healthy.take()  # this one keeps reading
            await asyncio.sleep(0.05)
    finally:
        b.stop()
    assert stalled.closed
    assert stalled.close_reason is not None
    assert "no data" in stalled.close_reason
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert any("dropping SSE subscriber" in r.getMessage() for r in warnings)
    assert healthy.close_reason == "server stopping"


def test_unsubscribe_is_idempotent_and_logged_at_debug(caplog: pytest.LogCaptureFixture) -> None:
    b = Broadcaster(log=logging.getLogger("bw-test"))
    caplog.set_level(logging.DEBUG, logger="bw-test")
    sub = b.subscribe({"a"})
    assert b.subscriber_count == 1
    b.unsubscribe(sub)
    b.unsubscribe(sub)
    assert b.subscriber_count == 0
    assert sub.closed
    b.publish(snap("a"))
    assert sub.pending_count == 0
    debug = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    assert sum("connected" in m and "disconnected" not in m for m in debug) == 1
    assert sum("disconnected" in m for m in debug) == 1


def test_invalid_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="positive"):
        Broadcaster(heartbeat_interval=0)
    with pytest.raises(ValueError, match="positive"):
        Broadcaster(sse_timeout=-1)
