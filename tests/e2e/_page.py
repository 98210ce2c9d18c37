"""Drive a JupyterLab / Notebook 7 page and read what the widget shows.

What a test asserts is what a user sees: the widget root's data attributes.
:data:`RECORDER_JS` (installed with ``page.add_init_script``, so it survives
reloads) logs every change of those attributes with a timestamp, and counts
the EventSources the page builds.

Every entry carries ``seq``, its position in the page's log, and ``t``, the
page's ``Date.now()``. A test reads a timeline on the page's terms only: it
takes :func:`log_position` (or :func:`page_now`) *before* it breaks something,
then finds the moment the widget itself saw the fault (:func:`fault_seen`)
and measures from there. Never compare ``t`` with a time taken in Python, and
never assume the first entry after a Python-side instant is the widget's
reaction: an update already on its way when the fault starts is still
recorded, ``live``, after it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

from _lab import LabHandle

__all__ = [
    "RECORDER_JS",
    "add_and_run_cell",
    "attrs",
    "connections",
    "event_sources",
    "fault_seen",
    "first",
    "fresh_page",
    "install_recorder",
    "log_position",
    "open_notebook",
    "open_warm_notebook",
    "page_now",
    "recorded",
    "run_all_cells",
    "save_notebook",
    "show_cells",
    "submit_cell",
    "wait_for",
    "wait_for_executed",
    "wait_for_kernel",
    "wait_for_status",
]

# Logs each change of a widget root's data attributes as {t, w, connection, ...}
# (w numbers the roots in order of appearance; a jobs view row is "row:<id>"),
# and counts EventSources.
RECORDER_JS = """
(() => {
  if (window.__bwLog) return;
  const log = (window.__bwLog = []);
  window.__bwEventSources = [];
  const NativeEventSource = window.EventSource;
  window.EventSource = class extends NativeEventSource {
    constructor(...args) {
      super(...args);
      window.__bwEventSources.push(String(args[0]));
    }
  };
  const ids = new WeakMap();
  const last = new WeakMap();
  let next = 0;
  const take = (el) => {
    if (!ids.has(el)) ids.set(el, next++);
    const d = el.dataset;
    const entry = {
      seq: log.length, t: Date.now(), w: ids.get(el), connection: d.connection, status: d.status,
      done: Number(d.done), failed: Number(d.failed), total: Number(d.total),
      version: Number(d.version),
    };
    const key = JSON.stringify(
      [entry.connection, entry.status, entry.done, entry.failed, entry.version]);
    if (last.get(el) === key) return;
    last.set(el, key);
    log.push(entry);
  };
  // A jobs view row is logged as w "row:<job id>" (rows come in whole: their
  // first state is set before they join the page).
  const watched = (el) => el.classList && (el.classList.contains("bw-progress")
    || el.classList.contains("bw-job-row"));
  const takeRow = (el) => {
    if (!ids.has(el) && el.classList.contains("bw-job-row")) ids.set(el, `row:${el.dataset.jobId}`);
    take(el);
  };
  new MutationObserver((records) => {
    for (const r of records) {
      if (r.type === "attributes") {
        if (watched(r.target)) takeRow(r.target);
        continue;
      }
      for (const node of r.addedNodes) {
        if (!node.querySelectorAll) continue;
        if (watched(node)) takeRow(node);
        for (const el of node.querySelectorAll(".bw-job-row")) takeRow(el);
      }
    }
  }).observe(document, {
    subtree: true, attributes: true, childList: true,
    attributeFilter: ["data-connection", "data-status", "data-version", "data-done", "data-failed"],
  });
})();
"""

KERNEL_IDLE_JS = """
() => {
  const app = window.jupyterapp;
  const panel = app && app.shell && app.shell.currentWidget;
  const session = panel && panel.sessionContext && panel.sessionContext.session;
  return Boolean(panel && panel.content && panel.content.widgets && panel.content.widgets.length
    && session && session.kernel && session.kernel.status === "idle");
}
"""

RUN_ALL_JS = "() => window.jupyterapp.commands.execute('notebook:run-all-cells')"
SAVE_JS = "() => window.jupyterapp.commands.execute('docmanager:save')"

ADD_CELL_JS = """
async (source) => {
  const app = window.jupyterapp;
  const notebook = app.shell.currentWidget.content;
  const model = notebook.model;
  model.sharedModel.insertCell(model.cells.length, { cell_type: "code", source });
  notebook.activeCellIndex = model.cells.length - 1;
  await app.commands.execute("notebook:run-cell");
}
"""


EXECUTED_JS = """
(index) => {
  const panel = window.jupyterapp.shell.currentWidget;
  const cell = panel && panel.content && panel.content.widgets[index];
  return Boolean(cell && cell.model.executionCount);
}
"""

WARM_UP = "import batch_widget as bw"


@contextlib.contextmanager
def fresh_page(browser: Any) -> Iterator[Any]:
    """A page in a context of its own, with the attribute recorder; closed afterwards."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(60_000)
    page = context.new_page()
    install_recorder(page)
    try:
        yield page
    finally:
        context.close()


def submit_cell(items: int, seconds: float, **params: Any) -> str:
    """A cell that submits ``items`` items of ``seconds`` on 2 workers and shows the job."""
    fields = {"seconds": seconds, **params}
    return (
        f"job = bw.submit('batch_widget.processors:sleep', list(range({items})),\n"
        f"                params={fields!r}, max_workers=2)\njob"
    )


