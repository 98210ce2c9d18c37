"""A token goes only to the server it belongs to: no redirect carries it elsewhere (SPEC §20).

Two real HTTP servers on two ports of 127.0.0.1: ``redirector`` answers every
request under ``/away/`` with a redirect to the same path on ``recorder``, and
``recorder`` records the headers of every request it receives (and answers
what the batch API would, so a leak would look like success). Under ``/moved/``
the redirector sends a GET to ``/here/`` on itself: the same server.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

import batch_widget.kernel.job as bw
from batch_widget.kernel import client as _client
from batch_widget.kernel.client import Client
from batch_widget.kernel.errors import ServerNotFound
from batch_widget.kernel.launcher import batch_api_status

TOKEN = "s3cret-token-of-the-first-server"

pytestmark = pytest.mark.timeout(60)


@dataclass
class Recorded:
    """What one server received: ``(method, path, headers)`` of each request."""

    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, method: str, path: str, headers: dict[str, str]) -> None:
        with self.lock:
            self.requests.append((method, path, headers))

    def authorizations(self) -> list[str]:
        with self.lock:
            return [h["authorization"] for _, _, h in self.requests if "authorization" in h]


class _Handler(http.server.BaseHTTPRequestHandler):
    """Records every request; redirects ``/away/`` to ``target`` and ``/moved/`` to ``/here/``."""

    recorded: Recorded
    target: str = ""  # the other server's origin, e.g. http://127.0.0.1:1234
    status: int = 302

    def answer(self) -> None:
        headers = {key.lower(): value for key, value in self.headers.items()}
        self.recorded.add(self.command, self.path, headers)
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        if self.path.startswith("/away/") and self.target:
            self.redirect(self.target + self.path)
        elif self.path.startswith("/moved/"):
            self.redirect(self.path.replace("/moved/", "/here/", 1))
        elif "/api/batch/events" in self.path:
            self.reply(b"retry: 1000\n\nevent: heartbeat\ndata: {}\n\n", "text/event-stream")
        elif "/results" in self.path:
            self.reply(
                b'{"index": 0, "status": "done", "result": 1, "error": null}\n',
                "application/x-ndjson",
            )
        else:
            self.reply(json.dumps({"jobs": [], "total": 0, "id": "x"}).encode(), "application/json")

    def redirect(self, location: str) -> None:
        self.send_response(self.status)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def reply(self, body: bytes, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # http.server names the methods
        self.answer()

    def do_POST(self) -> None:
        self.answer()

    def do_DELETE(self) -> None:
        self.answer()

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return


@dataclass
class Site:
    """A running server: its base URL and what it received."""

    origin: str
    recorded: Recorded
    handler: type[_Handler]


@contextlib.contextmanager
def serving(target: str = "", status: int = 302) -> Iterator[Site]:
    """Run a recording (and maybe redirecting) server on a free port of 127.0.0.1."""
    recorded = Recorded()
    handler = type(
        "Handler", (_Handler,), {"recorded": recorded, "target": target, "status": status}
    )
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield Site(f"http://127.0.0.1:{httpd.server_address[1]}", recorded, handler)
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(10)


@pytest.fixture
def recorder() -> Iterator[Site]:
    with serving() as site:
        yield site


@pytest.fixture
def redirector(recorder: Site) -> Iterator[Site]:
    with serving(target=recorder.origin) as site:
        yield site


def refusal(call: Callable[[], object]) -> BaseException | None:
    """What ``call`` raised (None if it returned): checked after what the servers received."""
    try:
        call()
    except Exception as error:  # the test names the class it wants
        return error
    return None


def assert_refused(
    error: BaseException | None, redirector: Site, recorder: Site, path: str
) -> None:
    """The message names what answered, where it pointed, and how to go there on purpose."""
    assert recorder.recorded.requests == [], "the request went on to the other server"
    assert isinstance(error, ServerNotFound), error
    assert type(error).__name__ == "RedirectRefused"
    text = str(error)
    assert f"{redirector.origin}/away/" in text  # the URL in use
    assert f"answered 302, a redirect to {recorder.origin}/away/{path}" in text, text
    assert f"bw.connect('{recorder.origin}/away/', token=...)" in text, text
    assert "nothing was sent there" in text


def test_the_discovery_probe_sends_no_token_across_a_redirect(
    redirector: Site, recorder: Site
) -> None:
    status = batch_api_status(f"{redirector.origin}/away/", TOKEN)
    assert recorder.recorded.authorizations() == [], "the token went to the other server"
    assert recorder.recorded.requests == []
    assert status == 302  # not 200: that URL is not a batch API the kernel may use
    assert redirector.recorded.authorizations() == [f"token {TOKEN}"]


def test_listing_jobs_refuses_the_redirect_with_what_answered(
    redirector: Site, recorder: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_client._default, "client", None)
    bw.connect(f"{redirector.origin}/away/", TOKEN)
    error = refusal(bw.jobs)
    assert recorder.recorded.authorizations() == [], "the token went to the other server"
    assert_refused(error, redirector, recorder, "api/batch/jobs")
    assert "another server (scheme, host or port)" in str(error)
    error = refusal(lambda: Client(f"{redirector.origin}/away/", TOKEN).list(limit=5))
    assert_refused(error, redirector, recorder, "api/batch/jobs?limit=5")


def test_a_cancel_is_neither_followed_nor_turned_into_a_get(
    redirector: Site, recorder: Site
) -> None:
    client = Client(f"{redirector.origin}/away/", TOKEN)
    error = refusal(lambda: client.cancel("0123456789ab"))
    assert recorder.recorded.authorizations() == [], "the token went to the other server"
    assert [r[0] for r in recorder.recorded.requests] == [], "the POST went on, as a GET"
    assert_refused(error, redirector, recorder, "api/batch/jobs/0123456789ab/cancel")
    assert "a POST is never re-sent nor turned into a GET" in str(error)
    assert [r[0] for r in redirector.recorded.requests] == ["POST"]


@pytest.mark.parametrize("status", [307, 308])
def test_a_write_is_not_re_sent_by_a_same_server_redirect(status: int) -> None:
    with serving(status=status) as site:
        client = Client(f"{site.origin}/moved/", TOKEN)
        error = refusal(lambda: client.delete("0123456789ab"))
        assert isinstance(error, ServerNotFound) and "a DELETE is never re-sent" in str(error)
        assert [(r[0], r[1]) for r in site.recorded.requests] == [
            ("DELETE", "/moved/api/batch/jobs/0123456789ab")
        ]


def test_the_results_stream_sends_no_token_across_a_redirect(
    redirector: Site, recorder: Site
) -> None:
    client = Client(f"{redirector.origin}/away/", TOKEN)
    error = refusal(lambda: list(client.results("0123456789ab")))
    assert_refused(error, redirector, recorder, "api/batch/jobs/0123456789ab/results")


def test_the_event_stream_sends_no_token_across_a_redirect(
    redirector: Site, recorder: Site
) -> None:
    client = Client(f"{redirector.origin}/away/", TOKEN)
    error = refusal(lambda: next(client.events(timeout=10)))
    assert_refused(error, redirector, recorder, "api/batch/events")


def test_a_get_follows_a_redirect_on_the_same_server() -> None:
    """Same scheme, host and port: the server the token was given for (the browser's rule).

    Following it keeps the diagnosis of a hub's or proxy's login page on that server.
    """
    with serving() as site:
        client = Client(f"{site.origin}/moved/", TOKEN)
        assert client.list() == {"jobs": [], "total": 0, "id": "x"}
        assert list(client.results("j")) == [
            {"index": 0, "status": "done", "result": 1, "error": None}
        ]
        assert next(client.events(timeout=10)).event == "heartbeat"
        assert batch_api_status(f"{site.origin}/moved/", TOKEN) == 200
        paths = [path.split("?")[0] for _, path, _ in site.recorded.requests]
        assert paths == [
            "/moved/api/batch/jobs",
            "/here/api/batch/jobs",
            "/moved/api/batch/jobs/j/results",
            "/here/api/batch/jobs/j/results",
            "/moved/api/batch/events",
            "/here/api/batch/events",
            "/moved/api/batch/jobs",
            "/here/api/batch/jobs",
        ]
        assert site.recorded.authorizations() == [f"token {TOKEN}"] * 8
