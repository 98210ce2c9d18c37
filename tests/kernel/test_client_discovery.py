"""Kernel-side transport without a Jupyter server: discovery, HTTP errors, SSE reading.

Discovery reads real files in temporary runtime dirs; only the environment is
set per test. HTTP and SSE run against a tiny real ``http.server`` in a thread.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from _batch_server import stop_batch_servers
from _recorder import Recorder, other_user

from batch_widget.kernel import client as _client
from batch_widget.kernel.client import (
    Client,
    ServerNotFound,
    ServerUnreachable,
    SSEParser,
    connect,
    default_client,
    discover,
)
from batch_widget.kernel.job import Job
from batch_widget.protocol import (
    BatchError,
    InvalidRequest,
    JobNotFound,
    JobStateConflict,
    PermissionDenied,
)

DISCOVERY_ENV = (
    "BATCH_WIDGET_URL",
    "BATCH_WIDGET_TOKEN",
    "JPY_PARENT_PID",
    "JUPYTER_RUNTIME_DIR",
    "JUPYTERHUB_SERVICE_PREFIX",
    "JUPYTERHUB_API_TOKEN",
    "JUPYTERHUB_SERVICE_URL",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Start every test from an empty discovery environment and no default client."""
    for name in DISCOVERY_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    monkeypatch.setattr(_client._default, "client", None)  # restored after the test


@pytest.fixture
def other_pid() -> Iterator[int]:
    """The pid of a live process that is not this one."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield proc.pid
    proc.kill()
    proc.wait()


@pytest.fixture
def dead_pid() -> int:
    """A pid that belonged to a process that has exited."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def write_server_file(runtime: Path, pid: int, port: int, **extra: Any) -> None:
    """Write a ``jpserver-<pid>.json`` the way ``ServerApp.write_server_info_file`` does."""
    runtime.mkdir(parents=True, exist_ok=True)
    base_url = extra.pop("base_url", "/")
    info = {
        "url": f"http://localhost:{port}{base_url}",
        "hostname": "localhost",
        "port": port,
        "sock": "",
        "secure": False,
        "base_url": base_url,
        "token": f"token-{port}",
        "root_dir": str(runtime),
        "password": False,
        "pid": pid,
        "version": "2.14.0",
    }
    info.update(extra)
    (runtime / f"jpserver-{pid}.json").write_text(json.dumps(info), encoding="utf-8")


# --------------------------------------------------------------------------- discovery


def test_picks_the_server_that_launched_the_kernel(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, other_pid: int, dead_pid: int
) -> None:
    runtime = tmp_path / "runtime"
    write_server_file(runtime, other_pid, 8001)
    write_server_file(runtime, dead_pid, 8002)
    write_server_file(runtime, 1 if other_pid != 1 else 2, 8003)
    write_server_file(runtime, 0, 8009)  # nonsense pid
    (runtime / "jpserver-garbage.json").write_text("{not json", encoding="utf-8")
    write_server_file(runtime, _own_pid(), 8004, base_url="/user/a%40b/")
    monkeypatch.setenv("JPY_PARENT_PID", str(_own_pid()))

    info = discover()

    assert info.url == "http://localhost:8004/user/a%40b/"
    assert info.token == "token-8004"
    monkeypatch.setenv("JPY_PARENT_PID", str(other_pid))
    assert discover().url == "http://localhost:8001/"


def test_builds_the_url_when_the_file_has_none(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    runtime = tmp_path / "runtime"
    write_server_file(runtime, _own_pid(), 8443, url="", secure=True, hostname="h", base_url="/x/")
    monkeypatch.setenv("JPY_PARENT_PID", str(_own_pid()))
    assert discover().url == "https://h:8443/x/"


def test_ignores_a_stale_file_of_a_dead_server(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, dead_pid: int
) -> None:
    """The dead server's file is passed over, and the batch server (SPEC §12) is used."""
    write_server_file(tmp_path / "runtime", dead_pid, 8002)
    monkeypatch.setenv("JPY_PARENT_PID", str(dead_pid))
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "data"))
    try:
        info = discover()
    finally:
        stop_batch_servers({"JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime")})
    assert info.source == "batch server"
    assert info.url != "http://localhost:8002/"