def install_recorder(page: Any) -> None:
    """Record widget attribute changes and EventSources on every load of ``page``."""
    page.add_init_script(RECORDER_JS)


def wait_for_kernel(page: Any, timeout: float = 90) -> None:
    """Wait until the current notebook's kernel is idle."""
    page.wait_for_function(KERNEL_IDLE_JS, timeout=timeout * 1000, polling=200)


def open_notebook(
    page: Any,
    lab: LabHandle,
    name: str,
    cells: list[str],
    *,
    via: str | None = None,
    run: bool = True,
    timeout: float = 90,
) -> None:
    """Write ``cells`` to notebook ``name``, open it (through ``via``), run all cells."""
    lab.write_notebook(name, cells)
    page.goto(lab.page_url(name, via=via), wait_until="domcontentloaded", timeout=timeout * 1000)
    wait_for_kernel(page, timeout)
    if run:
        run_all_cells(page)


def run_all_cells(page: Any) -> None:
    """Run every cell of the current notebook (returns once they are queued)."""
    page.evaluate(RUN_ALL_JS)


def save_notebook(page: Any) -> None:
    """Save the current notebook, widget outputs included."""
    page.evaluate(SAVE_JS)


def add_and_run_cell(page: Any, source: str) -> None:
    """Append a code cell to the current notebook and run it."""
    page.evaluate(ADD_CELL_JS, source)


def wait_for_executed(page: Any, index: int, timeout: float = 60) -> None:
    """Wait until cell ``index`` of the current notebook has run."""
    page.wait_for_function(EXECUTED_JS, arg=index, timeout=timeout * 1000, polling=100)


def open_warm_notebook(page: Any, lab: LabHandle, name: str, *, via: str | None = None) -> None:
    """Open notebook ``name`` with a kernel that has imported batch_widget.

    Tests create their job after this, so a job never runs out while the
    kernel is still starting.
    """
    open_notebook(page, lab, name, [WARM_UP], via=via)
    wait_for_executed(page, 0)


def show_cells(page: Any, cells: list[str]) -> None:
    """Append and run ``cells`` in the current notebook, one after the other."""
    for source in cells:
        add_and_run_cell(page, source)


def wait_for_status(
    page: Any, status: str, *, index: int = 0, timeout: float = 60
) -> dict[str, Any]:
    """Wait until widget ``index`` shows ``status``; return its attributes."""
    selector = f".bw-progress[data-status='{status}']"
    page.locator(".bw-progress").nth(index).and_(page.locator(selector)).wait_for(
        timeout=timeout * 1000
    )
    return attrs(page, index)


def attrs(page: Any, index: int = 0) -> dict[str, Any]:
    """The data attributes of widget ``index`` (numbers as ints)."""
    data: dict[str, str] = (
        page.locator(".bw-progress").nth(index).evaluate("el => ({...el.dataset})")
    )
    return {k: int(v) if v.lstrip("-").isdigit() else v for k, v in data.items()}


def recorded(page: Any, widget: int | str | None = None, since: int = 0) -> list[dict[str, Any]]:
    """The attribute changes logged so far (of one widget, or all) from log position ``since``."""
    log: list[dict[str, Any]] = page.evaluate(
        "(since) => (window.__bwLog || []).slice(since)", since
    )
    return [entry for entry in log if widget is None or entry["w"] == widget]


def log_position(page: Any) -> int:
    """How many changes the page has logged: a mark on the page's own timeline.

    Take it before breaking something; entries from it on are the ones logged
    after that (:func:`recorded`, :func:`connections` and :func:`first` take
    it as ``since``).
    """
    count: int = page.evaluate("() => (window.__bwLog || []).length")
    return count


def first(page: Any, predicate: Any, widget: int = 0, since: int = 0) -> dict[str, Any] | None:
    """The first logged change of ``widget`` from log position ``since`` matching ``predicate``."""
    for entry in recorded(page, widget, since):
        if predicate(entry):
            return entry
    return None


def fault_seen(page: Any, since: int, widget: int = 0) -> dict[str, Any] | None:
    """The entry in which ``widget`` first left ``live`` from log position ``since``.

    That is when the widget saw a fault, by its own clock; updates that were
    already on their way are logged ``live`` before it and are not the
    reaction to the fault.
    """
    return first(page, lambda entry: entry["connection"] != "live", widget, since)


def connections(page: Any, widget: int = 0, since: int = 0) -> list[str]:
    """The ``data-connection`` values ``widget`` went through from log position ``since``."""
    states: list[str] = []
    for entry in recorded(page, widget, since):
        if not states or states[-1] != entry["connection"]:
            states.append(entry["connection"])
    return states


def event_sources(page: Any) -> list[str]:
    """URLs of every EventSource the page has built since it loaded."""
    urls: list[str] = page.evaluate("() => window.__bwEventSources || []")
    return urls


def page_now(page: Any) -> float:
    """The page's ``Date.now()`` (ms): the clock of :func:`recorded` timestamps."""
    now: float = page.evaluate("() => Date.now()")
    return now


def wait_for(predicate: Any, timeout: float, interval: float = 0.1, what: str = "condition") -> Any:
    """Poll ``predicate()`` until truthy; return its value or raise ``TimeoutError``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not met within {timeout:.1f} s")
        time.sleep(interval)
