"""The jobs view and the notifications (SPEC §13), in a real JupyterLab and Chromium.

``bw.jobs()`` displayed in a notebook: an old job listed, a job submitted
afterwards appearing and moving live to its exact final counts, one
EventSource for the jobs view and three progress widgets, and Cancel from a
row. Then the notifications: a job that ends while the page is hidden raises
one browser notification (once the user allowed it from the widget) and puts
the count in the tab title; none while the page is visible.

Jobs the tests act on are held by :class:`Gate` s, so they are still running
when the page looks at them, however slow the machine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from _lab import WATCHDOG_INTERVAL, WATCHDOG_TIMEOUT, Gate, LabHandle, widget_cell
from _page import (
    event_sources,
    log_position,
    open_warm_notebook,
    recorded,
    show_cells,
    wait_for,
    wait_for_status,
)
from _proxy import FaultProxy

pytestmark = pytest.mark.e2e

SLACK = 2.0  # s: two busy shared cores
# A row shows a pushed snapshot at once; at worst the view fetches the list
# once the stream has been quiet for watchdog_timeout (checked every interval).
SHOWN_WITHIN = (WATCHDOG_TIMEOUT + WATCHDOG_INTERVAL) / 1000 + SLACK
FIELDS = ("status", "done", "failed", "total", "version")
# A new job may wait, queued, for jobs an earlier test left ending (max_concurrent_jobs 2).
STARTED_WITHIN = 60.0

# Headless Chromium keeps every page visible (no CDP call hides one), so the
# page's visibility is put under the test's control; and every notification
# the page raises through the real Notification API is noted.
PAGE_HOOKS_JS = """
(() => {
  if (window.__bwSetHidden) return;
  let hidden = false;
  Object.defineProperty(Document.prototype, "visibilityState", {
    configurable: true, get: () => (hidden ? "hidden" : "visible"),
  });
  Object.defineProperty(Document.prototype, "hidden", { configurable: true, get: () => hidden });
  window.__bwSetHidden = (value) => {
    hidden = Boolean(value);
    document.dispatchEvent(new Event("visibilitychange"));
  };
  window.__bwNotifications = [];
  const Native = window.Notification;
  window.Notification = class extends Native {
    constructor(title, options) {
      super(title, options);
      window.__bwNotifications.push({ title, body: options && options.body, t: Date.now() });
    }
  };
})();
"""


def jobs_cell(var: str = "v", **traits: Any) -> str:
    """A cell that displays ``bw.jobs()`` with the tests' short watchdog settings."""
    settings = {
        "watchdog_interval": WATCHDOG_INTERVAL,
        "watchdog_timeout": WATCHDOG_TIMEOUT,
        **traits,
    }
    args = ", ".join(f"{key}={value!r}" for key, value in settings.items())
    return f"import batch_widget as bw\n{var} = bw.jobs({args})\n{var}"


def row(page: Any, job_id: str) -> Any:
    return page.locator(f".bw-jobs .bw-job-row[data-job-id='{job_id}']")


def row_attrs(page: Any, job_id: str) -> dict[str, Any]:
    data: dict[str, str] = row(page, job_id).evaluate("el => ({...el.dataset})")
    return {k: int(v) if v.lstrip("-").isdigit() else v for k, v in data.items()}


def wait_row(page: Any, job_id: str, status: str, timeout: float = 60) -> dict[str, Any]:
    """Wait until the jobs view's row for ``job_id`` shows ``status``; return its attributes."""
    row(page, job_id).and_(page.locator(f"[data-status='{status}']")).wait_for(
        timeout=timeout * 1000
    )
    return row_attrs(page, job_id)


def wait_row_at_server(page: Any, lab: LabHandle, job_id: str) -> dict[str, Any]:
    """The row ends up showing exactly the server's final snapshot; return it."""
    server = lab.wait_job(job_id, 60)
    wait_for(
        lambda: row_attrs(page, job_id)["version"] == server["version"],
        timeout=SHOWN_WITHIN,
        what=f"row at the server's version {server['version']}",
    )
    shown = row_attrs(page, job_id)
    assert {k: shown[k] for k in FIELDS} == {k: server[k] for k in FIELDS}
    return shown


