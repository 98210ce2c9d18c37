"""The scenarios of the Error Recovery Matrix, in a real JupyterLab and Chromium (issue 6).

Each test breaks something between the browser and Jupyter through the
:class:`FaultProxy`, then asserts what a user sees: the widget root's data
attributes, the connection states it passed through (recorded by a
MutationObserver) and exact final counts. Time bounds derive from the short
widget settings in ``_lab`` (1 s reconnect, 1 s watchdog interval, 3 s
watchdog timeout) plus ``SLACK`` for two busy shared cores.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from _lab import RECONNECT_DELAY, WATCHDOG_INTERVAL, WATCHDOG_TIMEOUT, LabHandle, widget_cell
from _page import (
    add_and_run_cell,
    attrs,
    connections,
    event_sources,
    open_warm_notebook,
    recorded,
    run_all_cells,
    save_notebook,
    show_cells,
    wait_for,
    wait_for_status,
)
from _proxy import FaultProxy

pytestmark = pytest.mark.e2e

SLACK = 2.0
BACK_LIVE_WITHIN = RECONNECT_DELAY / 1000 + SLACK
SILENCE_NOTICED_WITHIN = (WATCHDOG_TIMEOUT + WATCHDOG_INTERVAL) / 1000 + SLACK


def start_job(
    lab: LabHandle,
    n: int,
    *,
    seconds: float = 0.2,
    fail: list[int] | None = None,
    name: str = "scenario",
) -> dict[str, Any]:
    """A job of ``n`` items, one worker: about ``n * seconds`` long."""
    return lab.create_job(range(n), seconds=seconds, fail=fail or [], name=name, max_workers=1)


def show_job(
    page: Any,
    lab: LabHandle,
    proxy: FaultProxy,
    notebook_name: str,
    n: int,
    *,
    fail: list[int],
    wait_live: bool = True,
) -> dict[str, Any]:
    """Open a notebook through the proxy, start an ``n``-item job, show its widget.

    With ``wait_live``, return once the widget is live and shows progress.
    """
    open_warm_notebook(page, lab, notebook_name, via=proxy.url)
    job = start_job(lab, n, fail=fail)
    show_cells(page, [widget_cell(job["id"])])
    if wait_live:
        wait_live_with_progress(page)
    return job


def wait_live_with_progress(page: Any, index: int = 0, done: int = 2, timeout: float = 60) -> None:
    """Wait until widget ``index`` is live and shows at least ``done`` items finished."""
    root = page.locator(".bw-progress").nth(index)
    root.and_(page.locator(".bw-progress[data-connection=live]")).wait_for(timeout=timeout * 1000)
    wait_for(lambda: attrs(page, index)["done"] >= done, timeout, what=f"{done} items done")


def first_after(
    page: Any, since_ms: float, predicate: Any, widget: int = 0
) -> dict[str, Any] | None:
    """The first recorded change of ``widget`` at or after ``since_ms`` matching ``predicate``."""
    for entry in recorded(page, widget):
        if entry["t"] >= since_ms and predicate(entry):
            return entry
    return None


def assert_final(
    page: Any,
    lab: LabHandle,
    job_id: str,
    *,
    done: int,
    failed: int,
    index: int = 0,
    timeout: float = 60,
) -> dict[str, Any]:
    """The widget ends ``completed`` with exactly the server's counts and version."""
    shown = wait_for_status(page, "completed", index=index, timeout=timeout)
    server = lab.job(job_id)
    assert (shown["done"], shown["failed"], shown["total"]) == (done, failed, done + failed)
    assert (server["done"], server["failed"]) == (done, failed)
    assert shown["version"] == server["version"]
    return shown


def now_ms() -> float:
    return time.time() * 1000


# -- the scenarios ----------------------------------------------------------------------


def test_normal_operation_updates_live_over_sse(
    page: Any, lab: LabHandle, proxy: FaultProxy, notebook_name: str
) -> None:
    job = show_job(page, lab, proxy, notebook_name, 20, fail=[5], wait_live=False)

    assert_final(page, lab, job["id"], done=19, failed=1)

    states = connections(page)
    assert "live" in states
    assert not {"reconnecting", "polling"} & set(states), states
    versions = {entry["version"] for entry in recorded(page, 0) if entry["status"] == "processing"}
    assert len(versions) >= 5, f"too few live updates: {sorted(versions)}"
    assert proxy.open_sse() == 1


