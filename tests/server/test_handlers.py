"""The REST API of SPEC §3 through pytest-jupyter, on real jobs."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from _helpers import SLEEP, Api, Fetch
from jupyter_core.paths import jupyter_data_dir
from jupyter_server.auth import Authorizer
from tornado.httpclient import HTTPClientError
from traitlets import TraitError

from batch_widget.engine import JobRequest
from batch_widget.engine.store import Store
from batch_widget.server.app import BatchWidgetApp


class NoExecuteAuthorizer(Authorizer):
    """Allows everything on ``batch`` but nothing on ``kernels``."""

    def is_authorized(self, handler: Any, user: Any, action: str, resource: str) -> bool:
        """Deny the kernels resource only."""
        return resource != "kernels"


def _sleep(seconds: float = 0.0, **extra: Any) -> dict[str, Any]:
    return {"seconds": seconds, **extra}


# -- the happy paths ------------------------------------------------------------------


async def test_job_lifecycle_create_poll_items_retry_delete(api: Api, jp_base_url: str) -> None:
    code, created, response = await api.call(
        "POST",
        "jobs",
        body={
            "processor": SLEEP,
            "items": list(range(10)),
            "name": "ten",
            "params": _sleep(0.01, fail=[3, 7]),
            "max_workers": 2,
        },
    )
    assert code == 201
    assert created["name"] == "ten"
    assert created["processor"] == SLEEP
    assert created["total"] == 10
    assert created["status"] in {"queued", "processing"}
    assert response.headers["Location"] == f"{jp_base_url}api/batch/jobs/{created['id']}"

    final = await api.wait(created["id"])
    assert final["status"] == "completed"
    assert (final["done"], final["failed"], final["pending"]) == (8, 2, 0)
    assert final["version"] > created["version"]
    assert final["finished_at"] is not None

    code, ledger, _ = await api.call("GET", "jobs", created["id"], "items")
    assert code == 200
    assert ledger["total"] == 10
    assert [item["index"] for item in ledger["items"]] == list(range(10))
    assert ledger["items"][0]["result"] == 0
    assert ledger["items"][0]["status"] == "done"
    assert set(ledger["items"][0]) == {
        "index",
        "input",
        "status",
        "result",
        "error",
        "traceback",
        "duration",
        "log",  # SPEC §13
        "attempts",  # SPEC §14
    }
    code, failed, _ = await api.call(
        "GET", "jobs", created["id"], "items", params={"status": "failed"}
    )
    assert [item["input"] for item in failed["items"]] == [3, 7]
    assert "ValueError" in failed["items"][0]["traceback"]
    assert failed["items"][0]["error"]
    code, page, _ = await api.call(
        "GET", "jobs", created["id"], "items", params={"offset": 8, "limit": 5}
    )
    assert [item["index"] for item in page["items"]] == [8, 9]
    assert page["total"] == 10

    code, retried, _ = await api.call("POST", "jobs", created["id"], "retry")
    assert code == 200
    assert retried["status"] == "queued"
    assert retried["version"] > final["version"]
    again = await api.wait(created["id"])
    assert (again["done"], again["failed"]) == (8, 2)  # the same two items fail again

    code, body, _ = await api.call("DELETE", "jobs", created["id"])
    assert code == 204
    assert body is None
    code, body, _ = await api.call("GET", "jobs", created["id"])
    assert code == 404
    assert created["id"] in body["message"]


async def test_list_is_newest_first_and_filters_and_pages(api: Api) -> None:
    first = await api.create([1], params=_sleep())
    second = await api.create([1, 2], params=_sleep())
    await api.wait(first["id"])
    await api.wait(second["id"])
    listing = await api.jobs()
    assert listing["total"] == 2
    assert [job["id"] for job in listing["jobs"]] == [second["id"], first["id"]]
    page = await api.jobs(limit=1, offset=1)
    assert [job["id"] for job in page["jobs"]] == [first["id"]]
    assert page["total"] == 2
    assert (await api.jobs(status="completed"))["total"] == 2
    assert (await api.jobs(status="queued"))["jobs"] == []


async def test_cancel_stops_a_running_job_and_conflicts_after(api: Api) -> None:
    job = await api.create(list(range(200)), params=_sleep(0.05), max_workers=1)
    code, body, _ = await api.call("DELETE", "jobs", job["id"])
    assert code == 409
    assert "message" in body
    code, body, _ = await api.call("POST", "jobs", job["id"], "retry")
    assert code == 409
    code, cancelled, _ = await api.call("POST", "jobs", job["id"], "cancel")
    assert code == 200
    assert cancelled["id"] == job["id"]
    final = await api.wait(job["id"])
    assert final["status"] == "cancelled"
    assert final["done"] < 200
    code, body, _ = await api.call("POST", "jobs", job["id"], "cancel")
    assert code == 409
    assert "already" in body["message"]


async def test_outputs_are_relative_to_the_server_root(
    api: Api, jp_root_dir: Path, tmp_path: Path
) -> None:
    data = jp_root_dir / "data"
    data.mkdir()
    inside = data / "a.txt"
    inside.write_text("hello " * 100)
    outside = tmp_path / "elsewhere" / "b.txt"
    outside.parent.mkdir()
    outside.write_text("world")
    job = await api.create(
        [str(inside), str(outside)], processor="batch_widget.processors:gzip_file"
    )
    final = await api.wait(job["id"])
    assert final["status"] == "completed"
    assert final["done"] == 2
    code, body, _ = await api.call("GET", "jobs", job["id"], "outputs")
    assert code == 200
    assert sorted(body["outputs"]) == sorted(["data/a.txt.gz", f"{outside}.gz"])


# -- bad requests: a clear 4xx, never a 5xx, nothing changes ------------------------


class Bad(NamedTuple):
    """One bad request and the code it must get."""

    name: str
    method: str
    parts: tuple[str, ...]
    body: Any
    params: dict[str, Any] | None
    code: int


BAD_REQUESTS = [
    Bad("malformed JSON", "POST", ("jobs",), "{not json", None, 400),
    Bad("body is a list", "POST", ("jobs",), [1, 2], None, 400),
    Bad("body is a string", "POST", ("jobs",), json.dumps("items"), None, 400),
    Bad("empty body", "POST", ("jobs",), "", None, 400),
    Bad("missing items", "POST", ("jobs",), {"processor": SLEEP}, None, 400),
    Bad("empty items", "POST", ("jobs",), {"processor": SLEEP, "items": []}, None, 400),
    Bad("items not a list", "POST", ("jobs",), {"processor": SLEEP, "items": "abc"}, None, 400),
    Bad("items an object", "POST", ("jobs",), {"processor": SLEEP, "items": {"a": 1}}, None, 400),
    Bad("too many items", "POST", ("jobs",), {"processor": SLEEP, "items": [0] * 51}, None, 400),
    Bad("no processor", "POST", ("jobs",), {"items": [1]}, None, 400),
    Bad("processor not a string", "POST", ("jobs",), {"processor": 5, "items": [1]}, None, 400),
    Bad(
        "processor without colon",
        "POST",
        ("jobs",),
        {"processor": "os.path", "items": [1]},
        None,
        400,
    ),
    Bad(
        "processor module missing",
        "POST",
        ("jobs",),
        {"processor": "no_such_module_xyz:f", "items": [1]},
        None,
        400,
    ),
    Bad(
        "processor function missing",
        "POST",
        ("jobs",),
        {"processor": "batch_widget.processors:nope", "items": [1]},
        None,
        400,
    ),
    Bad(
        "params not an object",
        "POST",
        ("jobs",),
        {"processor": SLEEP, "items": [1], "params": [1]},
        None,
        400,
    ),
    Bad(
        "max_workers zero",
        "POST",
        ("jobs",),
        {"processor": SLEEP, "items": [1], "max_workers": 0},
        None,
        400,
    ),
    Bad(
        "max_workers negative",
        "POST",
        ("jobs",),
        {"processor": SLEEP, "items": [1], "max_workers": -3},
        None,
        400,
    ),
    Bad(
        "max_workers text",
        "POST",
        ("jobs",),
        {"processor": SLEEP, "items": [1], "max_workers": "many"},
        None,
        400,
    ),
    Bad(
        "unknown executor",
        "POST",
        ("jobs",),
        {"processor": SLEEP, "items": [1], "executor": "gpu"},
        None,
        400,
    ),
    Bad(
        "callable not base64",
        "POST",
        ("jobs",),
        {"callable": "%%% not base64 %%%", "items": [1]},
        None,
        400,
    ),
    Bad(
        "callable not a pickle",
        "POST",
        ("jobs",),
        {"callable": base64.b64encode(b"nope").decode(), "items": [1]},
        None,
        400,
    ),
    Bad("list ?status= unknown", "GET", ("jobs",), None, {"status": "sleeping"}, 400),
    Bad("list ?limit= text", "GET", ("jobs",), None, {"limit": "ten"}, 400),
    Bad("list ?limit= zero", "GET", ("jobs",), None, {"limit": "0"}, 400),
    Bad("list ?offset= negative", "GET", ("jobs",), None, {"offset": "-1"}, 400),
    Bad("get unknown job", "GET", ("jobs", "nope"), None, None, 404),
    Bad("items of unknown job", "GET", ("jobs", "nope", "items"), None, None, 404),
    Bad("items ?limit= text", "GET", ("jobs", "nope", "items"), None, {"limit": "x"}, 400),
    Bad("outputs of unknown job", "GET", ("jobs", "nope", "outputs"), None, None, 404),
    Bad("cancel unknown job", "POST", ("jobs", "nope", "cancel"), None, None, 404),
    Bad("retry unknown job", "POST", ("jobs", "nope", "retry"), None, None, 404),
    Bad("delete unknown job", "DELETE", ("jobs", "nope"), None, None, 404),
    Bad("job id with odd characters", "GET", ("jobs", "a.b~c@d"), None, None, 404),
]


@pytest.mark.batch_config(max_items=50)
@pytest.mark.parametrize("bad", BAD_REQUESTS, ids=[bad.name for bad in BAD_REQUESTS])
async def test_bad_requests_get_a_4xx_with_a_message_and_change_nothing(api: Api, bad: Bad) -> None:
    await api.create([1], params=_sleep())
    before = await api.jobs()
    code, answer, response = await api.call(
        bad.method, *bad.parts, body=bad.body, params=bad.params
    )
    assert code == bad.code, answer
    assert response.headers["Content-Type"].startswith("application/json")
    assert isinstance(answer["message"], str)
    assert answer["message"]
    after = await api.jobs()
    assert [job["id"] for job in after["jobs"]] == [job["id"] for job in before["jobs"]]
    assert after["total"] == before["total"]


@pytest.mark.batch_config(allowed_processors=["batch_widget.processors:sleep"])
async def test_a_processor_outside_allowed_processors_is_refused(api: Api) -> None:
    code, body, _ = await api.call(
        "POST", "jobs", body={"processor": "batch_widget.processors:checksum", "items": ["x"]}
    )
    assert code == 403
    assert "allowed_processors" in body["message"]
    assert (await api.jobs())["total"] == 0
    await api.create([1], params=_sleep())


@pytest.mark.batch_config(allow_callables=False)
async def test_callables_can_be_switched_off(api: Api) -> None:
    code, body, _ = await api.call(
        "POST", "jobs", body={"callable": base64.b64encode(b"x").decode(), "items": [1]}
    )
    assert code == 403
    assert body["message"]


# -- authentication and authorization --------------------------------------------------

ROUTES = [
    ("GET", ("jobs",)),
    ("POST", ("jobs",)),
    ("GET", ("jobs", "someid")),
    ("DELETE", ("jobs", "someid")),
    ("GET", ("jobs", "someid", "items")),
    ("GET", ("jobs", "someid", "outputs")),
    ("GET", ("jobs", "someid", "results")),
    ("POST", ("jobs", "someid", "cancel")),
    ("POST", ("jobs", "someid", "retry")),
    ("GET", ("events",)),
]


@pytest.mark.parametrize(("method", "parts"), ROUTES)
async def test_every_route_refuses_requests_without_credentials(
    jp_fetch: Fetch, batch_app: BatchWidgetApp, method: str, parts: tuple[str, ...]
) -> None:
    body = json.dumps({"processor": SLEEP, "items": [1]}) if method == "POST" else None
    with pytest.raises(HTTPClientError) as caught:
        await jp_fetch(
            "api", "batch", *parts, method=method, body=body, headers={"Authorization": ""}
        )
    assert caught.value.code in {401, 403}
    assert batch_app.manager is not None
    assert batch_app.manager.list_jobs()[1] == 0


async def test_cookie_auth_needs_the_xsrf_header_for_writes(
    jp_fetch: Fetch, batch_app: BatchWidgetApp
) -> None:
    # A token-authenticated request hands out the login cookie, as a browser would get.
    response = await jp_fetch("api", "batch", "jobs")
    jar: SimpleCookie = SimpleCookie()
    for header in response.headers.get_list("Set-Cookie"):
        jar.load(header)
    assert jar, "the server set no login cookie"
    cookie = "; ".join(f"{name}={morsel.value}" for name, morsel in jar.items())
    cookie_only = {"Authorization": "", "Cookie": cookie}
    listing = await jp_fetch("api", "batch", "jobs", headers=cookie_only)
    assert json.loads(listing.body)["total"] == 0

    body = json.dumps({"processor": SLEEP, "items": [1], "params": _sleep()})
    with pytest.raises(HTTPClientError) as caught:
        await jp_fetch("api", "batch", "jobs", method="POST", body=body, headers=cookie_only)
    assert caught.value.code == 403
    assert batch_app.manager is not None
    assert batch_app.manager.list_jobs()[1] == 0

    with_xsrf = {**cookie_only, "Cookie": f"{cookie}; _xsrf=abc123", "X-XSRFToken": "abc123"}
    created = await jp_fetch("api", "batch", "jobs", method="POST", body=body, headers=with_xsrf)
    assert created.code == 201


@pytest.mark.server_config({"ServerApp": {"authorizer_class": NoExecuteAuthorizer}})
async def test_create_and_retry_need_the_execute_permission(
    api: Api, batch_app: BatchWidgetApp
) -> None:
    code, body, _ = await api.call(
        "POST", "jobs", body={"processor": SLEEP, "items": [1], "params": _sleep()}
    )
    assert code == 403
    assert "execute" in body["message"]
    assert "kernels" in body["message"]
    assert (await api.jobs())["total"] == 0

    # Reading still works, and a job created server-side can be watched but not retried.
    manager = batch_app.manager
    assert manager is not None
    loop = asyncio.get_running_loop()
    job = await loop.run_in_executor(
        None, lambda: manager.create(JobRequest([1, 2], processor=SLEEP, params=_sleep(fail=[2])))
    )
    final = await api.wait(job["id"])
    assert final["failed"] == 1
    code, body, _ = await api.call("POST", "jobs", job["id"], "retry")
    assert code == 403
    assert "execute" in body["message"]
    assert (await api.get(job["id"]))["version"] == final["version"]


# -- activity ---------------------------------------------------------------------------


async def test_status_polls_do_not_count_as_user_activity(api: Api, jp_serverapp: Any) -> None:
    settings = jp_serverapp.web_app.settings
    job = await api.create(list(range(3)), params=_sleep(0.01))
    bumped = settings["api_last_activity"]
    await asyncio.sleep(0.01)
    await api.wait(job["id"])
    await api.jobs()
    await api.call("GET", "jobs", job["id"], "items")
    await api.call("GET", "jobs", job["id"], "outputs")
    await api.call("GET", "jobs", "nope")
    assert settings["api_last_activity"] == bumped

    await api.call("DELETE", "jobs", job["id"])
    assert settings["api_last_activity"] > bumped


# -- the extension's lifecycle and configuration ------------------------------------


async def test_the_first_request_starts_the_extension_lazily(
    jp_fetch: Fetch, jp_serverapp: Any
) -> None:
    app: BatchWidgetApp = jp_serverapp.web_app.settings[BatchWidgetApp.name]
    assert app.broadcaster is not None
    assert not app.broadcaster.running  # pytest-jupyter never calls the start hook
    api = Api(jp_fetch)
    job = await api.create([1, 2], params=_sleep())
    assert app.broadcaster.running
    assert (await api.wait(job["id"]))["status"] == "completed"


async def test_stopping_the_extension_interrupts_jobs_and_leaves_no_threads(
    api: Api, batch_app: BatchWidgetApp
) -> None:
    running = await api.create(list(range(100)), params=_sleep(0.05), max_workers=2)
    queued = [await api.create([1], params=_sleep()) for _ in range(2)]
    await eventually_processing(api, running["id"])
    db_url = batch_app.db_url

    await batch_app.stop_extension()

    leftovers = [t.name for t in threading.enumerate() if t.name.startswith("batch-")]
    assert leftovers == []
    store = Store.from_url(db_url)
    try:
        statuses = {row.id: row.status.value for row in store.load_jobs()}
    finally:
        store.close()
    assert statuses[running["id"]] == "interrupted"
    assert {statuses[job["id"]] for job in queued} <= {"interrupted", "completed"}


async def eventually_processing(api: Api, job_id: str) -> None:
    """Wait until the job has started and done some work."""
    for _ in range(200):
        snapshot = await api.get(job_id)
        if snapshot["status"] == "processing" and snapshot["done"] > 0:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the job never started")


@pytest.mark.parametrize(
    ("trait", "value"),
    [
        ("max_workers", 0),
        ("max_concurrent_jobs", -1),
        ("max_items", 0),
        ("progress_interval", 0.0),
        ("heartbeat_interval", -1.0),
        ("sse_timeout", 0.0),
        ("reconnect_delay", 0),
        ("broadcast_retry_delay", -0.5),
        ("completion_broadcast_retries", -1),
        ("executor", "gpu"),
        ("db_url", "postgres://nope"),
        ("cancel_timeout", 0.0),
        ("store_write_timeout", -1.0),
        ("max_result_bytes", 0),
        ("max_job_log_bytes", 0),
        ("malloc_mmap_threshold", -1),
        ("malloc_mmap_threshold", 64 * 1024 * 1024),
        ("process_idle_timeout", -1.0),
        ("process_idle_timeout", float("nan")),
        ("dask_connect_timeout", 0.0),
        ("batch_server_idle_timeout", -1.0),
    ],
)
def test_bad_configuration_is_refused(trait: str, value: Any) -> None:
    with pytest.raises(TraitError):
        BatchWidgetApp(**{trait: value})


def test_configuration_defaults_match_the_spec(jp_data_dir: Path) -> None:
    app = BatchWidgetApp()
    assert app.db_url == f"sqlite:///{jupyter_data_dir()}/batch_widget/jobs.sqlite"
    assert app.config_summary() == {
        "db_url": app.db_url,
        "max_workers": 4,
        "max_concurrent_jobs": 2,
        "max_items": 1_000_000,
        "progress_interval": 0.1,
        "heartbeat_interval": 15,
        "sse_timeout": 30,
        "reconnect_delay": 5000,
        "completion_broadcast_retries": 3,
        "broadcast_retry_delay": 0.5,
        "resume_interrupted": False,
        "executor": "thread",
        "allowed_processors": ["*"],
        "allow_callables": True,
        "cancel_timeout": 10.0,
        "store_write_timeout": 60.0,
        "max_result_bytes": 16 * 1024 * 1024,
        "max_job_log_bytes": 64 * 1024 * 1024,
        "retries": 0,  # SPEC §14
        "retry_delay": 1.0,
        "retry_on": None,
        "process_idle_timeout": 60.0,  # SPEC §11
        "dask_address": "",  # SPEC §11
        "dask_connect_timeout": 10.0,
        "batch_server_idle_timeout": 3600.0,  # SPEC §12
        "malloc_mmap_threshold": 1024 * 1024,
        "broadcaster_class": "batch_widget.server.events.Broadcaster",
        "manager_class": "batch_widget.engine.manager.JobManager",
    }
    for name in app.config_summary():
        trait = app.traits()[name]
        assert trait.metadata.get("config") is True, name
        assert trait.help, name