def wait_active(page: Any, count: int, timeout: float = 60) -> None:
    """Wait until the first ``count`` progress widgets show their job queued or processing
    (``max_concurrent_jobs`` is 2: a third job waits, queued)."""
    active = page.locator(".bw-progress[data-status=queued], .bw-progress[data-status=processing]")
    for index in range(count):
        page.locator(".bw-progress").nth(index).and_(active).wait_for(timeout=timeout * 1000)


def hubs(page: Any) -> list[dict[str, Any]]:
    """What the page's shared hubs hold: subscribers, jobs followed, lists."""
    stats: list[dict[str, Any]] = page.evaluate(
        """() => [...(window.__batchWidgetHub || new Map()).values()].map((hub) => ({
             subscribers: hub.subs.size, jobs: [...hub.jobs.keys()], lists: hub.lists.size,
             open: hub.stream.isOpen }))"""
    )
    return stats


def test_jobs_view_lists_an_old_job_and_a_new_one_moves_live(
    page: Any, lab: LabHandle, proxy: FaultProxy, notebook_name: str, gate: Gate
) -> None:
    old = lab.create_job(range(3), seconds=0, name="old job")
    old = lab.wait_job(old["id"])
    open_warm_notebook(page, lab, notebook_name, via=proxy.url)
    show_cells(page, [jobs_cell()])

    view = page.locator(".bw-jobs")
    view.and_(page.locator("[data-connection=live]")).wait_for(timeout=30_000)
    listed = wait_row(page, old["id"], "completed", timeout=30)
    assert {k: listed[k] for k in FIELDS} == {k: old[k] for k in FIELDS}
    assert "old job" in row(page, old["id"]).inner_text()

    mark = log_position(page)
    gate.release(2)
    new = lab.create_job(range(8), seconds=0.05, max_workers=1, name="new job", gate=gate)
    shown = wait_row(page, new["id"], "processing", timeout=STARTED_WITHIN)
    assert shown["total"] == 8
    ids = (
        row(page, new["id"])
        .locator("xpath=..")
        .evaluate("list => [...list.querySelectorAll('.bw-job-row')].map((r) => r.dataset.jobId)")
    )
    assert ids.index(new["id"]) < ids.index(old["id"]), "newest first"
    wait_for(lambda: row_attrs(page, new["id"])["done"] == 2, SHOWN_WITHIN, what="2 done, shown")
    gate.open()
    final = wait_row_at_server(page, lab, new["id"])
    assert (final["status"], final["done"], final["failed"], final["total"]) == (
        "completed",
        8,
        0,
        8,
    )

    timeline = recorded(page, f"row:{new['id']}", since=mark)
    statuses = [entry["status"] for entry in timeline]
    assert statuses[-1] == "completed"
    assert "processing" in statuses and statuses.index("processing") < statuses.index("completed")
    # Live: it moved through intermediate counts, pushed over the open stream.
    assert any(0 < entry["done"] < 8 for entry in timeline), timeline
    assert {entry["connection"] for entry in timeline} == {"live"}, timeline
    versions = [entry["version"] for entry in timeline]
    assert versions == sorted(versions), "a row never goes back"
    assert page.locator(".bw-jobs").get_attribute("data-connection") == "live"


def test_jobs_view_and_three_progress_widgets_share_one_event_source(
    page: Any, lab: LabHandle, proxy: FaultProxy, notebook_name: str, gate: Gate
) -> None:
    open_warm_notebook(page, lab, notebook_name, via=proxy.url)
    jobs = [
        lab.create_job(range(4), seconds=0, max_workers=1, name=f"shared {n}", gate=gate)
        for n in range(3)
    ]
    show_cells(
        page, [jobs_cell()] + [widget_cell(job["id"], var=f"w{n}") for n, job in enumerate(jobs)]
    )
    wait_active(page, 3)
    for job in jobs:
        row(page, job["id"]).wait_for(timeout=SHOWN_WITHIN * 1000)
    assert len(event_sources(page)) == 1, event_sources(page)
    [hub] = hubs(page)
    assert hub["subscribers"] == 4 and hub["lists"] == 1 and hub["open"], hub
    assert sorted(hub["jobs"]) == sorted(job["id"] for job in jobs)

    gate.open()
    for index, job in enumerate(jobs):
        wait_row_at_server(page, lab, job["id"])
        assert wait_for_status(page, "completed", index=index, timeout=SHOWN_WITHIN)["done"] == 4
    assert len(event_sources(page)) == 1, "still one EventSource for the page"


