"""Hostile and odd input through a real server: nothing gets past the allowlist, and no
client mistake is answered with a 500 (issue 9, items 1 and 12).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from _helpers import Api
from test_sse import SSEClient

from batch_widget.server.app import BatchWidgetApp

ALLOWED = ["batch_widget.processors:*", "sample_processors:*"]


def strict_json(text: str) -> Any:
    """Parse as a browser's ``JSON.parse`` would: no ``NaN``/``Infinity``."""

    def refuse(name: str) -> None:
        raise ValueError(f"{name} is not JSON")

    return json.loads(text, parse_constant=refuse)


# -- 1. allowed_processors cannot be walked around --------------------------------------


@pytest.mark.batch_config(allowed_processors=ALLOWED, allow_callables=False)
@pytest.mark.parametrize(
    "processor",
    [
        "batch_widget.processors:os.system",  # dotted: an attribute of a module it imports
        "batch_widget.processors:os",  # a module the allowed one imports
        "batch_widget.processors:sleep.__globals__",  # dunder walk
        "batch_widget.processors:__builtins__",
        "batch_widget.processors:_private",
        "sample_processors:Path",  # a class it imports
        "sample_processors:Unprintable",  # a class it defines
        "sample_processors:partial_sleep",  # a partial object it defines
        "sample_processors:functools",
    ],
)
async def test_only_functions_the_allowed_module_offers_may_run(
    api: Api, processor: str, tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"
    code, body, _ = await api.call(
        "POST", "jobs", body={"processor": processor, "items": [f"touch {marker}"]}
    )

    assert code in (400, 403), body
    assert processor in body["message"]
    assert (await api.jobs())["total"] == 0  # no job, so nothing can ever run it
    assert not marker.exists()


@pytest.mark.batch_config(allowed_processors=["*"])
async def test_functions_defined_or_exported_by_a_module_still_run(api: Api) -> None:
    mine = await api.create([1, 2], processor="sample_processors:square")
    exported = await api.create([1, -2], processor="operator:neg")  # _operator's, in __all__
    assert (await api.wait(mine["id"]))["status"] == "completed"
    assert (await api.wait(exported["id"]))["done"] == 2


# -- 12. client mistakes are 4xx, never 500 -----------------------------------------------


@pytest.mark.parametrize(
    ("route", "query"),
    [
        (("jobs",), {"offset": str(2**63)}),
        (("jobs",), {"limit": str(2**63)}),
        (("jobs",), {"offset": "9" * 5000}),
        (("jobs", "{id}", "items"), {"offset": str(2**63)}),
        (("jobs", "{id}", "items"), {"limit": "9" * 5000}),
    ],
)
async def test_huge_numbers_in_the_query_are_a_400(
    api: Api, route: tuple[str, ...], query: dict[str, str]
) -> None:
    job = await api.create([1], params={"seconds": 0})
    parts = [part.format(id=job["id"]) for part in route]
    code, body, _ = await api.call("GET", *parts, params=query)
    assert code == 400, body
    assert "must be an integer" in body["message"]


async def test_a_name_with_a_lone_surrogate_is_a_400_and_creates_nothing(api: Api) -> None:
    raw = '{"processor": "batch_widget.processors:sleep", "items": [1], "name": "a\\ud800b"}'
    code, body, _ = await api.call("POST", "jobs", body=raw)
    assert code == 400, body
    assert "'name'" in body["message"]
    assert (await api.jobs())["total"] == 0


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
async def test_nan_and_infinity_in_a_body_are_a_400(api: Api, constant: str) -> None:
    raw = f'{{"processor": "batch_widget.processors:sleep", "items": [{constant}]}}'
    code, body, _ = await api.call("POST", "jobs", body=raw)
    assert code == 400, body
    assert constant.lstrip("-") in body["message"]
    assert (await api.jobs())["total"] == 0


@pytest.mark.parametrize("seq", ["\u00b2", "9" * 5000, "-1", "1.5", ""])
async def test_a_malformed_last_event_id_gets_a_full_catch_up_not_a_500(
    api: Api,
    batch_app: BatchWidgetApp,
    jp_http_port: int,
    jp_base_url: str,
    *,
    server_token: str,
    seq: str,
    tmp_path: Path,
) -> None:
    release = tmp_path / "release"  # the job stays active (caught up) until the test ends it
    job = await api.create(
        [0], processor="sample_processors:hang", params={"on": [0], "release": str(release)}
    )
    assert batch_app.broadcaster is not None
    last_id = quote(f"{batch_app.broadcaster.epoch}-{seq}")  # "?last_event_id=": UTF-8
    client = await SSEClient.open(
        jp_http_port,
        f"{jp_base_url}api/batch/events?last_event_id={last_id}",
        {"Authorization": f"token {server_token}"},
    )
    try:
        assert client.status == 200
        first = await client.next_message()
        assert first is not None and first.retry is not None
        caught_up = await client.next_message(timeout=5)
        assert caught_up is not None and caught_up.json()["id"] == job["id"]
    finally:
        client.close()
        release.touch()  # no stuck worker thread outlives the test
        await api.wait(job["id"])


async def test_a_nan_result_is_stored_as_null_and_pages_stay_strict_json(api: Api) -> None:
    job = await api.create([7], processor="sample_processors:not_a_number")
    assert (await api.wait(job["id"]))["done"] == 1
    _, _, response = await api.call("GET", "jobs", job["id"], "items")
    items = strict_json(response.body.decode())["items"]
    assert items[0]["result"] == {"mean": None, "range": [None, None], "item": 7}


async def test_an_exception_that_cannot_be_printed_fails_only_its_item(api: Api) -> None:
    job = await api.create([0, 1, 2], processor="sample_processors:unprintable")
    final = await api.wait(job["id"])
    assert (final["status"], final["done"], final["failed"]) == ("completed", 2, 1)
    code, body, _ = await api.call("GET", "jobs", job["id"], "items", params={"status": "failed"})
    assert code == 200
    assert [i["index"] for i in body["items"]] == [1]
    assert body["items"][0]["error"] == "Unprintable: <unprintable Unprintable>"


async def test_relative_output_paths_are_read_against_the_root_dir(api: Api) -> None:
    job = await api.create(["a", "b"], processor="sample_processors:relative_output")
    assert (await api.wait(job["id"]))["done"] == 2
    code, body, _ = await api.call("GET", "jobs", job["id"], "outputs")
    assert code == 200
    assert body["outputs"] == ["out/a.txt", "out/b.txt"]


async def test_an_error_message_with_a_lone_surrogate_fails_only_its_item(api: Api) -> None:
    job = await api.create([0, 1, 2], processor="sample_processors:surrogate_error")
    final = await api.wait(job["id"])
    assert (final["status"], final["done"], final["failed"]) == ("completed", 2, 1)
    code, body, _ = await api.call("GET", "jobs", job["id"], "items", params={"status": "failed"})
    assert code == 200
    assert body["items"][0]["error"] == "FileNotFoundError: no such file: a\\udcffb"
