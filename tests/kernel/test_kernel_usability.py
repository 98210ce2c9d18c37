"""What a newcomer meets in the Python API: the errors say what is wrong and how to fix it.

Against a real ``jupyter server`` subprocess (and, for "not a Jupyter server",
a real HTTP server on a real socket). Error messages are asserted by content.
"""

from __future__ import annotations

import datetime
import functools
import http.server
import threading
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _server import ServerHandle, running_server

import batch_widget
import batch_widget.kernel.job as bw
from batch_widget.engine.validation import callable_name
from batch_widget.kernel import client as _client
from batch_widget.kernel.client import ServerUnreachable
from batch_widget.kernel.discovery import discover, server_url
from batch_widget.kernel.encoding import json_items, json_params
from batch_widget.kernel.errors import ServerNotFound
from batch_widget.protocol import (
    InvalidRequest,
    ItemStatus,
    JobNotFound,
    JobStatus,
    PermissionDenied,
)

ECHO = "batch_widget.processors:sleep"  # returns its item unchanged

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerHandle]:
    # Only the built-in processors by import path: a 403 of batch_widget's own can be met.
    allowed = ["batch_widget.processors:*"]
    with running_server(tmp_path_factory.mktemp("server"), allowed_processors=allowed) as handle:
        yield handle


