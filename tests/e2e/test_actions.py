"""What a user does in the widget and what they see, in a real JupyterLab and Chromium.

Cancel, Retry, the output links and a refused action, each clicked in the page
(through the :class:`FaultProxy`, faults off unless a test sets one) and checked
against the data attributes of the widget root, its buttons and its message,
then against the server's own snapshot over REST.

A job a test clicks on is held by a :class:`Gate`, so it is still running (or
still waiting to rerun) when the click lands, however slow the machine; the
widget's timeline is read from a log position taken before the click, and
time bounds derive from the widget's settings in ``_lab`` plus ``SLACK``.
"""

from __future__ import annotations

import contextlib
import gzip
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
from _lab import WATCHDOG_INTERVAL, WATCHDOG_TIMEOUT, Gate, LabHandle, widget_cell
from _page import (
    attrs,
    first,
    log_position,
    open_warm_notebook,
    page_now,
    recorded,
    show_cells,
    wait_for,
    wait_for_status,
)
from _proxy import FaultProxy

pytestmark = pytest.mark.e2e

GZIP = "batch_widget.processors:gzip_file"
TERMINAL = {"completed", "failed", "cancelled", "interrupted"}
SLOW_ITEMS = 40
HELD = 4  # items a held job has finished when the user acts on it
SLACK = 2.0  # s: two busy shared cores, on top of what the settings promise
# A widget shows a snapshot pushed over SSE at once; at worst its watchdog polls
# once the job has been quiet for watchdog_timeout (checked every watchdog_interval).
SHOWN_WITHIN = (WATCHDOG_TIMEOUT + WATCHDOG_INTERVAL) / 1000 + SLACK
FIELDS = ("status", "done", "failed", "total", "version")


def slow_job(lab: LabHandle, gate: Gate, n: int, name: str) -> dict[str, Any]:
    """A job a user has time to act on: ``n`` gated items of 0.3 s on 2 workers.

    It runs only as far as ``gate`` lets it: the test decides when it ends.
    """
    return lab.create_job(range(n), seconds=0.3, max_workers=2, name=name, gate=gate)


def widget(page: Any) -> Any:
    return page.locator(".bw-progress")


def settled(lab: LabHandle, job_id: str, timeout: float = 30) -> dict[str, Any]:
    """The server's snapshot once the job is terminal (a terminal job does not change)."""
    return lab.wait_job(job_id, timeout)


def assert_agrees_with_server(
    page: Any, lab: LabHandle, job_id: str, *, within: float = SHOWN_WITHIN
) -> dict[str, Any]:
    """The widget ends up showing exactly the server's final snapshot; return it.

    The server is read once the job is terminal; the widget gets ``within``
    seconds (what its settings promise) to show that snapshot, then every
    count must match, and the server must not have moved since.
    """
    server = settled(lab, job_id)
    with contextlib.suppress(TimeoutError):  # the exact comparison below says what differs
        wait_for(
            lambda: attrs(page)["version"] == server["version"],
            timeout=within,
            what=f"widget at the server's version {server['version']}",
        )
    shown = attrs(page)
    assert {k: shown[k] for k in FIELDS} == {k: server[k] for k in FIELDS}
    again = lab.job(job_id)
    assert {k: again[k] for k in FIELDS} == {k: server[k] for k in FIELDS}, "terminal, yet moved"
    return shown


def wait_held(page: Any, lab: LabHandle, job_id: str, count: int) -> dict[str, Any]:
    """Wait until the job waits at its gate after ``count`` items and the widget shows it."""

    def current() -> dict[str, Any] | None:
        server = lab.job(job_id)
        held = server["done"] + server["failed"] == count
        return server if held and attrs(page)["version"] == server["version"] else None

    return wait_for(current, 60, what=f"the job held at {count} items, shown")


def click_and_answer(page: Any, button: Any, action: str) -> Any:
    """Click ``button`` and return the server's answer to the widget's ``action`` request."""
    with page.expect_response(
        lambda response: (
            response.request.method == "POST" and response.url.split("?")[0].endswith(f"/{action}")
        )
    ) as answer:
        button.click()
    return answer.value


def wait_processing_with_progress(page: Any, done: int = 2, timeout: float = 60) -> None:
    """Wait until the widget is live, processing, with at least ``done`` items done."""
    live = page.locator(".bw-progress[data-connection=live][data-status=processing]")
    widget(page).and_(live).wait_for(timeout=timeout * 1000)
    wait_for(lambda: attrs(page)["done"] >= done, timeout, what=f"{done} items done")


# -- Cancel -----------------------------------------------------------------------------


