"""The kernel transport (SPEC §12) in JupyterLab and Chromium.

A JupyterLab whose server does not have the extension:

The kernel finds no batch API on the server that launched it (404), so it
starts the batch server; the page cannot reach that one, so the widget's
``auto`` transport falls back to the kernel within 2 s: the kernel follows the
job and sends each snapshot over the widget's channel, and Cancel goes back the
same way. Checked against the batch server's own answer for the job.

And a JupyterLab with the extension whose page cannot reach ``api/batch/``
(every such request of the page aborted, as a proxy that blocks the path would):
``auto`` falls back to the kernel, which reaches the server directly.
"""

from __future__ import annotations

import dataclasses
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _batch_server import runtime_record, stop_batch_servers
from _lab import LabHandle, build_lab
from _page import (
    attrs,
    fresh_page,
    open_warm_notebook,
    recorded,
    show_cells,
    submit_cell,
    wait_for,
)
from _page import wait_for_status as status_shown

pytestmark = pytest.mark.e2e

#: Seconds for a job to start on a batch server the kernel may still be starting.
WITHIN = 90.0
#: Milliseconds of slack on top of the 2 s ``auto`` probe: two busy shared cores.
SLACK_MS = 3000


@pytest.fixture(scope="module")
def plain_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabHandle]:
    """JupyterLab with the batch_widget server extension turned off."""
    lab = build_lab(tmp_path_factory.mktemp("plain-lab"))
    config = Path(lab.env["JUPYTER_CONFIG_DIR"]) / "jupyter_server_config.json"
    config.write_text(json.dumps({"ServerApp": {"jpserver_extensions": {"batch_widget": False}}}))
    lab = dataclasses.replace(lab, ready_path="api/status")
    lab.start()
    try:
        with pytest.raises(urllib.error.HTTPError) as answered:
            lab.api("GET", "api/batch/jobs")
        assert answered.value.code == 404, "the extension is really off"
        yield lab
    finally:
        lab.stop()
        stop_batch_servers(lab.env)


@pytest.fixture
def plain_page(browser: Any, plain_lab: LabHandle) -> Iterator[Any]:
    with fresh_page(browser) as new_page:
        yield new_page
    plain_lab.shutdown_kernels()


def batch_server_job(lab: LabHandle, job_id: str) -> dict[str, Any]:
    """The job as the batch server (which the kernel started) answers for it."""
    record = runtime_record(lab.env)
    assert record is not None, "the kernel started the batch server"
    request = urllib.request.Request(
        f"{record['url']}api/batch/jobs/{job_id}",
        headers={"Authorization": f"token {record['token']}"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


def test_the_widget_follows_the_job_through_the_kernel_to_exact_counts(
    plain_page: Any,
    plain_lab: LabHandle,
    notebook_name: str,
) -> None:
    page = plain_page
    open_warm_notebook(page, plain_lab, notebook_name)
    show_cells(page, [submit_cell(30, 0.1, fail=[7])])

    shown = status_shown(page, "completed", timeout=WITHIN)

    job_id = shown["jobId"]
    server = batch_server_job(plain_lab, job_id)
    assert (server["status"], server["done"], server["failed"]) == ("completed", 29, 1)
    assert (shown["done"], shown["failed"], shown["total"]) == (29, 1, 30)
    assert shown["version"] == server["version"]
    assert shown["connection"] == "kernel"
    log = recorded(page, widget=0)
    assert any(e["connection"] == "kernel" and e["status"] == "processing" for e in log), (
        "live progress came through the kernel on the way"
    )
    wait_for(
        lambda: page.locator(".bw-failure[data-index='7']").count() == 1,
        10,
        what="the failed item listed from what the kernel sent",
    )


def test_cancel_goes_through_the_kernel(
    plain_page: Any,
    plain_lab: LabHandle,
    notebook_name: str,
) -> None:
    page = plain_page
    open_warm_notebook(page, plain_lab, notebook_name)
    show_cells(page, [submit_cell(400, 0.2)])
    wait_for(lambda: attrs(page).get("done", 0) >= 2, WITHIN, what="items done")
    assert attrs(page)["connection"] == "kernel"

    page.locator(".bw-progress button.bw-cancel").click()
    shown = status_shown(page, "cancelled", timeout=30)

    server = batch_server_job(plain_lab, shown["jobId"])
    assert server["status"] == "cancelled"
    assert shown["done"] == server["done"] < 400


def test_auto_falls_back_to_the_kernel_when_the_page_cannot_reach_the_batch_api(
    page: Any,
    lab: LabHandle,
    notebook_name: str,
) -> None:
    open_warm_notebook(page, lab, notebook_name)
    blocked: list[str] = []

    def block(route: Any) -> None:
        blocked.append(route.request.url)
        route.abort()

    page.route("**/api/batch/**", block)
    show_cells(page, [submit_cell(20, 0.1)])

    shown = status_shown(page, "completed", timeout=WITHIN)

    server = lab.wait_job(shown["jobId"])
    assert (shown["done"], shown["failed"], shown["total"]) == (server["done"], 0, 20)
    assert shown["version"] == server["version"] and shown["connection"] == "kernel"
    assert blocked, "the page did try its server first"
    log = recorded(page, widget=0)
    became_kernel = next(e for e in log if e["connection"] == "kernel")
    appeared = log[0]
    assert became_kernel["t"] - appeared["t"] <= 2000 + SLACK_MS, (
        "auto gave up on the page's server within 2 s"
    )


def test_the_jobs_view_lists_and_moves_through_the_kernel(
    plain_page: Any,
    plain_lab: LabHandle,
    notebook_name: str,
) -> None:
    page = plain_page
    open_warm_notebook(page, plain_lab, notebook_name)
    show_cells(
        page,
        [
            "job = bw.submit('batch_widget.processors:sleep', list(range(30)),\n"
            "                params={'seconds': 0.3}, max_workers=2, name='listed via kernel')",
            "v = bw.jobs()\nv",
        ],
    )
    view = page.locator(".bw-jobs[data-connection=kernel]")
    view.wait_for(timeout=WITHIN * 1000)
    job_id = page.evaluate("() => document.querySelector('.bw-jobs .bw-job-row').dataset.jobId")
    done_row = page.locator(f".bw-job-row[data-job-id='{job_id}'][data-status=completed]")
    done_row.wait_for(timeout=WITHIN * 1000)
    shown = done_row.evaluate("el => ({...el.dataset})")
    server = batch_server_job(plain_lab, job_id)
    assert server["name"] == "listed via kernel"
    assert (shown["done"], shown["failed"], shown["total"]) == ("30", "0", "30")
    assert int(shown["version"]) == server["version"]
    rows = recorded(page, widget=f"row:{job_id}")
    assert any(e["status"] == "processing" for e in rows), "it moved on the way, through the kernel"