def test_env_url_wins_over_runtime_files(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    write_server_file(tmp_path / "runtime", _own_pid(), 8004)
    monkeypatch.setenv("JPY_PARENT_PID", str(_own_pid()))
    monkeypatch.setenv("BATCH_WIDGET_URL", "http://example.test:9000/jupyter")
    monkeypatch.setenv("BATCH_WIDGET_TOKEN", "secret")

    info = discover()

    assert (info.url, info.token, info.source) == (
        "http://example.test:9000/jupyter/",
        "secret",
        "env",
    )
    assert default_client().url == "http://example.test:9000/jupyter/"


def test_explicit_connect_wins_over_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATCH_WIDGET_URL", "http://env.test/")
    client = connect("http://explicit.test:1/base", "tok")
    assert default_client() is client
    assert (client.url, client.token) == ("http://explicit.test:1/base/", "tok")
    assert connect().url == "http://env.test/"  # connect() with no url discovers again


def test_jupyterhub_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JUPYTERHUB_SERVICE_PREFIX", "/user/ann/")
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "hub-token")
    monkeypatch.setenv("JUPYTERHUB_SERVICE_URL", "http://0.0.0.0:45678/user/ann/")
    info = discover()
    assert (info.url, info.token, info.source) == (
        "http://127.0.0.1:45678/user/ann/",
        "hub-token",
        "jupyterhub",
    )


def test_without_the_service_url_the_hub_token_goes_to_no_guessed_server(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Another user's server listens on 127.0.0.1:8888, the port discovery used to guess
    when ``JUPYTERHUB_SERVICE_URL`` is missing: it gets no request; the batch server is
    used, and the log says why the Hub's server was not."""
    squatter = Recorder(other_user().pw_name, port=8888)
    monkeypatch.setenv("JUPYTERHUB_SERVICE_PREFIX", "/user/ann/")
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "hub-token")
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "data"))
    caplog.set_level(logging.INFO, logger="batch_widget")
    try:
        info = discover()
    finally:
        stop_batch_servers({"JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime")})
        squatter.stop()
    assert squatter.requests() == []
    assert info.source == "batch server"
    assert "JUPYTERHUB_SERVICE_URL is not set" in caplog.text


def test_parent_server_wins_over_jupyterhub(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    write_server_file(tmp_path / "runtime", _own_pid(), 8004)
    monkeypatch.setenv("JPY_PARENT_PID", str(_own_pid()))
    monkeypatch.setenv("JUPYTERHUB_SERVICE_PREFIX", "/user/ann/")
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "hub-token")
    assert discover().url == "http://localhost:8004/"


def test_nothing_found_says_how_to_fix_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Nothing is found only when the batch server cannot start either (here: its
    runtime dir would be inside a file)."""
    (tmp_path / "a-file").write_text("not a folder")
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "a-file" / "runtime"))
    with pytest.raises(ServerNotFound) as caught:
        default_client()
    message = str(caught.value)
    assert "the batch server cannot start" in message
    assert "bw.connect(url, token)" in message
    assert "BATCH_WIDGET_URL" in message
    assert "BATCH_WIDGET_TOKEN" in message
    assert "batch_widget extension" in message
    assert isinstance(caught.value, BatchError)


def _own_pid() -> int:
    return os.getpid()


# --------------------------------------------------------------------------- a real tiny server

Script = Callable[[BaseHTTPRequestHandler], None]


class _Handler(BaseHTTPRequestHandler):
    script: Script
    seen: list[dict[str, Any]]

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.seen.append(
            {"method": self.command, "path": self.path, "headers": dict(self.headers), "body": body}
        )
        self.script(self)

    def do_GET(self) -> None:
        """Answer with the test's script."""
        self._serve()

    def do_POST(self) -> None:
        """Answer with the test's script."""
        self._serve()

    def do_DELETE(self) -> None:
        """Answer with the test's script."""
        self._serve()

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""