def test_cancel_button_stops_a_running_job(
    page: Any, lab: LabHandle, proxy: FaultProxy, notebook_name: str, gate: Gate
) -> None:
    open_warm_notebook(page, lab, notebook_name, via=proxy.url)
    gate.release(HELD)
    job = slow_job(lab, gate, SLOW_ITEMS, "to cancel")
    show_cells(page, [widget_cell(job["id"])])
    wait_processing_with_progress(page)

    root = widget(page)
    cancel, retry = root.locator("button.bw-cancel"), root.locator("button.bw-retry")
    assert cancel.is_visible() and cancel.is_enabled()
    assert retry.is_hidden()
    mark = log_position(page)
    answer = click_and_answer(page, cancel, "cancel")
    assert answer.status == 200, answer.text()
    # Cancel is in: the items running now may finish, no other starts.
    gate.open()

    shown = wait_for_status(page, "cancelled", timeout=30)
    assert shown["total"] == SLOW_ITEMS
    assert shown["done"] + shown["failed"] < shown["total"], shown
    cancel.wait_for(state="hidden", timeout=5000)
    assert retry.is_visible() and retry.is_enabled()
    assert root.locator(".bw-message").inner_text() == ""
    # The click, not the job running out, ended it: the widget went from
    # processing straight to cancelled, well short of the total.
    after = [e["status"] for e in recorded(page, 0, since=mark)]
    assert "completed" not in after, after
    final = assert_agrees_with_server(page, lab, job["id"])
    assert final["status"] == "cancelled"
    done, failed, total = final["done"], final["failed"], final["total"]
    counts = f"{done} done · {failed} failed · {total - done - failed} not run of {total}"
    assert root.locator(".bw-counts").inner_text() == counts


# -- Retry ------------------------------------------------------------------------------


def test_retry_button_reruns_a_cancelled_job_to_completion(
    page: Any, lab: LabHandle, proxy: FaultProxy, notebook_name: str, gate: Gate
) -> None:
    open_warm_notebook(page, lab, notebook_name, via=proxy.url)
    job = slow_job(lab, gate, 30, "to retry")  # the gate is closed: no item ends
    lab.api("POST", f"api/batch/jobs/{job['id']}/cancel", {})
    gate.open()  # the running items end; cancelled, no other starts
    before = settled(lab, job["id"])
    gate.release(0)  # the rerun waits at the gate until the widget has shown it
    assert before["status"] == "cancelled" and before["done"] < before["total"]
    show_cells(page, [widget_cell(job["id"])])

    shown = wait_for_status(page, "cancelled", timeout=30)
    assert (shown["done"], shown["version"]) == (before["done"], before["version"])
    root = widget(page)
    cancel, retry = root.locator("button.bw-cancel"), root.locator("button.bw-retry")
    assert retry.is_visible() and cancel.is_hidden()
    mark = log_position(page)
    answer = click_and_answer(page, retry, "retry")
    assert answer.status == 200, answer.text()

    # Back to active: Cancel offered again, Retry gone, counts below the total.
    active = page.locator(".bw-progress[data-status=queued], .bw-progress[data-status=processing]")
    root.and_(active).wait_for(timeout=15_000)
    cancel.wait_for(state="visible", timeout=5000)
    assert retry.is_hidden()
    assert attrs(page)["done"] < 30
    gate.open()
    final = wait_for_status(page, "completed", timeout=60)
    statuses = [e["status"] for e in recorded(page, 0, since=mark)]
    assert statuses[-1] == "completed"
    assert {"queued", "processing"} & set(statuses), statuses
    assert statuses.index("completed") > max(
        statuses.index(s) for s in ("queued", "processing") if s in statuses
    )
    assert (final["done"], final["failed"], final["total"]) == (30, 0, 30)
    assert final["version"] > before["version"]
    agreed = assert_agrees_with_server(page, lab, job["id"])
    assert agreed["done"] == agreed["total"] == 30
    # Nothing left to retry or cancel, and no error shown.
    assert cancel.is_hidden() and retry.is_hidden()
    assert root.locator(".bw-message").inner_text() == ""


# -- Output files -----------------------------------------------------------------------


