"""Take the documentation screenshots of the widget, in JupyterLab's light and dark themes.

Starts a private JupyterLab with batch_widget (the end-to-end harness in
``tests/e2e``), runs a real job per theme and crops an element screenshot of
the widget while the job runs, once it has finished, for a job cancelled
part-way, for the jobs view, and for the finished job once it has been deleted::

    python scripts/screenshots.py [--out docs]

writes ``widget-{light,dark}-{running,finished,cancelled,deleted}.png``, and
``jobs-{light,dark}.png`` of the jobs view (``bw.jobs()``) with those jobs and a
running one.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "e2e")]  # the e2e harness

from _lab import LabHandle, launch_chromium, running_lab, widget_cell  # noqa: E402
from _page import attrs, open_warm_notebook, show_cells, wait_for, wait_for_status  # noqa: E402

THEMES = {"light": "JupyterLab Light", "dark": "JupyterLab Dark"}
ITEMS = 48
FAIL = [5, 17, 30]


def set_theme(page: Any, theme: str) -> None:
    """Switch JupyterLab's theme (the choice is saved in the user settings)."""
    page.evaluate(
        "(theme) => window.jupyterapp.commands.execute('apputils:change-theme', {theme})", theme
    )
    page.locator(f"body[data-jp-theme-name='{theme}']").wait_for(state="attached")
    page.wait_for_timeout(500)  # let the theme's CSS variables settle


def quiet_page(page: Any) -> None:
    """Hide what is not the widget's business: toasts and the blinking cursor."""
    page.add_style_tag(
        content=".Toastify, .jp-toast-container { display: none !important; }"
        " .CodeMirror-cursor, .cm-cursor { display: none !important; }"
    )


def progress(page: Any, index: int = 0) -> int:
    """Items widget ``index`` shows as finished (done or failed)."""
    shown = attrs(page, index)
    return int(shown["done"]) + int(shown["failed"])


def shoot(page: Any, path: Path, index: int = -1, selector: str = ".bw-progress") -> None:
    """An element screenshot of the output area of widget ``index`` (the last by default)
    among those that hold ``selector``."""
    widgets = page.locator(f".jp-OutputArea-output:has({selector})")
    widget = widgets.last if index == -1 else widgets.nth(index)
    widget.scroll_into_view_if_needed()
    widget.screenshot(path=str(path), animations="disabled")
    print(f"wrote {path}")


def take(browser: Any, lab: LabHandle, name: str, theme: str, out: Path) -> None:
    context = browser.new_context(viewport={"width": 900, "height": 700}, device_scale_factor=2)
    page = context.new_page()
    try:
        open_warm_notebook(page, lab, f"screenshots_{name}.ipynb")
        set_theme(page, theme)
        quiet_page(page)
        job = lab.create_job(
            [f"item-{i:02d}" for i in range(ITEMS)],
            seconds=0.4,
            fail=[f"item-{i:02d}" for i in FAIL],
            name="checksums of the archive",
            max_workers=2,
        )
        show_cells(page, [widget_cell(job["id"], defaults=True)])
        wait_for(lambda: progress(page) >= ITEMS * 0.4, 60, what="40 %")
        # The failed list refreshes at most every 3 s while a job runs: shoot once it has caught up.
        wait_for(
            lambda: page.locator(".bw-failure").count() == attrs(page)["failed"],
            10,
            what="failed list current",
        )
        shoot(page, out / f"widget-{name}-running.png")
        wait_for_status(page, "completed", timeout=60)
        page.locator(".bw-failure").first.wait_for()
        page.wait_for_timeout(500)
        shoot(page, out / f"widget-{name}-finished.png")

        stopped = lab.create_job(range(120), seconds=0.4, name="resize the photos", max_workers=2)
        show_cells(page, [widget_cell(stopped["id"], defaults=True)])
        wait_for(lambda: progress(page, 1) >= 10, 60, what="10 items of the second job")
        lab.api("POST", f"api/batch/jobs/{stopped['id']}/cancel", {})
        wait_for_status(page, "cancelled", index=1, timeout=60)
        page.wait_for_timeout(500)
        shoot(page, out / f"widget-{name}-cancelled.png")

        # The jobs view: this run's three jobs, one of them running.
        running = lab.create_job(range(200), seconds=0.3, name="index the notes", max_workers=2)
        show_cells(page, ["import batch_widget as bw\njobs = bw.jobs(limit=3)\njobs"])
        row = page.locator(f".bw-job-row[data-job-id='{running['id']}'][data-status=processing]")
        row.wait_for(timeout=60_000)
        wait_for(lambda: int(row.get_attribute("data-done") or 0) >= 12, 60, what="12 items shown")
        page.wait_for_timeout(500)
        shoot(page, out / f"jobs-{name}.png", selector=".bw-jobs")
        lab.api("POST", f"api/batch/jobs/{running['id']}/cancel", {})

        lab.api("DELETE", f"api/batch/jobs/{job['id']}")
        wait_for_status(page, "deleted", index=0, timeout=30)
        page.wait_for_timeout(500)
        shoot(page, out / f"widget-{name}-deleted.png", index=0)
    finally:
        context.close()
        lab.shutdown_kernels()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    from playwright.sync_api import sync_playwright

    with (
        tempfile.TemporaryDirectory(prefix="bw-shots-") as tmp,
        running_lab(Path(tmp)) as lab,
        sync_playwright() as playwright,
    ):
        browser = launch_chromium(playwright)
        for name, theme in THEMES.items():
            take(browser, lab, name, theme, args.out)
        browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