@pytest.fixture
def serve() -> Iterator[Callable[..., tuple[str, list[dict[str, Any]]]]]:
    """Start a local HTTP server answering with ``script``; return (url, requests seen)."""
    servers: list[ThreadingHTTPServer] = []

    def start(script: Script, protocol: str = "HTTP/1.0") -> tuple[str, list[dict[str, Any]]]:
        seen: list[dict[str, Any]] = []
        handler = type(
            "Handler",
            (_Handler,),
            {"script": staticmethod(script), "seen": seen, "protocol_version": protocol},
        )
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/base%40x/", seen

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def answer(status: int, payload: Any, content_type: str = "application/json") -> Script:
    """A script that answers every request with one fixed response."""

    def script(handler: BaseHTTPRequestHandler) -> None:
        raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(raw)))
        handler.end_headers()
        handler.wfile.write(raw)

    return script


def test_requests_carry_the_token_and_the_base_url(serve: Any) -> None:
    url, seen = serve(answer(201, {"id": "j1", "status": "queued"}))
    snap = Client(url, "t0k").create({"processor": "m:f", "items": [1]})
    assert snap["id"] == "j1"
    request = seen[0]
    assert request["method"] == "POST"
    assert request["path"] == "/base%40x/api/batch/jobs"
    assert request["headers"]["Authorization"] == "token t0k"
    assert json.loads(request["body"]) == {"processor": "m:f", "items": [1]}


def test_list_and_items_send_their_query(serve: Any) -> None:
    url, seen = serve(answer(200, {"items": [], "total": 0}))
    client = Client(url)
    client.list(status="failed", limit=5)
    client.items("a/b", status="done", offset=10, limit=2)
    assert seen[0]["path"] == "/base%40x/api/batch/jobs?status=failed&limit=5"
    assert seen[1]["path"] == "/base%40x/api/batch/jobs/a%2Fb/items?status=done&offset=10&limit=2"
    assert "Authorization" not in seen[0]["headers"]


def test_all_items_pages_through(serve: Any) -> None:
    records = [{"index": i, "status": "done", "result": i * 10} for i in range(7)]

    def script(handler: BaseHTTPRequestHandler) -> None:
        query = dict(p.split("=") for p in handler.path.split("?")[1].split("&"))
        after, limit = int(query["after"]), int(query["limit"])
        answer(200, {"items": records[after + 1 : after + 1 + limit], "total": 7})(handler)

    url, seen = serve(script)
    got = list(Client(url).all_items("j", page=3))
    assert [r["result"] for r in got] == [i * 10 for i in range(7)]
    assert len(seen) == 3


@pytest.mark.parametrize(
    ("status", "error_class"),
    [
        (400, InvalidRequest),
        (403, PermissionDenied),
        (404, JobNotFound),
        (409, JobStateConflict),
        (422, BatchError),
    ],
)
def test_error_answers_become_batch_errors(
    serve: Any, status: int, error_class: type[BatchError]
) -> None:
    url, _ = serve(answer(status, {"message": f"server says {status}", "reason": None}))
    with pytest.raises(error_class) as caught:
        Client(url).cancel("j1")
    assert type(caught.value) is error_class
    assert str(caught.value) == f"server says {status}"
    assert caught.value.status_code == status
    if isinstance(caught.value, JobNotFound):
        assert caught.value.job_id == "j1"


def test_a_gateway_error_page_is_unreachable_and_keeps_its_status(serve: Any) -> None:
    url, _ = serve(answer(502, b"<html>Bad Gateway</html>", "text/html"))
    with pytest.raises(ServerUnreachable, match="answered 502 Bad Gateway from a proxy") as caught:
        Client(url).get("j1")
    assert caught.value.status_code == 502