def test_cancel_from_a_row_stops_the_job(
    page: Any, lab: LabHandle, proxy: FaultProxy, notebook_name: str, gate: Gate
) -> None:
    open_warm_notebook(page, lab, notebook_name, via=proxy.url)
    gate.release(2)
    job = lab.create_job(range(30), seconds=0.05, max_workers=1, name="cancel me", gate=gate)
    show_cells(page, [jobs_cell()])
    wait_row(page, job["id"], "processing", timeout=STARTED_WITHIN)
    cancel = row(page, job["id"]).locator("button.bw-cancel")
    retry = row(page, job["id"]).locator("button.bw-retry")
    assert cancel.is_visible() and retry.is_hidden()

    with page.expect_response(
        lambda response: (
            response.request.method == "POST"
            and response.url.split("?")[0].endswith(f"/{job['id']}/cancel")
        )
    ) as answer:
        cancel.click()
    assert answer.value.status == 200, answer.value.text()
    gate.open()  # the running item ends; no other starts
    final = wait_row_at_server(page, lab, job["id"])
    assert final["status"] == "cancelled"
    assert final["done"] < 30
    cancel.wait_for(state="hidden", timeout=5000)
    assert retry.is_visible()
    assert row(page, job["id"]).locator(".bw-message").inner_text() == ""


def notifications(page: Any) -> list[dict[str, Any]]:
    noted: list[dict[str, Any]] = page.evaluate("() => window.__bwNotifications")
    return noted


def title(page: Any) -> str:
    text: str = page.evaluate("() => document.title")
    return text


def test_a_job_that_ends_while_the_page_is_hidden_notifies_once(
    page: Any, lab: LabHandle, proxy: FaultProxy, notebook_name: str, tmp_path: Path
) -> None:
    page.context.grant_permissions(["notifications"])
    page.add_init_script(PAGE_HOOKS_JS)
    gates = [Gate(tmp_path / f"gate{n}") for n in range(3)]
    try:
        open_warm_notebook(page, lab, notebook_name, via=proxy.url)
        jobs = [
            lab.create_job(range(3), seconds=0, max_workers=1, name=f"ends {n}", gate=g)
            for n, g in enumerate(gates)
        ]
        # Each job is shown twice, by a progress widget and by its jobs view row.
        show_cells(
            page,
            [jobs_cell()] + [widget_cell(job["id"], var=f"w{n}") for n, job in enumerate(jobs)],
        )
        wait_active(page, 3)
        own_title = title(page)
        control = page.locator(".bw-jobs button.bw-notify")
        assert control.get_attribute("data-notify") == "off"

        # Hidden, but the user has not asked for notifications: the title counts, no notification.
        page.evaluate("() => window.__bwSetHidden(true)")
        gates[0].open()
        wait_for_status(page, "completed", index=0, timeout=SHOWN_WITHIN + 30)
        wait_for(lambda: title(page).startswith("(1 ended) "), SHOWN_WITHIN, what="title count")
        assert notifications(page) == []
        page.evaluate("() => window.__bwSetHidden(false)")
        wait_for(lambda: title(page) == own_title, 5, what="the title back")

        control.click()  # the permission is granted: the choice is made at once
        page.locator(".bw-jobs button.bw-notify[data-notify=on]").wait_for(timeout=5000)
        # Visible: the job ends in front of the user, nothing is raised.
        gates[1].open()
        wait_for_status(page, "completed", index=1, timeout=SHOWN_WITHIN + 30)
        wait_row(page, jobs[1]["id"], "completed", timeout=SHOWN_WITHIN)
        assert notifications(page) == []
        assert title(page) == own_title

        # Hidden and allowed: one notification (not one per widget showing the job).
        page.evaluate("() => window.__bwSetHidden(true)")
        gates[2].open()
        wait_for_status(page, "completed", index=2, timeout=SHOWN_WITHIN + 30)
        wait_row(page, jobs[2]["id"], "completed", timeout=SHOWN_WITHIN)
        # Both views show the end, and a view observes a snapshot before it renders it:
        # every notification this end could raise has been raised by now.
        [note] = notifications(page)
        assert note["title"] == "ends 2: completed"
        assert note["body"] == "3 done · 0 failed · 0 not run of 3"
        assert title(page).startswith("(1 ended) ")
        page.evaluate("() => window.__bwSetHidden(false)")
        wait_for(lambda: title(page) == own_title, 5, what="the title back")
        assert len(notifications(page)) == 1
    finally:
        for each in gates:
            each.open()