def test_brief_network_glitch_reconnects(
    page: Any, lab: LabHandle, proxy: FaultProxy, notebook_name: str
) -> None:
    job = show_job(page, lab, proxy, notebook_name, 40, fail=[30])

    cut_at = now_ms()
    proxy.cut(1.5)
    cut_end = cut_at + 1500
    back = wait_for(
        lambda: first_after(page, cut_end, lambda e: e["connection"] == "live"),
        BACK_LIVE_WITHIN + 1.5,
        what="live again",
    )

    assert (back["t"] - cut_end) / 1000 <= BACK_LIVE_WITHIN
    states = connections(page, since=cut_at)
    assert states[0] == "reconnecting" and states[-1] == "live", states
    assert "polling" not in states, "a 1.5 s glitch is shorter than the watchdog timeout"
    assert_final(page, lab, job["id"], done=39, failed=1)


def test_extended_disconnect_polls_then_goes_live(
    page: Any, lab: LabHandle, proxy: FaultProxy, notebook_name: str
) -> None:
    job = show_job(page, lab, proxy, notebook_name, 60, fail=[2])

    cut_at = now_ms()
    cut_seconds = WATCHDOG_TIMEOUT / 1000 + 3
    proxy.cut(cut_seconds)
    cut_end = cut_at + cut_seconds * 1000
    back = wait_for(
        lambda: first_after(page, cut_end, lambda e: e["connection"] == "live"),
        cut_seconds + BACK_LIVE_WITHIN + 1,
        what="live again",
    )

    assert (back["t"] - cut_end) / 1000 <= BACK_LIVE_WITHIN
    states = connections(page, since=cut_at)
    assert states[:3] == ["reconnecting", "polling", "live"], states
    polling = first_after(page, cut_at, lambda e: e["connection"] == "polling")
    assert polling is not None
    assert (polling["t"] - cut_at) / 1000 <= SILENCE_NOTICED_WITHIN
    # Back live, the catch-up poll makes the view current at once.
    server_done = lab.job(job["id"])["done"]
    wait_for(lambda: attrs(page)["done"] >= server_done, SLACK, what="caught up after the cut")
    assert_final(page, lab, job["id"], done=59, failed=1)


def test_sse_completely_dead_completes_by_polling(
    page: Any, lab: LabHandle, proxy: FaultProxy, notebook_name: str
) -> None:
    proxy.kill_sse()
    job = show_job(page, lab, proxy, notebook_name, 30, fail=[7, 8], wait_live=False)

    assert_final(page, lab, job["id"], done=28, failed=2)

    states = connections(page)
    assert "live" not in states, states
    assert "polling" in states, states
    progress = {e["done"] for e in recorded(page, 0) if e["status"] == "processing"}
    assert len(progress) >= 3, f"polling should keep the bar moving: {sorted(progress)}"
    assert proxy.sse_opened >= 1 and proxy.open_sse() == 0


@pytest.mark.parametrize(
    "heartbeats",
    [False, True],
    ids=["stream-mute", "job-events-lost"],
)
def test_silent_broadcaster_is_noticed_by_the_watchdog(
    page: Any, lab: LabHandle, proxy: FaultProxy, notebook_name: str, heartbeats: bool
) -> None:
    """The stream stays open but job events stop (with or without heartbeats)."""
    job = show_job(page, lab, proxy, notebook_name, 60, fail=[40])

    silenced_at = now_ms()
    proxy.silence_sse(heartbeats=heartbeats)
    time.sleep(0.3)  # bytes already on their way still land
    version = attrs(page)["version"]
    moved = wait_for(
        lambda: first_after(page, silenced_at + 300, lambda e: e["version"] > version),
        SILENCE_NOTICED_WITHIN + 1,
        what="a poll after the broadcaster went silent",
    )

    assert (moved["t"] - silenced_at) / 1000 <= SILENCE_NOTICED_WITHIN
    assert_final(page, lab, job["id"], done=59, failed=1)
    assert proxy.open_sse() >= 1
    if heartbeats:
        # The stream itself is healthy: no reconnect, the watchdog alone keeps the view current.
        assert connections(page, since=silenced_at) == ["live"]