def test_a_non_json_error_is_not_batch_widget(serve: Any) -> None:
    url, _ = serve(answer(500, b"<html>Internal Server Error</html>", "text/html"))
    with pytest.raises(ServerNotFound, match="GET api/batch/jobs/j1 answered 500 with text/html"):
        Client(url).get("j1")


def test_an_unreachable_server_is_a_connection_error(serve: Any) -> None:
    url, _ = serve(answer(200, {}))
    port = int(url.split(":")[2].split("/")[0])
    with socket.socket() as probe:  # a port that nobody listens on
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    assert free != port
    with pytest.raises(ServerUnreachable):
        Client(f"http://127.0.0.1:{free}/").get("j1")


# --------------------------------------------------------------------------- SSE


def test_parser_handles_every_line_ending_and_split() -> None:
    stream = (
        "retry: 5000\r\n\r\n"
        ": a comment\n"
        'event: heartbeat\ndata: {"time": 1}\n\n'
        "id: e-1\revent: progress\rdata: first line\rdata:second line\r\r"
        "data: é ü\n\n"
        "id: e-2\nevent: complete\ndata\n\n"
        "event: empty\n\n"
    ).encode()
    whole = SSEParser().feed(stream)
    for size in (1, 2, 3, 7):
        parser = SSEParser()
        pieces = [parser.feed(stream[i : i + size]) for i in range(0, len(stream), size)]
        assert [e for piece in pieces for e in piece] == whole
        assert parser.retry == 5000
    assert [(e.id, e.event, e.data) for e in whole] == [
        (None, "heartbeat", '{"time": 1}'),
        ("e-1", "progress", "first line\nsecond line"),
        ("e-1", "message", "é ü"),
        ("e-2", "complete", ""),
    ]


def sse_script(parts: list[bytes], pause: float = 0.02, chunked: bool = False) -> Script:
    """A script that streams ``parts`` one write at a time, then closes."""

    def script(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "text/event-stream")
        handler.send_header("Cache-Control", "no-cache")
        if chunked:
            handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client left
            for part in parts:
                data = b"%x\r\n%s\r\n" % (len(part), part) if chunked else part
                handler.wfile.write(data)
                handler.wfile.flush()
                time.sleep(pause)
            if chunked:
                handler.wfile.write(b"0\r\n\r\n")
        handler.close_connection = True

    return script


SNAP = json.dumps({"id": "j1", "status": "processing", "done": 1}).encode()
STREAM_PARTS = [
    b"retry: 5000\n\n",
    b": keep-alive comment\n\n",
    b'event: heartbeat\ndata: {"time": 1.5, "epoch": "ep"}\n\n',
    b"id: ep-1\nevent: progr",
    b"ess\ndata: " + SNAP[:10],
    SNAP[10:] + b"\n",
    b"\n",
    b'id: ep-2\nevent: complete\ndata: {"id": "j1",\ndata:  "status": "completed"}\n\n',
]


@pytest.mark.parametrize("chunked", [False, True], ids=["close-delimited", "chunked"])
def test_events_from_a_real_stream(serve: Any, chunked: bool) -> None:
    protocol = "HTTP/1.1" if chunked else "HTTP/1.0"
    url, seen = serve(sse_script(STREAM_PARTS, chunked=chunked), protocol)

    events = list(Client(url, "tk").events(["j1", "j 2"], last_event_id="ep-0", timeout=5))

    assert [e.event for e in events] == ["heartbeat", "progress", "complete"]
    assert events[0].json() == {"time": 1.5, "epoch": "ep"}
    assert events[1].id == "ep-1"
    assert events[1].json() == json.loads(SNAP)
    assert events[2].json() == {"id": "j1", "status": "completed"}
    request = seen[0]
    assert request["path"] == "/base%40x/api/batch/events?job=j1&job=j+2"
    assert request["headers"]["Last-Event-ID"] == "ep-0"
    assert request["headers"]["Authorization"] == "token tk"
    assert request["headers"]["Accept"] == "text/event-stream"


