"""No request the widget makes carries the token in its URL (issue 22, item 10).

Reverse proxies keep URLs in their access logs. The widget sends the page's
token in the ``Authorization`` header of its fetches, and its EventSource (which
cannot send a header) rides on the login cookie jupyter_server set when the page
logged in with ``?token=``. A stream refused for want of that cookie falls back
through the recovery layers to polling, with the header, and goes live again
once a stream is accepted.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from typing import Any

import pytest
from _lab import WATCHDOG_TIMEOUT, Gate, LabHandle, widget_cell
from _page import (
    attrs,
    connections,
    event_sources,
    log_position,
    open_warm_notebook,
    show_cells,
    wait_for,
    wait_for_status,
)
from _proxy import FaultProxy

pytestmark = pytest.mark.e2e

#: Seconds for anything the widget does on its own (its timings are 1-3 s).
WITHIN = 60.0


def live(page: Any) -> bool:
    return bool(attrs(page)["connection"] == "live")


def test_the_widget_never_puts_the_token_in_a_url_and_polls_when_its_stream_is_refused(
    page: Any, lab: LabHandle, proxy: FaultProxy, gate: Gate, notebook_name: str
) -> None:
    requests: list[tuple[str, dict[str, str]]] = []
    page.on(
        "request",
        lambda request: (
            requests.append((request.url, request.headers))
            if "/api/batch/" in request.url
            else None
        ),
    )
    open_warm_notebook(page, lab, notebook_name, via=proxy.url)
    job = lab.create_job(range(8), seconds=0.05, gate=gate, max_workers=1, name="token")
    show_cells(page, [widget_cell(job["id"])])
    wait_for(lambda: live(page), WITHIN, what="the widget live on its stream")
    gate.release(2)
    wait_for(lambda: attrs(page)["done"] >= 2, WITHIN, what="2 items shown done")

    # The page keeps its token; its stream loses the login cookie: the server says 403
    # (Chromium reports no response for a refused EventSource: it fails the request).
    since = log_position(page)
    built = len(event_sources(page))
    proxy.drop_sse_cookies()
    wait_for(
        lambda: "polling" in connections(page, since=since),
        WITHIN,
        what=f"polling once the stream is down for {WATCHDOG_TIMEOUT} ms",
    )
    gate.release(5)
    wait_for(lambda: attrs(page)["done"] >= 5, WITHIN, what="progress shown by polls alone")
    assert attrs(page)["connection"] != "live", "no stream was accepted meanwhile"
    assert len(event_sources(page)) > built + 1, "each refused stream was built again"

    # What refused those streams: no cookie and no token is a 403 on the events route.
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(lab.url + "api/batch/events", timeout=WITHIN)
    assert refused.value.code == 403

    proxy.restore()  # the cookie goes with the stream again: it is accepted
    wait_for(lambda: live(page), WITHIN, what="the widget live again")
    gate.open()
    shown = wait_for_status(page, "completed", timeout=WITHIN)
    assert shown["done"] == 8

    urls = [url for url, _ in requests] + event_sources(page)
    assert any("api/batch/events" in url for url in urls)
    assert [url for url in urls if "token=" in url] == []
    polls = [headers for url, headers in requests if f"/api/batch/jobs/{job['id']}" in url]
    assert polls, "the widget fetched its job"
    assert all(headers.get("authorization") == f"token {lab.token}" for headers in polls)
