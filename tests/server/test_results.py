"""Reading a ledger back at scale: keyset pages of items and the NDJSON results stream.

Through a real Jupyter server (pytest-jupyter) and a real SQLite store.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from _helpers import SLEEP, Api
from tornado.httpclient import HTTPClientError

from batch_widget.engine.store import Store

N = 2500
FAIL = [5, 1200, 2499]
STATUSES = {"done", "failed", "pending", "running", "cancelled"}


@pytest.fixture
async def finished(api: Api) -> dict[str, Any]:
    """A finished job of N items, three of which failed."""
    job = await api.create(list(range(N)), params={"seconds": 0, "fail": FAIL}, max_workers=4)
    final = await api.wait(job["id"], timeout=60)
    assert (final["done"], final["failed"]) == (N - len(FAIL), len(FAIL))
    return final


async def results(api: Api, job_id: str, **params: Any) -> tuple[Any, list[dict[str, Any]]]:
    response = await api.fetch("api", "batch", "jobs", job_id, "results", params=params)
    lines = response.body.decode().splitlines()
    return response, [json.loads(line) for line in lines]


async def test_keyset_pages_at_several_positions_are_the_ledger_in_order(
    api: Api, finished: dict[str, Any]
) -> None:
    job_id = finished["id"]
    for after in (-1, 0, 999, 2400, 2498, 2499):
        code, page, _ = await api.call(
            "GET", "jobs", job_id, "items", params={"after": after, "limit": 50}
        )
        assert code == 200
        assert page["total"] == N
        indexes = [item["index"] for item in page["items"]]
        assert indexes == list(range(after + 1, min(after + 51, N)))
        for item in page["items"]:
            assert item["input"] == item["index"]
            assert item["result"] == (None if item["index"] in FAIL else item["index"])

    # Walking the whole ledger by `after` gets every item once, in order.
    seen: list[int] = []
    after = -1
    while True:
        _, page, _ = await api.call(
            "GET", "jobs", job_id, "items", params={"after": after, "limit": 700}
        )
        if not page["items"]:
            break
        seen += [item["index"] for item in page["items"]]
        after = seen[-1]
    assert seen == list(range(N))


async def test_keyset_pages_with_a_status_and_totals_from_the_counters(
    api: Api, finished: dict[str, Any]
) -> None:
    job_id = finished["id"]
    _, failed, _ = await api.call(
        "GET", "jobs", job_id, "items", params={"status": "failed", "after": 5}
    )
    assert [item["index"] for item in failed["items"]] == [1200, 2499]
    assert failed["total"] == 3  # every failed item, not only those after 5
    assert failed["items"][0]["error"].startswith("ValueError")
    _, done, _ = await api.call(
        "GET", "jobs", job_id, "items", params={"status": "done", "after": 1195, "limit": 6}
    )
    assert [item["index"] for item in done["items"]] == [1196, 1197, 1198, 1199, 1201, 1202]
    assert done["total"] == N - 3
    _, pending, _ = await api.call(
        "GET", "jobs", job_id, "items", params={"status": "pending", "after": -1}
    )
    assert pending == {"items": [], "total": 0}


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"after": "x"}, "?after= must be an integer, not 'x'"),
        ({"after": -2}, "'after' must be an item index: an integer from -1"),
        ({"after": 3, "offset": 2}, "give 'after' or 'offset', not both"),
        ({"after": 3, "limit": 10001}, "'limit' must be an integer from 1 to 10000"),
    ],
)
async def test_bad_keyset_arguments_are_refused(
    api: Api, finished: dict[str, Any], params: dict[str, Any], message: str
) -> None:
    code, body, _ = await api.call("GET", "jobs", finished["id"], "items", params=params)
    assert code == 400
    assert message in body["message"]


async def test_the_results_stream_is_every_item_in_order_as_ndjson(
    api: Api, finished: dict[str, Any]
) -> None:
    response, lines = await results(api, finished["id"])
    assert response.code == 200
    assert response.headers["Content-Type"] == "application/x-ndjson"
    assert [line["index"] for line in lines] == list(range(N))
    assert set(lines[0]) == {"index", "status", "result", "error", "attempts"}
    assert lines[7] == {"index": 7, "status": "done", "result": 7, "error": None, "attempts": 1}
    assert lines[5]["status"] == "failed" and lines[5]["result"] is None
    assert lines[5]["error"].startswith("ValueError")


async def test_the_results_stream_filters_by_status_and_position(
    api: Api, finished: dict[str, Any]
) -> None:
    _, failed = await results(api, finished["id"], status="failed")
    assert [line["index"] for line in failed] == FAIL
    _, tail = await results(api, finished["id"], after=2490)
    assert [line["index"] for line in tail] == list(range(2491, N))
    _, done_tail = await results(api, finished["id"], status="done", after=2490)
    assert [line["index"] for line in done_tail] == list(range(2491, 2499))
    _, nothing = await results(api, finished["id"], after=N - 1)
    assert nothing == []


async def test_the_results_stream_spans_many_reads(
    api: Api, finished: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from batch_widget.engine import manager as manager_module

    monkeypatch.setattr(manager_module, "RESULTS_CHUNK", 300)  # 9 reads of the store
    reads: list[int] = []
    original = Store.results_chunk

    def counting(self: Store, *args: Any, **kwargs: Any) -> Any:
        chunk = original(self, *args, **kwargs)
        reads.append(chunk.count)
        return chunk

    monkeypatch.setattr(Store, "results_chunk", counting)
    _, lines = await results(api, finished["id"])
    assert [line["index"] for line in lines] == list(range(N))
    assert max(reads) <= 300 and len(reads) == 10  # 9 full reads of 300 or less, then none


@pytest.mark.parametrize(
    ("job", "params", "expected"),
    [
        ("nosuchjob", {}, (404, "no job with id 'nosuchjob'")),
        (None, {"after": "soon"}, (400, "?after= must be an integer")),
        (None, {"status": "lost"}, (400, "unknown item status 'lost'")),
    ],
)
async def test_the_results_stream_answers_errors_before_it_starts(
    api: Api,
    finished: dict[str, Any],
    job: str | None,
    params: dict[str, Any],
    expected: tuple[int, str],
) -> None:
    code, message = expected
    with pytest.raises(HTTPClientError) as caught:
        await api.fetch("api", "batch", "jobs", job or finished["id"], "results", params=params)
    assert caught.value.code == code
    assert caught.value.response is not None
    assert message in json.loads(caught.value.response.body)["message"]


async def test_snapshots_say_which_executor_runs_the_job(api: Api) -> None:
    job = await api.create([1], params={"seconds": 0})
    assert job["executor"] == "thread"
    process = await api.create([1], processor=SLEEP, params={"seconds": 0}, executor="process")
    assert process["executor"] == "process"
    assert (await api.wait(process["id"], timeout=60))["executor"] == "process"
