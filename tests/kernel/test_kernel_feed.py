"""The kernel transport's kernel side (SPEC §12): a displayed widget's job, followed
by the kernel into ``kernel_snapshot``; Cancel, Retry and refresh from the browser.

A real Jupyter server, real jobs, the real ``BatchProgress``; the browser's
custom messages go through ipywidgets' own dispatch (``_handle_custom_msg``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from _server import ServerHandle, running_server

from batch_widget.kernel.client import Client
from batch_widget.kernel.widget import BatchProgress

pytestmark = pytest.mark.timeout(120)

SLEEP = "batch_widget.processors:sleep"
#: Seconds a job of these tests may take on two busy shared cores.
WITHIN = 60.0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerHandle]:
    with running_server(tmp_path_factory.mktemp("server")) as handle:
        yield handle


@pytest.fixture
def client(server: ServerHandle) -> Client:
    return Client(server.url, server.token)


def eventually(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WITHIN
    while not check():
        assert time.monotonic() < deadline, f"not within {WITHIN} s: {what}"
        time.sleep(0.02)


def shown(client: Client, job_id: str, **traits: Any) -> tuple[BatchProgress, list[dict[str, Any]]]:
    """Display a widget for the job (which starts the kernel's feed) and record what it sets."""
    widget = BatchProgress(job_id, client=client, **traits)
    seen: list[dict[str, Any]] = []
    widget.observe(lambda change: seen.append(change["new"]), "kernel_snapshot")
    widget._repr_mimebundle_()
    return widget, seen


def status_of(widget: BatchProgress) -> str:
    return str(widget.kernel_snapshot.get("status", ""))


def test_the_kernel_follows_a_displayed_job_to_its_end(client: Client) -> None:
    job = client.create(
        {
            "processor": SLEEP,
            "items": list(range(20)),
            "params": {"seconds": 0.05, "fail": [3]},
            "max_workers": 2,
        }
    )
    widget, seen = shown(client, job["id"])

    eventually(lambda: status_of(widget) == "completed", "the widget's job completed")

    final = widget.kernel_snapshot
    assert (final["done"], final["failed"], final["total"]) == (19, 1, 20)
    versions = [snapshot["version"] for snapshot in seen]
    assert versions == sorted(set(versions)), "only newer snapshots, never one twice"
    assert len(seen) >= 3, "progress on the way, not just the end"
    [failure] = widget.kernel_extras["failed_items"]["items"]
    assert (failure["index"], failure["error"]) == (3, "ValueError: item 3 was asked to fail")
    widget.close()


def test_cancel_and_retry_from_the_browser_act_on_the_job(client: Client) -> None:
    job = client.create(
        {"processor": SLEEP, "items": list(range(40)), "params": {"seconds": 0.2}, "max_workers": 2}
    )
    widget, _ = shown(client, job["id"])
    eventually(lambda: widget.kernel_snapshot.get("done", 0) >= 2, "items done")

    widget._handle_custom_msg({"type": "cancel"}, [])
    eventually(lambda: status_of(widget) == "cancelled", "the widget shows the cancel")
    assert client.get(job["id"])["status"] == "cancelled"

    widget._handle_custom_msg({"type": "retry"}, [])
    eventually(lambda: status_of(widget) == "completed", "the retried job completed")
    assert widget.kernel_snapshot["done"] == 40
    widget.close()


def test_a_deleted_job_reads_deleted_and_refresh_says_so_again(client: Client) -> None:
    job = client.create({"processor": SLEEP, "items": [1], "params": {"seconds": 0}})
    widget, _ = shown(client, job["id"])
    eventually(lambda: status_of(widget) == "completed", "completed")

    client.delete(job["id"])
    widget._handle_custom_msg({"type": "refresh"}, [])
    eventually(lambda: status_of(widget) == "deleted", "the widget reads deleted")
    assert widget.kernel_snapshot["id"] == job["id"]
    widget.close()


def test_with_the_server_transport_the_kernel_does_not_follow(client: Client) -> None:
    job = client.create({"processor": SLEEP, "items": [1, 2], "params": {"seconds": 0}})
    widget, seen = shown(client, job["id"], transport="server")
    eventually(lambda: client.get(job["id"])["status"] == "completed", "completed")
    assert widget._feed is None, "displaying started no feed"
    assert seen == [] and widget.kernel_snapshot == {}
    widget.close()
