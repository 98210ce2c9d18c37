"""JupyterLab in headless Chromium renders the widget for a real job (issue 4)."""

from __future__ import annotations

from typing import Any

import pytest
from _lab import LabHandle, widget_cell
from _page import open_warm_notebook, show_cells, wait_for_status
from _proxy import FaultProxy

pytestmark = pytest.mark.e2e

FAIL = [3, 11]


def test_widget_renders_a_real_job_to_completion(
    page: Any, lab: LabHandle, proxy: FaultProxy, notebook_name: str
) -> None:
    open_warm_notebook(page, lab, notebook_name, via=proxy.url)
    job = lab.create_job(range(20), seconds=0.15, fail=FAIL, name="smoke", max_workers=2)
    show_cells(page, [widget_cell(job["id"])])

    shown = wait_for_status(page, "completed", timeout=60)

    final = lab.job(job["id"])
    assert (shown["done"], shown["failed"], shown["total"]) == (18, 2, 20)
    assert shown["version"] == final["version"]
    root = page.locator(".bw-progress")
    assert root.locator(".bw-name").inner_text() == "smoke"
    bar = root.locator(".bw-bar[role=progressbar]")
    assert bar.get_attribute("aria-valuemin") == "0"
    assert bar.get_attribute("aria-valuemax") == "20"
    assert bar.get_attribute("aria-valuenow") == "20"
    failures = root.locator(".bw-failure[data-index]")
    failures.first.wait_for()
    assert (
        sorted(int(i) for i in failures.evaluate_all("els => els.map(e => e.dataset.index)"))
        == FAIL
    )
    assert "asked to fail" in failures.first.inner_text()
    assert root.locator("button.bw-cancel").is_hidden()
    assert root.locator("button.bw-retry").is_visible()
