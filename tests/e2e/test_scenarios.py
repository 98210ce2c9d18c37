"""The scenarios of the Error Recovery Matrix, in a real JupyterLab and Chromium (issue 6).

Each test breaks something between the browser and Jupyter through the
:class:`FaultProxy`, then asserts what a user sees: the widget root's data
attributes, the connection states it passed through (recorded by a
MutationObserver) and exact final counts.

Three rules keep these tests from racing (issue 9):

- Timelines are read on the page's clock only. A test marks the page's log
  (``log_position``, ``page_now``) before it breaks something and measures
  from the moment the widget saw the fault (``fault_seen``): an update already
  on its way at the cut is still logged ``live`` after any Python-side instant.
  A mark taken before the fault can only make a measured delay longer, so an
  upper bound checked from it holds for the real one.
- Time bounds derive from the widget's settings in ``_lab`` (1 s reconnect,
  1 s watchdog interval, 3 s watchdog timeout) plus ``SLACK`` for two busy
  shared cores; generous timeouts elsewhere only stop a hung test.
- A job a test acts on is held running by a :class:`Gate` until the test is
  done with it, and moves on only when the test releases items.
"""

from __future__ import annotations

from typing import Any

import pytest
from _lab import (
    RECONNECT_DELAY,
    WATCHDOG_INTERVAL,
    WATCHDOG_TIMEOUT,
    Gate,
    LabHandle,
    widget_cell,
)
from _page import (
    add_and_run_cell,
    attrs,
    connections,
    event_sources,
    fault_seen,
    first,
    log_position,
    open_warm_notebook,
    page_now,
    recorded,
    run_all_cells,
    save_notebook,
    show_cells,
    wait_for,
    wait_for_status,
)
from _proxy import FaultProxy

pytestmark = pytest.mark.e2e

SLACK = 2.0  # s: two busy shared cores, on top of what the settings promise
# The view renders in an animation frame: a change is logged up to a (slow) frame
# after the widget made it, so a delay between two entries can read this much short.
RENDER_TOLERANCE = 0.5
ITEM_SECONDS = 0.2  # each item of a scenario job; one worker runs them in order
# Back live once the network is: the browser retries the stream every reconnect_delay.
BACK_LIVE_WITHIN = RECONNECT_DELAY / 1000 + SLACK
# A stream down this long switches the widget to polling, exactly (docs/recovery.md).
POLLING_AFTER = WATCHDOG_TIMEOUT / 1000
# With no update for watchdog_timeout, the next watchdog check (every
# watchdog_interval) polls: the widest promise, for a silence nothing reports.
SILENCE_NOTICED_WITHIN = (WATCHDOG_TIMEOUT + WATCHDOG_INTERVAL) / 1000 + SLACK
# A widget that has just appeared (reload, attach) fetches the job at once on open;
# at worst its watchdog does, so this is the bound it must be current within.
CURRENT_WITHIN = SILENCE_NOTICED_WITHIN
# While the stream is down the widget polls every watchdog_interval.
POLL_SHOWS_WITHIN = WATCHDOG_INTERVAL / 1000 + SLACK
# A glitch shorter than watchdog_timeout minus one retry never reaches polling.
BRIEF_CUT = 1.5
assert BRIEF_CUT + RECONNECT_DELAY / 1000 < WATCHDOG_TIMEOUT / 1000
# An outage past the switch to polling, with time for polls (that fail) after it.
LONG_CUT = WATCHDOG_TIMEOUT / 1000 + 3
HELD = 10  # items a held job has finished when the test acts on it
AHEAD = 10  # items a job finishes while the widget cannot hear of them
assert AHEAD * ITEM_SECONDS + SLACK < LONG_CUT