def test_a_dropped_stream_ends_the_generator(serve: Any) -> None:
    parts = [b'id: ep-1\nevent: progress\ndata: {"id": "j1"}\n\n', b"id: ep-2\nevent: prog"]
    url, _ = serve(sse_script(parts))
    events = list(Client(url).events(["j1"], timeout=5))
    assert [e.id for e in events] == ["ep-1"]  # the half event is dropped with the link


def test_a_silent_stream_times_out(serve: Any) -> None:
    url, _ = serve(sse_script([b": hello\n\n", b""], pause=2.0))
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        list(Client(url).events(["j1"], timeout=0.5))
    assert time.monotonic() - started < 1.9


def test_an_error_status_on_the_stream_is_raised(serve: Any) -> None:
    url, _ = serve(answer(403, {"message": "no batch permission"}))
    with pytest.raises(PermissionDenied, match="no batch permission"):
        next(Client(url).events())


# --------------------------------------------------------------------------- Job.wait


def snapshot(status: str, version: int) -> dict[str, Any]:
    """A job snapshot of job ``j1`` as the server would send it."""
    return {"id": "j1", "name": "n", "processor": "m:f", "status": status, "total": 2,
            "done": 2 if status == "completed" else 0, "failed": 0, "pending": 0,
            "version": version, "created_at": None, "started_at": None, "finished_at": None,
            "rate": None, "eta": None, "error": None}  # fmt: skip


def test_wait_reconnects_with_the_last_event_id(serve: Any) -> None:
    streams: list[str | None] = []

    def script(handler: BaseHTTPRequestHandler) -> None:
        if "/events" not in handler.path:
            answer(200, snapshot("processing", 1))(handler)
            return
        streams.append(handler.headers.get("Last-Event-ID"))
        if len(streams) == 1:  # first stream: one progress event, then the link drops
            event = json.dumps(snapshot("processing", 2)).encode()
            sse_script([b"id: ep-7\nevent: progress\ndata: " + event + b"\n\n"])(handler)
        else:
            event = json.dumps(snapshot("completed", 3)).encode()
            sse_script([b"id: ep-8\nevent: complete\ndata: " + event + b"\n\n"])(handler)

    url, _ = serve(script)
    job = Job("j1", Client(url))

    snap = job.wait(timeout=10)

    assert (snap["status"], snap["version"]) == ("completed", 3)
    assert streams == [None, "ep-7"]


def test_wait_falls_back_to_polling_when_the_stream_fails(serve: Any) -> None:
    polls: list[float] = []

    def script(handler: BaseHTTPRequestHandler) -> None:
        if "/events" in handler.path:
            answer(500, {"message": "broadcaster down"})(handler)
            return
        polls.append(time.monotonic())
        status = "completed" if len(polls) >= 6 else "processing"
        answer(200, snapshot(status, len(polls)))(handler)

    url, seen = serve(script)
    job = Job("j1", Client(url))

    snap = job.wait(timeout=30)

    assert snap["status"] == "completed"
    stream_tries = [r for r in seen if "/events" in r["path"]]
    assert len(stream_tries) == 3  # then it stops trying and only polls
    assert 0.5 < polls[-1] - polls[-2] < 2.0  # about one poll a second


def test_wait_times_out_on_a_job_that_never_ends(serve: Any) -> None:
    def script(handler: BaseHTTPRequestHandler) -> None:
        if "/events" in handler.path:
            sse_script([b'event: heartbeat\ndata: {"time": 1}\n\n'] * 20, pause=0.1)(handler)
        else:
            answer(200, snapshot("processing", 1))(handler)

    url, _ = serve(script)
    job = Job("j1", Client(url))
    started = time.monotonic()
    with pytest.raises(TimeoutError, match="still processing") as caught:
        job.wait(timeout=0.6)
    assert 0.5 < time.monotonic() - started < 3
    assert caught.value.job is job  # type: ignore[attr-defined]
