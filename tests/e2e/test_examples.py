"""The example notebooks, run as a newcomer runs them: in JupyterLab, Run All.

nbval checks their printed outputs; this checks what they promise to *show*:
the quickstart's job lasts long enough to watch its bar move (and its widget
reads ``deleted`` after the tidy-up), and ``files.ipynb`` ends with the gzip
job's output files listed as links in its widget.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from _lab import LabHandle
from _page import attrs, recorded, run_all_cells, wait_for, wait_for_kernel, wait_for_status

pytestmark = pytest.mark.e2e

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


def open_example(page: Any, lab: LabHandle, name: str) -> None:
    """Copy ``notebooks/<name>`` into the server's root, open it and run all cells."""
    shutil.copy(NOTEBOOKS / name, lab.root_dir / name)
    page.goto(lab.page_url(name), wait_until="domcontentloaded")
    wait_for_kernel(page)
    run_all_cells(page)


def test_the_quickstart_job_can_be_watched_while_it_runs(page: Any, lab: LabHandle) -> None:
    open_example(page, lab, "quickstart.ipynb")
    page.locator(".bw-progress").first.wait_for(timeout=60_000)
    # The tidy-up at the end deletes the job: its widget then reads deleted.
    wait_for_status(page, "deleted", index=0, timeout=90)
    moving = [
        e for e in recorded(page, 0) if e["status"] == "processing" and 0 < e["done"] < e["total"]
    ]
    assert len({e["done"] for e in moving}) >= 5, "the bar was not seen moving"
    assert moving[-1]["t"] - moving[0]["t"] >= 3000, "over too fast to watch"
    assert attrs(page, 0)["total"] == 40


def test_files_shows_the_output_links_it_describes(page: Any, lab: LabHandle) -> None:
    open_example(page, lab, "files.ipynb")
    gzip_widget = page.locator(".bw-progress").nth(1)
    gzip_widget.wait_for(timeout=60_000)
    wait_for_status(page, "completed", index=1, timeout=90)
    links = gzip_widget.locator("a.bw-output")
    wait_for(lambda: links.count() == 20, 15, what="20 output links")
    assert links.first.inner_text() == "data/gz/file-00.txt.gz"
    assert links.first.get_attribute("href").endswith("lab/tree/data/gz/file-00.txt.gz")
    assert (lab.root_dir / "data" / "gz" / "file-00.txt.gz").is_file()
    # Run All has finished: the last cell's output is there, and nothing deleted the job.
    page.locator(".jp-Cell").last.wait_for()
    wait_for(
        lambda: page.locator(".jp-Notebook .jp-InputArea-prompt", has_text="[*]").count() == 0,
        60,
        what="every cell run",
    )
    assert attrs(page, 1)["status"] == "completed"
    assert links.count() == 20