def test_page_reload_mid_job_comes_back_current(
    page: Any, lab: LabHandle, proxy: FaultProxy, notebook_name: str
) -> None:
    page.on("dialog", lambda dialog: dialog.accept())
    job = show_job(page, lab, proxy, notebook_name, 50, fail=[45])
    save_notebook(page)

    page.reload(wait_until="domcontentloaded")
    root = page.locator(".bw-progress")
    try:
        root.first.wait_for(timeout=20_000)
        how = "restored from the kernel"
    except Exception:
        run_all_cells(page)
        root.first.wait_for(timeout=30_000)
        how = "re-executed"
    server_done = lab.job(job["id"])["done"]
    wait_for(lambda: attrs(page)["done"] >= server_done, 5, what=f"current after reload ({how})")

    assert attrs(page)["connection"] in {"live", "connecting"}
    assert_final(page, lab, job["id"], done=49, failed=1)
    print(f"widget after reload: {how}")


def test_kernel_restart_then_attach_shows_the_live_job(
    page: Any, lab: LabHandle, proxy: FaultProxy, notebook_name: str
) -> None:
    job = show_job(page, lab, proxy, notebook_name, 50, fail=[1])

    lab.restart_kernel(notebook_name)
    page.wait_for_function(
        "() => window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.status"
        " === 'idle'",
        timeout=60_000,
    )
    add_and_run_cell(page, f"import batch_widget as bw\nbw.attach({job['id']!r})")

    attached = page.locator(".bw-progress").nth(1)
    attached.wait_for(timeout=30_000)
    server_done = lab.job(job["id"])["done"]
    wait_for(lambda: attrs(page, 1)["done"] >= server_done, 5, what="attached widget current")
    assert lab.job(job["id"])["status"] == "processing", "the job must outlive the kernel"
    assert_final(page, lab, job["id"], done=49, failed=1, index=1)
    assert "live" in connections(page, widget=1)


def test_eight_widgets_share_one_event_source(
    page: Any, lab: LabHandle, proxy: FaultProxy, notebook_name: str
) -> None:
    open_warm_notebook(page, lab, notebook_name, via=proxy.url)
    jobs = [start_job(lab, 25, seconds=0.2, name=f"job {i}") for i in range(8)]
    show_cells(page, [widget_cell(job["id"], var=f"w{i}") for i, job in enumerate(jobs)])
    page.locator(".bw-progress").nth(7).wait_for(timeout=60_000)
    wait_for(
        lambda: all(attrs(page, i)["connection"] == "live" for i in range(8)), 30, what="8 live"
    )

    streams = [url for url in event_sources(page) if "api/batch/events" in url]
    assert len(streams) == 1, streams
    assert proxy.open_sse() == 1
    # JupyterLab's own requests still get a connection while eight widgets are live.
    answers = page.evaluate(
        """async () => {
          const config = document.getElementById('jupyter-config-data');
          const base = JSON.parse(config.textContent).baseUrl;
          const one = async () => {
            const start = performance.now();
            const response = await fetch(base + 'api/contents?content=0');
            await response.json();
            return [response.status, performance.now() - start];
          };
          return Promise.all([one(), one(), one(), one(), one(), one()]);
        }"""
    )
    assert all(status == 200 for status, _ in answers), answers
    assert max(ms for _, ms in answers) < 2000, answers

    for i, job in enumerate(jobs):
        shown = wait_for_status(page, "completed", index=i, timeout=120)
        assert (shown["done"], shown["failed"], shown["total"]) == (25, 0, 25)
        assert shown["version"] == lab.job(job["id"])["version"]
    assert len([u for u in event_sources(page) if "api/batch/events" in u]) == 1


def test_normal_operation_in_notebook_7(
    page: Any, notebook7: LabHandle, notebook_name: str
) -> None:
    open_warm_notebook(page, notebook7, notebook_name)
    job = notebook7.create_job(range(20), seconds=0.15, fail=[4], name="nb7", max_workers=2)
    show_cells(page, [widget_cell(job["id"])])

    shown = wait_for_status(page, "completed", timeout=60)

    server = notebook7.job(job["id"])
    assert (shown["done"], shown["failed"], shown["total"]) == (19, 1, 20)
    assert shown["version"] == server["version"]
    assert "live" in connections(page)
    assert page.locator(".bw-failure[data-index='4']").count() == 1