def show_job(
    page: Any,
    lab: LabHandle,
    proxy: FaultProxy,
    notebook_name: str,
    gate: Gate,
    *,
    n: int,
    fail: list[int],
    release: int | None = None,
    wait_live: bool = True,
) -> dict[str, Any]:
    """Open a notebook through the proxy, start a gated ``n``-item job, show its widget.

    The gate lets ``release`` items finish (default: all but the last, so the
    job runs ``ITEM_SECONDS`` per item and then stays ``processing`` until the
    test opens the gate). With ``wait_live``, return once the widget is live
    and shows progress.
    """
    open_warm_notebook(page, lab, notebook_name, via=proxy.url)
    gate.release(n - 1 if release is None else release)
    job = lab.create_job(
        range(n), seconds=ITEM_SECONDS, fail=fail, name="scenario", max_workers=1, gate=gate
    )
    show_cells(page, [widget_cell(job["id"])])
    if wait_live:
        wait_live_with_progress(page)
    return job


def wait_live_with_progress(page: Any, index: int = 0, done: int = 2, timeout: float = 60) -> None:
    """Wait until widget ``index`` is live and shows at least ``done`` items finished."""
    root = page.locator(".bw-progress").nth(index)
    root.and_(page.locator(".bw-progress[data-connection=live]")).wait_for(timeout=timeout * 1000)
    wait_for(lambda: attrs(page, index)["done"] >= done, timeout, what=f"{done} items done")


def attempted(snapshot: dict[str, Any]) -> int:
    return int(snapshot["done"]) + int(snapshot["failed"])


def wait_server_at(lab: LabHandle, job_id: str, count: int) -> dict[str, Any]:
    """Wait until the (held) job has attempted exactly ``count`` items; return its snapshot."""
    return wait_for(
        lambda: (snapshot := lab.job(job_id)) and attempted(snapshot) == count and snapshot,
        count * ITEM_SECONDS + 30,
        what=f"the job at {count} items",
    )


def wait_held(
    page: Any, lab: LabHandle, job_id: str, count: int, *, index: int = 0, within: float = 60
) -> dict[str, Any]:
    """Wait until the job waits at its gate after ``count`` items and widget ``index`` shows
    exactly the server's snapshot; return that snapshot.

    A held job does not change, so nothing is on its way to the widget after this.
    """
    wait_server_at(lab, job_id, count)
    return wait_current(page, lab, job_id, index=index, within=within, what="the held job")


def wait_current(
    page: Any, lab: LabHandle, job_id: str, *, index: int = 0, within: float, what: str
) -> dict[str, Any]:
    """Wait until widget ``index`` shows the server's snapshot as it is now; return it.

    The server is read on every poll: a snapshot read once may be followed by one more
    commit (the next chunk marked running), which the widget then rightly shows instead.
    """

    def current() -> dict[str, Any] | None:
        server = lab.job(job_id)
        return server if attrs(page, index)["version"] == server["version"] else None

    return wait_for(current, within, what=f"widget {index} current with {what}")


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


def seconds_between(later: dict[str, Any] | float, earlier: dict[str, Any] | float) -> float:
    """Seconds between two page-clock times (log entries or :func:`page_now` readings)."""
    end = later["t"] if isinstance(later, dict) else later
    start = earlier["t"] if isinstance(earlier, dict) else earlier
    return (end - start) / 1000


def is_live(entry: dict[str, Any]) -> bool:
    return bool(entry["connection"] == "live")


# -- the scenarios ----------------------------------------------------------------------


def test_normal_operation_updates_live_over_sse(
    page: Any, lab: LabHandle, proxy: FaultProxy, notebook_name: str, gate: Gate
) -> None:
    job = show_job(
        page, lab, proxy, notebook_name, gate, n=20, fail=[5], release=0, wait_live=False
    )
    # The job waits at its first item until the widget is live: every item is then
    # a live update the widget can show (a job that ran out before the widget
    # rendered would prove nothing).
    wait_live_with_progress(page, done=0)
    mark = log_position(page)
    gate.open()

    assert_final(page, lab, job["id"], done=19, failed=1)

    states = connections(page)
    assert "live" in states
    assert not {"reconnecting", "polling"} & set(states), states
    versions = {e["version"] for e in recorded(page, 0, since=mark) if e["status"] == "processing"}
    assert len(versions) >= 5, f"too few live updates: {sorted(versions)}"
    assert proxy.open_sse() == 1