@pytest.fixture(autouse=True)
def forget_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test chooses its server; the choice is forgotten afterwards."""
    monkeypatch.setattr(_client._default, "client", None)
    for name in (
        "BATCH_WIDGET_URL",
        "BATCH_WIDGET_TOKEN",
        "JPY_PARENT_PID",
        "JUPYTERHUB_SERVICE_PREFIX",
        "JUPYTERHUB_API_TOKEN",
    ):
        monkeypatch.delenv(name, raising=False)


# --------------------------------------------------------------------------- items


def test_values_with_an_obvious_json_form_are_sent_as_json(server: ServerHandle) -> None:
    bw.connect(server.url, server.token)
    items = [
        Path("/data/a.txt"),
        np.int64(3),
        np.float64(1.5),
        np.bool_(True),
        np.arange(4).reshape(2, 2),
        (1, "two"),
        {"where": Path("x/y.csv")},
        {1: "json writes number keys as str", np.int64(2): (np.float32(0.5),)},
    ]
    job = bw.submit(ECHO, items, params={"seconds": 0})
    job.wait(timeout=60)
    assert job.results() == [
        "/data/a.txt",
        3,
        1.5,
        True,
        [[0, 1], [2, 3]],
        [1, "two"],
        {"where": "x/y.csv"},
        {"1": "json writes number keys as str", "2": [0.5]},
    ]


def test_items_already_json_are_not_copied() -> None:
    # A million items must stay cheap: the one new list holds the user's own
    # values, and only a value that needs converting is copied.
    meta = {"size": 3, "tags": ["a", "b"]}
    nested = [1, [2, 3], {"k": None}]
    converted = json_items([meta, nested, "x"])
    assert converted == [meta, nested, "x"]
    assert converted[0] is meta and converted[1] is nested
    with_path = [1, 2, Path("p")]
    assert json_items([with_path]) == [[1, 2, "p"]] and with_path[2] == Path("p")
    keyed = {"a": [1], "b": Path("p"), "c": None}
    assert json_items([keyed]) == [{"a": [1], "b": "p", "c": None}]
    assert keyed["b"] == Path("p")


def test_nan_is_left_for_the_server_to_refuse(server: ServerHandle) -> None:
    bw.connect(server.url, server.token)
    with pytest.raises(InvalidRequest, match="NaN is not JSON; send null or a number"):
        bw.submit(ECHO, [1.0, float("nan")])


def test_a_path_in_params_is_sent_as_its_str(server: ServerHandle, tmp_path: Path) -> None:
    bw.connect(server.url, server.token)
    source = tmp_path / "a.txt"
    source.write_text("hello " * 100, encoding="utf-8")
    job = bw.submit(
        "batch_widget.processors:gzip_file", [str(source)], params={"dest_dir": tmp_path / "out"}
    )
    assert job.wait(timeout=60)["done"] == 1
    assert (tmp_path / "out" / "a.txt.gz").is_file()


@pytest.mark.parametrize(
    ("items", "expected"),
    [
        (
            [1, datetime.date(2024, 1, 2)],
            "item 1 is of type datetime.date, which has no JSON form: "
            "pass a str (value.isoformat())",
        ),
        (
            [0, 1, {3, 4}],
            "item 2 is of type set, which has no JSON form: pass a list (sorted(value))",
        ),
        ([b"raw"], "item 0 is of type bytes, which has no JSON form: pass a str (value.decode())"),
        (
            [3, {"meta": {"when": datetime.datetime(2024, 1, 2)}}],
            'item 1["meta"]["when"] is of type datetime.datetime, which has no JSON form: '
            "pass a str (value.isoformat())",
        ),
        ([[0, (1, {7})]], "item 0[1][1] is of type set"),
        (
            [{(1, 2): "a"}],
            "item 0 has a key (1, 2) of type tuple, which JSON cannot use as "
            "an object key: use str keys",
        ),
        (
            [Decimal("1.5")],
            "item 0 is of type decimal.Decimal, which has no JSON form: pass "
            "a str (str(value)) or a float",
        ),
        ([object()], "item 0 is of type object, which has no JSON form: pass a str, a number"),
    ],
)
def test_an_item_with_no_json_form_is_named_with_its_type_and_the_fix(
    server: ServerHandle, items: list[Any], expected: str
) -> None:
    bw.connect(server.url, server.token)
    before = len(bw.jobs(limit=1000))
    with pytest.raises(TypeError) as caught:
        bw.submit(ECHO, items)
    assert expected in str(caught.value)
    assert len(bw.jobs(limit=1000)) == before, "nothing may be created"


def test_a_param_with_no_json_form_is_named_by_its_key() -> None:
    with pytest.raises(TypeError, match=r'params\["when"\] is of type datetime.date'):
        bw.submit(ECHO, [1], params={"when": datetime.date(2024, 1, 2)})
    with pytest.raises(
        TypeError,
        match=r'params\["dest"\]\["parts"\]\[0\] is of type bytes.*'
        r"write the data to a file and pass its path",
    ):
        json_params({"dest": {"parts": [b"x"]}})
    with pytest.raises(TypeError, match="params keys are argument names and must be str"):
        json_params({1: 2})


@pytest.mark.parametrize(
    ("items", "expected"),
    [
        (
            "abc",
            "items is a str: batch_widget would run one item per character. Pass a list "
            "of items, e.g. ['abc']",
        ),
        ("/data/f.txt", "e.g. ['/data/f.txt']"),
        (b"abc", "items is a bytes: batch_widget would run one item per byte"),
        (
            {"a": 1, "b": 2},
            "items is a dict: batch_widget would run one item per key. Pass a "
            "list: list(d.values()), list(d.items()), or [d] for one item",
        ),
        (5, "items must be a list (or another iterable) of items, not int"),
    ],
)
def test_a_str_bytes_or_mapping_as_items_is_refused_before_anything_is_sent(
    items: Any, expected: str
) -> None:
    # No server is needed, or asked: the refusal comes first.
    with pytest.raises(TypeError) as caught:
        bw.submit("batch_widget.processors:checksum", items)
    assert expected in str(caught.value)


def test_any_iterable_of_plain_items_is_taken_as_it_is() -> None:
    assert json_items(x * 2 for x in range(3)) == [0, 2, 4]
    plain = ["a", 1, 2.5, None, True]
    assert json_items(plain) == plain


# --------------------------------------------------------------------------- tokens and URLs


def test_a_wrong_or_missing_token_says_the_server_rejected_it(server: ServerHandle) -> None:
    for token, sent in [("wrong", "the token sent was rejected"), ("", "no token was sent")]:
        bw.connect(server.url, token)
        for call in (lambda: bw.submit(ECHO, [1]), bw.jobs):
            with pytest.raises(PermissionDenied) as caught:
                call()
            message = str(caught.value)
            assert f"the Jupyter server at {server.url} refused the request: {sent}" in message
            assert "HTTP 403" in message
            assert "BATCH_WIDGET_TOKEN" in message and "bw.connect(url, token=...)" in message
            assert "jupyter server list" in message


def test_a_403_of_batch_widget_itself_keeps_its_message(server: ServerHandle) -> None:
    bw.connect(server.url, server.token)
    with pytest.raises(PermissionDenied) as caught:
        bw.submit("json:dumps", [1])
    message = str(caught.value)
    assert message.startswith(
        "processor 'json:dumps' is not allowed: it matches none of "
        "BatchWidgetApp.allowed_processors"
    )
    assert "token" not in message


def test_the_url_jupyter_prints_works_as_it_is(server: ServerHandle) -> None:
    printed = f"{server.url}lab?token={server.token}"
    client = bw.connect(printed)
    assert client.url == server.url
    assert client.token == server.token
    assert isinstance(bw.jobs(), batch_widget.JobsView)


def test_the_printed_url_in_batch_widget_url_works(
    server: ServerHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BATCH_WIDGET_URL", f"{server.url}lab/tree/a.ipynb?token={server.token}")
    info = discover()
    assert (info.url, info.token) == (server.url, server.token)
    job = bw.submit(ECHO, [7], params={"seconds": 0})
    assert job.wait(timeout=60)["done"] == 1
    monkeypatch.setenv("BATCH_WIDGET_TOKEN", "explicit-wins")
    assert discover().token == "explicit-wins"


@pytest.mark.parametrize(
    ("pasted", "expected"),
    [
        ("http://127.0.0.1:8899/lab?token=abc", ("http://127.0.0.1:8899/", "abc")),
        ("http://h:1/user/me%40x/lab/tree/a.ipynb?token=t", ("http://h:1/user/me%40x/", "t")),
        ("http://localhost:8888/tree?token=x#frag", ("http://localhost:8888/", "x")),
        ("http://h/base/notebooks/a.ipynb", ("http://h/base/", None)),
        ("http://h:1/user/me/", ("http://h:1/user/me/", None)),
        ("http://h:1/user/lab/", ("http://h:1/user/lab/", None)),  # a hub user named lab
        ("http://h:1/user/lab/lab?token=t", ("http://h:1/user/lab/", "t")),
        ("http://h:1", ("http://h:1/", None)),
    ],
)
def test_server_url_keeps_the_base_url_and_takes_the_token(
    pasted: str, expected: tuple[str, str | None]
) -> None:
    assert server_url(pasted) == expected


def test_a_wrong_base_path_on_a_real_jupyter_server_is_named(server: ServerHandle) -> None:
    root = server.url.split(server.base_url)[0] + "/"  # the server root, without its base_url
    bw.connect(root + "elsewhere/", server.token)
    with pytest.raises(ServerNotFound) as caught:
        bw.jobs()
    message = str(caught.value)
    assert message.startswith(f"{root}elsewhere/ is not a Jupyter server with batch_widget")
    assert "GET api/batch/jobs answered 404" in message
    assert "jupyter server extension list" in message


class _HtmlHandler(http.server.BaseHTTPRequestHandler):
    """Something that is not Jupyter: HTML pages, and what proxies answer.

    ``/`` is a home page (200 for ``api/batch/jobs``, 404 elsewhere); under
    ``/forbidden/`` every answer is an HTML 403, under ``/gateway/`` a 502,
    under ``/empty/`` an empty 200, and under ``/hub/`` a redirect to a login page.
    """

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        status, body = 404, b"<html><body>a home page</body></html>"
        if path in {"/api/batch/jobs", "/api/batch/events"}:
            status = 200
        elif path.startswith("/forbidden/"):
            status, body = 403, b"<html><body>403 Forbidden</body></html>"
        elif path.startswith("/gateway/"):
            status, body = 502, b"<html><body>502 Bad Gateway</body></html>"
        elif path.startswith("/empty/"):
            status, body = 200, b""
        elif path.startswith("/hub/"):  # what a hub does without a valid token
            status, body = 302, b""
        elif path == "/login":
            status, body = 200, b"<html><body>sign in</body></html>"
        self.send_response(status)
        if status == 302:
            self.send_header("Location", "/login?next=%2Fhub%2F")
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return


@pytest.fixture
def html_site() -> Iterator[str]:
    site = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _HtmlHandler)
    thread = threading.Thread(target=site.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{site.server_address[1]}/"
    site.shutdown()
    site.server_close()


def test_a_site_that_is_not_jupyter_is_named_not_a_jupyter_server(html_site: str) -> None:
    bw.connect(html_site)
    with pytest.raises(ServerNotFound) as caught:
        bw.jobs()  # a 200 with HTML
    assert f"{html_site} is not a Jupyter server with batch_widget" in str(caught.value)
    assert "answered 200 with text/html" in str(caught.value)
    with pytest.raises(ServerNotFound, match="answered 404 with text/html"):
        bw.attach("abc123")  # a 404 page, not JobNotFound


def test_what_proxies_and_other_sites_answer_is_named(html_site: str) -> None:
    bw.connect(html_site + "forbidden/", "abc")
    with pytest.raises(PermissionDenied) as refused:
        bw.jobs()  # an HTML 403: not batch_widget's own refusal
    assert "refused the request: the token sent was rejected (HTTP 403" in str(refused.value)
    bw.connect(html_site + "gateway/")
    with pytest.raises(ServerUnreachable) as down:
        bw.jobs()
    assert str(down.value).startswith(
        f"cannot reach the Jupyter server at {html_site}gateway/: "
        "GET api/batch/jobs answered 502 Bad Gateway from a proxy"
    )
    bw.connect(html_site + "empty/")
    with pytest.raises(ServerNotFound, match="answered 200 with an empty body"):
        bw.jobs()
    bw.connect(html_site + "hub/")
    with pytest.raises(ServerNotFound) as login:
        bw.jobs()
    assert (
        f"answered 200 with text/html (after a redirect to {html_site}login?next=%2Fhub%2F, "
        "a login page?)"
    ) in str(login.value)


def test_an_event_stream_that_is_a_page_is_named(html_site: str) -> None:
    client = bw.connect(html_site)
    with pytest.raises(ServerNotFound, match=r"GET api/batch/events answered 200 with text/html"):
        next(client.events(timeout=10))


def test_a_job_that_is_not_there_is_still_job_not_found(server: ServerHandle) -> None:
    bw.connect(server.url, server.token)
    with pytest.raises(JobNotFound):
        bw.attach("0123456789ab")


def test_waiting_on_a_deleted_job_raises_job_not_found(server: ServerHandle) -> None:
    bw.connect(server.url, server.token)
    job = bw.submit(ECHO, [1], params={"seconds": 0})
    job.wait(timeout=60)
    job.delete()
    with pytest.raises(JobNotFound):
        job.wait(timeout=30)


# --------------------------------------------------------------------------- small surprises


def test_states_print_as_their_values() -> None:
    assert str(JobStatus.COMPLETED) == "completed"
    assert f"{JobStatus.CANCELLED}" == "cancelled"
    assert f"[{ItemStatus.DONE:>6}]" == "[  done]"
    assert JobStatus.COMPLETED == "completed"


def test_the_module_shows_only_its_api_and_does_not_shadow_map() -> None:
    names = dir(batch_widget)
    assert {"submit", "map", "jobs", "attach", "connect", "BatchProgress"} <= set(names)
    assert not {"Any", "TYPE_CHECKING", "annotations"} & set(names)
    assert "map" not in batch_widget.__all__
    namespace: dict[str, Any] = {}
    exec("from batch_widget import *", namespace)
    assert "map" not in namespace and "submit" in namespace


def _make_inner() -> Any:
    def inner(item: int) -> int:
        return item * 2

    return inner


def test_a_pickled_function_is_named_after_it(server: ServerHandle) -> None:
    bw.connect(server.url, server.token)
    job = bw.submit(lambda x: x + 1, [1, 2])
    snap = job.wait(timeout=60)
    assert (snap["name"], snap["processor"]) == ("lambda", "<lambda>")
    listed = next(j for j in bw.jobs() if j["id"] == job.id)
    assert "&lt;&lt;" not in bw.jobs()._repr_html_() and listed["name"] == "lambda"
    # Named by its qualified name, not only "inner".
    assert bw.submit(_make_inner(), [1]).snapshot()["name"] == "_make_inner.inner"
    assert bw.submit(_make_inner(), [1], name="mine").snapshot()["name"] == "mine"


def test_callable_name_drops_what_python_adds_in_angle_brackets() -> None:
    assert callable_name(lambda: None) == "lambda"
    assert callable_name(_make_inner()) == "_make_inner.inner"
    assert callable_name(callable_name) == "callable_name"
    assert callable_name(functools.partial(int, base=2)) == "partial"


def test_the_api_docstrings_speak_to_users() -> None:
    for function in (bw.submit, bw.map):
        doc = function.__doc__ or ""
        for name in ("TypeError", "ServerNotFound", "ServerUnreachable", "InvalidRequest"):
            assert name in doc, f"{function.__name__} does not document {name}"
    assert "running items finish first" in (bw.Job.cancel.__doc__ or "")
    for obj in (batch_widget, bw, bw.Job, bw.submit, bw.connect, _client.Client):
        assert "SPEC" not in (obj.__doc__ or ""), obj