def test_output_files_are_links_that_open_in_jupyterlab(
    page: Any, lab: LabHandle, proxy: FaultProxy, notebook_name: str
) -> None:
    folder = f"{Path(notebook_name).stem} out"  # a space, escaped in the links
    sources = [f"{folder}/a.txt", f"{folder}/b c.txt", f"{folder}/nested/d.txt"]
    for index, relative in enumerate(sources):
        path = lab.root_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"file {index}\n" * 100, encoding="utf-8")
    open_warm_notebook(page, lab, notebook_name, via=proxy.url)
    job = lab.create_job(
        [str(lab.root_dir / relative) for relative in sources], name="gzip", processor=GZIP
    )
    show_cells(page, [widget_cell(job["id"])])

    shown = wait_for_status(page, "completed", timeout=60)
    assert (shown["done"], shown["failed"], shown["total"]) == (3, 0, 3)
    links = widget(page).locator("a.bw-output")
    wait_for(lambda: links.count() == len(sources), 15, what="one output link per file")
    outputs = [f"{relative}.gz" for relative in sources]
    assert all((lab.root_dir / output).is_file() for output in outputs)
    # Paths relative to the Lab's root, each segment escaped, under the page's base_url.
    expected = [f"{lab.base_url}lab/tree/{urllib.parse.quote(output)}" for output in outputs]
    assert links.evaluate_all("els => els.map(e => e.getAttribute('href'))") == expected
    assert links.all_inner_texts() == outputs

    # Following a link opens that file in JupyterLab, on the same origin.
    target = outputs[1]
    with page.context.expect_page(timeout=30_000) as opened:
        links.nth(1).click()
    tab = opened.value
    tab.wait_for_load_state("domcontentloaded")
    origin = proxy.url.rstrip("/")
    assert tab.url == origin + expected[1]
    name = target.rsplit("/", 1)[-1]
    # The Lab names its window after the current document: this file's tab.
    tab.wait_for_function(
        "(name) => document.title === `${name} - JupyterLab`",
        arg=name,
        timeout=60_000,
        polling=100,
    )
    contents_url = f"{origin}{lab.base_url}api/contents/{urllib.parse.quote(target)}"
    contents = tab.request.get(contents_url + "?content=0")
    assert contents.status == 200, contents.text()
    assert contents.json()["path"] == target
    tab.close()

    # Each output can also be downloaded as it is (JupyterLab cannot show a .gz).
    downloads = widget(page).locator("a.bw-download")
    expected_downloads = [f"{lab.base_url}files/{urllib.parse.quote(o)}" for o in outputs]
    assert downloads.evaluate_all("els => els.map(e => e.getAttribute('href'))") == (
        expected_downloads
    )
    # Fetched from the page itself, with the page's own credentials, as a click would.
    fetched = page.evaluate(
        """async (href) => {
            const answer = await fetch(href);
            return [answer.status, Array.from(new Uint8Array(await answer.arrayBuffer()))];
        }""",
        expected_downloads[1],
    )
    assert fetched[0] == 200
    assert gzip.decompress(bytes(fetched[1])) == (lab.root_dir / sources[1]).read_bytes()


# -- A refused action -------------------------------------------------------------------

# The widget learns nothing of the job while its job events are held back: its
# view stays stale, Cancel on screen, while the job has ended. Its watchdog would
# poll once the job has been quiet this long: the product's default, 60 s, far
# beyond anything the test does in between (checked on the page's clock below).
STALE_FOR = 60_000


def test_refused_cancel_shows_a_message_and_the_widget_catches_up(
    page: Any, lab: LabHandle, proxy: FaultProxy, notebook_name: str, gate: Gate
) -> None:
    open_warm_notebook(page, lab, notebook_name, via=proxy.url)
    gate.release(HELD)
    job = slow_job(lab, gate, SLOW_ITEMS, "race")
    show_cells(page, [widget_cell(job["id"], watchdog_timeout=STALE_FOR)])
    wait_processing_with_progress(page)
    wait_held(page, lab, job["id"], HELD)  # nothing on its way to the widget from here

    # The job ends elsewhere (another tab, the kernel API) while this page's
    # job events are held up; heartbeats still flow, so the stream looks live.
    mark = log_position(page)
    proxy.silence_sse(heartbeats=True)
    lab.api("POST", f"api/batch/jobs/{job['id']}/cancel", {})
    gate.open()  # the running items end; no other starts
    assert settled(lab, job["id"])["status"] == "cancelled"

    root = widget(page)
    cancel, message = root.locator("button.bw-cancel"), root.locator(".bw-message")
    shown = attrs(page)
    assert shown["status"] == "processing", shown  # still stale: the user sees Cancel
    assert cancel.is_visible() and message.inner_text() == ""
    # The widget's last update came at or after its last logged change, so its
    # watchdog cannot poll before that change + STALE_FOR: the page's clock says
    # how far inside the window the click is.
    last_change = recorded(page, 0)[-1]
    clicked_at = page_now(page)
    assert clicked_at - last_change["t"] < STALE_FOR - SLACK * 1000, "too slow for the window"
    answer = click_and_answer(page, cancel, "cancel")
    assert answer.status == 409, answer.text()

    message.filter(has_text="Cancel failed").wait_for(timeout=10_000)
    text = message.inner_text()
    assert "already cancelled" in text and "(409)" in text, text
    # The refusal means the widget was stale: it polls at once and shows the
    # truth, with job events still held up and long before its watchdog would.
    final = wait_for_status(page, "cancelled", timeout=30)
    caught = first(page, lambda e: e["status"] == "cancelled", since=mark)
    assert caught is not None
    assert (caught["t"] - clicked_at) / 1000 <= SLACK, "not polled at once after the refusal"
    assert caught["t"] - last_change["t"] < STALE_FOR, "caught up by the watchdog"
    assert final["done"] + final["failed"] < final["total"]
    assert final["total"] == SLOW_ITEMS
    proxy.restore()
    assert_agrees_with_server(page, lab, job["id"])
    retry = root.locator("button.bw-retry")
    cancel.wait_for(state="hidden", timeout=5000)
    assert retry.is_visible()

    # And it still acts: Retry runs the rest, and the old message goes away.
    answer = click_and_answer(page, retry, "retry")
    assert answer.status == 200, answer.text()
    wait_for_status(page, "completed", timeout=60)
    final = assert_agrees_with_server(page, lab, job["id"])
    assert final["done"] == final["total"] == SLOW_ITEMS
    assert message.inner_text() == ""