def test_brief_network_glitch_reconnects(
    page: Any, lab: LabHandle, proxy: FaultProxy, notebook_name: str, gate: Gate
) -> None:
    job = show_job(page, lab, proxy, notebook_name, gate, n=40, fail=[30])

    mark, before = log_position(page), page_now(page)
    proxy.cut(BRIEF_CUT)
    # From the moment the widget saw the cut: updates that were on their way are
    # logged `live` before it, whatever a clock outside the page says.
    fault = wait_for(lambda: fault_seen(page, mark), SLACK, what="the widget seeing the cut")
    back = wait_for(
        lambda: first(page, is_live, since=fault["seq"]),
        BRIEF_CUT + BACK_LIVE_WITHIN + 1,
        what="live again",
    )

    assert fault["connection"] == "reconnecting", fault
    assert seconds_between(fault, before) <= SLACK, "a dropped stream is seen at once"
    assert seconds_between(back, before) <= BRIEF_CUT + BACK_LIVE_WITHIN
    assert connections(page, since=fault["seq"]) == ["reconnecting", "live"], (
        "a 1.5 s glitch is shorter than the watchdog timeout: no polling"
    )
    assert lab.job(job["id"])["status"] == "processing"
    gate.open()
    assert_final(page, lab, job["id"], done=39, failed=1)


def test_extended_disconnect_polls_then_goes_live(
    page: Any, lab: LabHandle, proxy: FaultProxy, notebook_name: str, gate: Gate
) -> None:
    job = show_job(page, lab, proxy, notebook_name, gate, n=60, fail=[2], release=HELD)
    wait_held(page, lab, job["id"], HELD)

    mark, before = log_position(page), page_now(page)
    proxy.cut(LONG_CUT)
    fault = wait_for(lambda: fault_seen(page, mark), SLACK, what="the widget seeing the cut")
    # The job moves on while the browser is cut off (the test reaches the server directly).
    gate.release(HELD + AHEAD)
    wait_server_at(lab, job["id"], HELD + AHEAD)
    assert proxy.is_cut, "the job must move on while the widget cannot hear of it"
    polling = wait_for(
        lambda: first(page, lambda e: e["connection"] == "polling", since=fault["seq"]),
        POLLING_AFTER + SLACK,
        what="polling",
    )
    back = wait_for(
        lambda: first(page, is_live, since=polling["seq"]),
        LONG_CUT + BACK_LIVE_WITHIN + 1,
        what="live again",
    )

    assert fault["connection"] == "reconnecting", fault
    assert connections(page, since=fault["seq"]) == ["reconnecting", "polling", "live"]
    # Polling exactly watchdog_timeout after the widget saw the stream go down.
    down_for = seconds_between(polling, fault)
    assert POLLING_AFTER - RENDER_TOLERANCE <= down_for <= POLLING_AFTER + SLACK, down_for
    assert seconds_between(back, before) <= LONG_CUT + BACK_LIVE_WITHIN
    # Back, the catch-up poll makes the view current at once: the items the job
    # finished during the cut show up with the reconnection, not later.
    caught = wait_for(
        lambda: first(page, lambda e: attempted(e) >= HELD + AHEAD, since=fault["seq"]),
        SLACK,
        what="caught up after the cut",
    )
    assert seconds_between(caught, back) <= SLACK
    gate.open()
    assert_final(page, lab, job["id"], done=59, failed=1)


