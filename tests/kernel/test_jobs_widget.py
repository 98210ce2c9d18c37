"""``bw.jobs()`` / ``bw.JobsView`` on the kernel side (SPEC §13): a widget that is
also the list of jobs it was made with, its text and HTML forms outside a widget
front end, bad settings refused, and the kernel transport's refresh, Cancel and
Retry, sent through ipywidgets' own custom-message dispatch to a real server.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import traitlets
from _server import ServerHandle, running_server

import batch_widget
from batch_widget.kernel.client import Client
from batch_widget.kernel.jobsview import JobsView

pytestmark = pytest.mark.timeout(120)

SLEEP = "batch_widget.processors:sleep"
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerHandle]:
    with running_server(tmp_path_factory.mktemp("server")) as handle:
        yield handle


@pytest.fixture
def client(server: ServerHandle) -> Client:
    return Client(server.url, server.token)


def settled(client: Client, job_id: str, status: str) -> dict[str, object]:
    deadline = time.monotonic() + 60
    while (snap := client.get(job_id))["status"] != status:
        assert time.monotonic() < deadline, snap
        time.sleep(0.05)
    return snap


def finished(client: Client, name: str, items: int = 2) -> dict[str, object]:
    job = client.create(
        {"processor": SLEEP, "items": list(range(items)), "name": name, "params": {"seconds": 0}}
    )
    return settled(client, str(job["id"]), "completed")


def test_it_is_a_widget_and_the_list_of_jobs_newest_first(client: Client) -> None:
    first = finished(client, "first <b>")
    second = finished(client, "second")
    view = JobsView(limit=2, client=client)
    assert [snap["id"] for snap in view] == [second["id"], first["id"]]
    assert len(view) == 2 and view[0]["id"] == second["id"]
    assert view.total >= 2 and view.jobs.total == view.total
    assert view.shown == 0, "what the browser shows is the browser's to say"

    bundle = view._repr_mimebundle_()
    data = bundle[0] if isinstance(bundle, tuple) else bundle
    assert WIDGET_MIME in data
    assert "first &lt;b&gt;" in data["text/html"] and "<table" in data["text/html"]
    assert data["text/plain"].startswith(f"JobsView: 2 of {view.total} jobs")
    assert f"{first['id']}  completed   2/0/2" in data["text/plain"]
    assert view.kernel_jobs["total"] == view.total, "ready for a browser that asks the kernel"
    view.close()


def test_status_and_limit_filter_and_bad_values_are_refused(client: Client) -> None:
    finished(client, "done one")
    view = JobsView(status="completed", limit=1, client=client)
    assert len(view) == 1 and view[0]["status"] == "completed"
    assert view.status_filter == "completed"
    view.close()
    with pytest.raises(traitlets.TraitError, match="status must be one of"):
        JobsView(status="done", client=client)
    with pytest.raises(traitlets.TraitError, match="limit must be between 1 and 1000"):
        JobsView(limit=0, client=client)
    with pytest.raises(traitlets.TraitError, match="watchdog_timeout must be a positive"):
        JobsView(watchdog_timeout=0, client=client)


def test_the_kernel_transport_refreshes_cancels_and_retries(client: Client) -> None:
    view = JobsView(client=client)
    job = client.create(
        {
            "processor": SLEEP,
            "items": list(range(40)),
            "name": "via kernel",
            "params": {"seconds": 0.2},
            "max_workers": 1,
        }
    )
    before = view.kernel_jobs["version"]
    view._handle_custom_msg({"type": "refresh"}, [])
    assert view.kernel_jobs["version"] > before
    assert view.kernel_jobs["jobs"][0]["id"] == job["id"], "the new job on top"

    view._handle_custom_msg({"type": "cancel", "job_id": job["id"]}, [])
    settled(client, job["id"], "cancelled")  # the running item finishes first
    view._handle_custom_msg({"type": "refresh"}, [])
    [row] = [snap for snap in view.kernel_jobs["jobs"] if snap["id"] == job["id"]]
    assert row["status"] == "cancelled" and row["done"] < 40

    # A refused action says why in the page the browser shows; nothing else changes.
    view._handle_custom_msg({"type": "cancel", "job_id": job["id"]}, [])
    assert "already" in view.kernel_jobs["error"]
    assert client.get(job["id"])["status"] == "cancelled"

    view._handle_custom_msg({"type": "retry", "job_id": job["id"]}, [])
    assert client.get(job["id"])["status"] in {"queued", "processing"}
    assert "error" not in view.kernel_jobs
    client.cancel(job["id"])
    view.close()


def test_bw_jobs_returns_the_view_with_its_traits(
    client: Client, server: ServerHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BATCH_WIDGET_URL", server.url)
    monkeypatch.setenv("BATCH_WIDGET_TOKEN", server.token)
    finished(client, "listed")
    view = batch_widget.jobs(limit=5, watchdog_timeout=3000, transport="server")
    assert isinstance(view, batch_widget.JobsView)
    assert (view.limit, view.watchdog_timeout, view.transport) == (5, 3000, "server")
    assert view.kernel_jobs == {}, "transport='server': the kernel sends no page"
    assert "listed" in [snap["name"] for snap in view]
    view.close()
