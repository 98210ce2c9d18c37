"""What a newcomer trips over first, in a real JupyterLab and Chromium.

The failed-items list across a Retry that fails as many items as before, and
the widget of a job deleted while it is shown (and after a reload): it must
read ``deleted`` and never ask the server about that job again.
"""

from __future__ import annotations

from typing import Any

import pytest
from _lab import Gate, LabHandle, widget_cell
from _page import (
    attrs,
    open_warm_notebook,
    run_all_cells,
    save_notebook,
    show_cells,
    wait_for,
    wait_for_status,
)
from _proxy import FaultProxy
from test_actions import SHOWN_WITHIN, assert_agrees_with_server, click_and_answer, settled, widget

pytestmark = pytest.mark.e2e

# The view re-checks failed items and outputs once a second (view.js); three of
# those ticks without a request show that nothing asks for the job any more.
QUIET_FOR_MS = 3500


def failure_indexes(page: Any) -> list[int]:
    rows = widget(page).locator(".bw-failure")
    return [int(rows.nth(i).get_attribute("data-index")) for i in range(rows.count())]


def test_the_failed_items_list_survives_a_retry_that_fails_as_many(
    page: Any, lab: LabHandle, proxy: FaultProxy, notebook_name: str, gate: Gate
) -> None:
    open_warm_notebook(page, lab, notebook_name, via=proxy.url)
    gate.open()
    job = lab.create_job(
        range(6), seconds=0.01, fail=[1, 4], max_workers=2, name="fails twice", gate=gate
    )
    first_run = settled(lab, job["id"])
    assert (first_run["done"], first_run["failed"]) == (4, 2)
    show_cells(page, [widget_cell(job["id"])])
    wait_for_status(page, "completed", timeout=30)
    root = widget(page)
    assert root.locator(".bw-id").inner_text() == job["id"]
    wait_for(lambda: failure_indexes(page) == [1, 4], 10, what="the failed items listed")

    gate.release(0)  # the rerun holds until the widget has shown it running
    answer = click_and_answer(page, root.locator("button.bw-retry"), "retry")
    assert answer.status == 200, answer.text()
    running = page.locator(".bw-progress[data-status=processing][data-failed='0']")
    root.and_(running).wait_for(timeout=SHOWN_WITHIN * 1000)
    root.locator(".bw-failures").wait_for(state="hidden", timeout=5000)
    gate.open()

    final = assert_agrees_with_server(page, lab, job["id"])
    assert (final["status"], final["done"], final["failed"]) == ("completed", 4, 2)
    assert root.locator(".bw-counts").inner_text() == "4 done · 2 failed · 0 not run of 6"
    wait_for(lambda: failure_indexes(page) == [1, 4], 10, what="the list back after Retry")
    assert "Failed items (2)" in root.locator(".bw-failures").inner_text()


def test_a_deleted_job_reads_deleted_and_is_never_asked_for_again(
    page: Any, lab: LabHandle, proxy: FaultProxy, notebook_name: str
) -> None:
    page.on("dialog", lambda dialog: dialog.accept())
    open_warm_notebook(page, lab, notebook_name, via=proxy.url)
    job = lab.create_job(range(3), seconds=0.01, fail=[1], name="to delete")
    settled(lab, job["id"])
    show_cells(page, [widget_cell(job["id"])])
    wait_for_status(page, "completed", timeout=30)
    root = widget(page)
    root.locator("button.bw-retry").wait_for(state="visible", timeout=5000)
    save_notebook(page)

    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url) if f"/jobs/{job['id']}" in r.url else None)
    lab.api("DELETE", f"api/batch/jobs/{job['id']}")
    shown = wait_for_status(page, "deleted", timeout=SHOWN_WITHIN)
    assert shown["connection"] == "closed"
    assert root.locator(".bw-status").inner_text() == "deleted"
    assert "deleted" in root.locator(".bw-job-error").inner_text()
    assert root.locator("button.bw-retry").is_hidden()
    assert root.locator("button.bw-cancel").is_hidden()
    after_delete = len(asked)
    page.wait_for_timeout(QUIET_FOR_MS)
    assert asked[after_delete:] == [], "requests for a deleted job"

    # After a reload the widget has no snapshot at all: one 404 tells it.
    asked.clear()
    page.reload(wait_until="domcontentloaded")
    try:
        root.first.wait_for(timeout=20_000)
    except Exception:  # not restored from the kernel: run the cells again
        run_all_cells(page)
        root.first.wait_for(timeout=30_000)
    shown = wait_for_status(page, "deleted", timeout=SHOWN_WITHIN)
    assert shown["connection"] == "closed"
    assert root.locator(".bw-status").inner_text() == "deleted"
    assert root.locator(".bw-id").inner_text() == job["id"]
    assert root.locator("button.bw-retry").is_hidden()
    settled_requests = len(asked)
    assert 1 <= settled_requests <= 2, asked  # the catch-up poll (and a kernel re-run's)
    page.wait_for_timeout(QUIET_FOR_MS)
    assert asked[settled_requests:] == [], "requests for a deleted job after the reload"
    assert attrs(page)["status"] == "deleted"