def test_sse_completely_dead_completes_by_polling(
    page: Any, lab: LabHandle, proxy: FaultProxy, notebook_name: str, gate: Gate
) -> None:
    proxy.kill_sse()
    job = show_job(
        page, lab, proxy, notebook_name, gate, n=30, fail=[7, 8], release=0, wait_live=False
    )
    page.locator(".bw-progress[data-connection=polling]").wait_for(timeout=60_000)

    # The job moves a step at a time; each step shows by a poll, one watchdog
    # interval apart at most, with the stream refused throughout.
    for step in (10, 20):
        gate.release(step)
        wait_server_at(lab, job["id"], step)
        wait_for(
            lambda step=step: attempted(attrs(page)) >= step,
            POLL_SHOWS_WITHIN,
            what=f"a poll showing {step} items",
        )
    gate.open()
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
    page: Any,
    lab: LabHandle,
    proxy: FaultProxy,
    notebook_name: str,
    *,
    gate: Gate,
    heartbeats: bool,
) -> None:
    """The stream stays open but job events stop (with or without heartbeats)."""
    job = show_job(page, lab, proxy, notebook_name, gate, n=60, fail=[40], release=HELD)
    # Held, and the widget current: no job event is on its way when the silence starts.
    version = wait_held(page, lab, job["id"], HELD)["version"]

    mark, before = log_position(page), page_now(page)
    proxy.silence_sse(heartbeats=heartbeats)
    gate.release(HELD + AHEAD)  # the job moves on; its events are lost
    moved = wait_for(
        lambda: first(page, lambda e: e["version"] > version, since=mark),
        SILENCE_NOTICED_WITHIN + 1,
        what="a poll after the broadcaster went silent",
    )

    assert seconds_between(moved, before) <= SILENCE_NOTICED_WITHIN
    gate.open()
    assert_final(page, lab, job["id"], done=59, failed=1)
    assert proxy.open_sse() >= 1
    if heartbeats:
        # The stream itself is healthy: no reconnect, the watchdog alone keeps the view current.
        assert connections(page, since=mark) == ["live"]


def test_page_reload_mid_job_comes_back_current(
    page: Any, lab: LabHandle, proxy: FaultProxy, notebook_name: str, gate: Gate
) -> None:
    page.on("dialog", lambda dialog: dialog.accept())
    job = show_job(page, lab, proxy, notebook_name, gate, n=50, fail=[45], release=HELD)
    wait_held(page, lab, job["id"], HELD)
    save_notebook(page)
    # The job moves on after the save: only a fresh fetch can show where it is now.
    gate.release(HELD + AHEAD)
    wait_server_at(lab, job["id"], HELD + AHEAD)

    page.reload(wait_until="domcontentloaded")
    root = page.locator(".bw-progress")
    try:
        root.first.wait_for(timeout=20_000)
        how = "restored from the kernel"
    except Exception:
        run_all_cells(page)
        root.first.wait_for(timeout=30_000)
        how = "re-executed"
    wait_current(page, lab, job["id"], within=CURRENT_WITHIN, what=f"the job after reload ({how})")

    assert attrs(page)["connection"] in {"live", "connecting"}
    assert lab.job(job["id"])["status"] == "processing"
    gate.open()
    assert_final(page, lab, job["id"], done=49, failed=1)
    print(f"widget after reload: {how}")


def test_kernel_restart_then_attach_shows_the_live_job(
    page: Any, lab: LabHandle, proxy: FaultProxy, notebook_name: str, gate: Gate
) -> None:
    job = show_job(page, lab, proxy, notebook_name, gate, n=50, fail=[1], release=HELD)
    wait_held(page, lab, job["id"], HELD)

    lab.restart_kernel(notebook_name)
    gate.release(HELD + AHEAD)  # the job goes on without the kernel
    page.wait_for_function(
        "() => window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.status"
        " === 'idle'",
        timeout=60_000,
    )
    wait_server_at(lab, job["id"], HELD + AHEAD)
    add_and_run_cell(page, f"import batch_widget as bw\nbw.attach({job['id']!r})")

    attached = page.locator(".bw-progress").nth(1)
    attached.wait_for(timeout=30_000)
    wait_current(page, lab, job["id"], index=1, within=CURRENT_WITHIN, what="the attached job")
    assert lab.job(job["id"])["status"] == "processing", "the job must outlive the kernel"
    gate.open()
    assert_final(page, lab, job["id"], done=49, failed=1, index=1)
    assert "live" in connections(page, widget=1)


def test_eight_widgets_share_one_event_source(
    page: Any, lab: LabHandle, proxy: FaultProxy, notebook_name: str
) -> None:
    open_warm_notebook(page, lab, notebook_name, via=proxy.url)
    jobs = [
        lab.create_job(range(25), seconds=ITEM_SECONDS, name=f"job {i}", max_workers=1)
        for i in range(8)
    ]
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
