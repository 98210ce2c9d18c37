"""``GET api/batch/jobs/{id}/outputs`` in pages (issue 22, item 5).

A job of 100,000 items with one output each used to be answered as one list,
built and hashed (ETag) on the server's event loop: ``api/status`` waited for it,
every widget fetched all of it, and the kernel transport saved it in the notebook.
Now a page holds the outputs of at most ``?limit=`` items after ``?after=``, with
the job's ``total`` and the next page's ``next_after``; the answer is built off the
loop. Timings are in ``benchmarks/outputs.py``, not here (shared, noisy machines).
"""

from __future__ import annotations

import os
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _helpers import Api
from _server import ServerHandle, build_server

from batch_widget.kernel.client import Client
from batch_widget.kernel.job import Job
from batch_widget.kernel.widget import BatchProgress

pytestmark = pytest.mark.timeout(300)

BIG = 100_000
#: Seconds the big job and the other waits of these tests may take on busy cores.
WITHIN = 240.0
SOME = "sample_processors:some_outputs"


def expected_some(items: list[int]) -> list[str]:
    """What ``some_outputs`` names for ``items``, in item order."""
    return [f"m/{i}/{k}.txt" for i in items if i >= 0 for k in range(i % 3)]


# -- one page at a time, in-process server ----------------------------------------------


async def test_outputs_come_in_pages_with_the_total_and_where_the_next_starts(api: Api) -> None:
    items = [-1, -2, *range(30)]
    job = await api.create(items, processor=SOME)
    assert (await api.wait(job["id"]))["status"] == "completed"
    expected = expected_some(items)

    code, first, response = await api.call("GET", "jobs", job["id"], "outputs", params={"limit": 4})
    assert code == 200, first
    # Items 1, 2, 4, 5 (at indexes 3, 4, 6, 7) have outputs; 0 and 3 name none, -1 and -2
    # name no list.
    assert first == {"outputs": expected[:6], "total": len(expected), "next_after": 7}
    assert "Etag" not in response.headers

    paths, after, pages = [], -1, 0
    while after is not None:
        _, page, _ = await api.call(
            "GET", "jobs", job["id"], "outputs", params={"limit": 4, "after": after}
        )
        assert page["total"] == len(expected)
        paths += page["outputs"]
        after, pages = page["next_after"], pages + 1
    assert paths == expected
    assert pages == 5  # 20 items with outputs, 4 a page


async def test_an_unpaged_request_gets_the_first_thousand_items_outputs(api: Api) -> None:
    job = await api.create(list(range(1500)), processor="sample_processors:relative_output")
    assert (await api.wait(job["id"]))["status"] == "completed"
    _, body, _ = await api.call("GET", "jobs", job["id"], "outputs")
    assert body["outputs"] == [f"out/{i}.txt" for i in range(1000)]
    assert (body["total"], body["next_after"]) == (1500, 999)
    _, rest, _ = await api.call("GET", "jobs", job["id"], "outputs", params={"after": 999})
    assert rest["outputs"] == [f"out/{i}.txt" for i in range(1000, 1500)]
    assert (rest["total"], rest["next_after"]) == (1500, None)


@pytest.mark.parametrize(
    ("params", "word"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 10_001}, "limit"),
        ({"limit": "x"}, "limit"),
        ({"after": -2}, "after"),
        ({"after": "x"}, "after"),
    ],
)
async def test_bad_paging_is_a_400_that_names_the_argument(
    api: Api, params: dict[str, Any], word: str
) -> None:
    job = await api.create([1, 2], processor=SOME)
    await api.wait(job["id"])
    code, body, _ = await api.call("GET", "jobs", job["id"], "outputs", params=params)
    assert code == 400, body
    assert word in body["message"]


# -- a real server, a real 100,000-output job -------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerHandle]:
    handle = build_server(tmp_path_factory.mktemp("outputs"))
    tests_dir = str(Path(__file__).resolve().parents[1])  # the server imports sample_processors
    paths = [tests_dir, os.environ.get("PYTHONPATH")]
    handle.env["PYTHONPATH"] = os.pathsep.join(filter(None, paths))
    handle.start()
    try:
        yield handle
    finally:
        handle.stop()


@pytest.fixture(scope="module")
def big_job(server: ServerHandle) -> dict[str, Any]:
    """A finished job of 100,000 items, one output each (names only: no file is written)."""
    client = Client(server.url, server.token)
    job = client.create(
        {
            "processor": "sample_processors:relative_output",
            "items": list(range(BIG)),
            "executor": "thread",
        }
    )
    final = Job(job["id"], client).wait(timeout=WITHIN)
    assert (final["status"], final["done"]) == ("completed", BIG), final
    return dict(final)


def test_a_big_job_answers_one_bounded_page_with_its_total(
    server: ServerHandle, big_job: dict[str, Any]
) -> None:
    body = server.api("GET", f"api/batch/jobs/{big_job['id']}/outputs")
    assert len(body["outputs"]) == 1000
    assert body["outputs"][:2] == ["out/0.txt", "out/1.txt"]
    assert (body["total"], body["next_after"]) == (BIG, 999)
    largest = server.api("GET", f"api/batch/jobs/{big_job['id']}/outputs?limit=10000&after=94999")
    assert largest["outputs"] == [f"out/{i}.txt" for i in range(95_000, BIG)]
    assert (largest["total"], largest["next_after"]) == (BIG, None)


def test_job_outputs_reads_every_page_while_the_server_keeps_answering(
    server: ServerHandle, big_job: dict[str, Any]
) -> None:
    listing_done = threading.Event()
    statuses: list[int] = []

    def poll_status() -> None:
        # Keep asking while the listing runs, and once more after it (never zero answers).
        while True:
            finished = listing_done.is_set()
            request = urllib.request.Request(
                server.url + "api/status", headers={"Authorization": f"token {server.token}"}
            )
            with urllib.request.urlopen(request, timeout=WITHIN) as response:
                statuses.append(response.status)
            if finished:
                return

    poller = threading.Thread(target=poll_status, daemon=True)
    poller.start()
    try:
        paths = Job(big_job["id"], Client(server.url, server.token)).outputs()
    finally:
        listing_done.set()
    poller.join(WITHIN)

    assert paths == [f"out/{i}.txt" for i in range(BIG)]
    assert statuses and set(statuses) == {200}


def test_the_kernel_transport_saves_only_the_first_outputs_and_their_count(
    server: ServerHandle, big_job: dict[str, Any]
) -> None:
    widget = BatchProgress(
        big_job["id"], client=Client(server.url, server.token), transport="kernel"
    )
    widget._repr_mimebundle_()  # starts the kernel's feed, as displaying it does
    deadline = time.monotonic() + WITHIN
    while "outputs" not in widget.kernel_extras:
        assert time.monotonic() < deadline, "the feed set no outputs"
        time.sleep(0.05)
    extras = widget.kernel_extras
    assert extras["outputs"] == [f"out/{i}.txt" for i in range(20)]
    assert extras["outputs_total"] == BIG
    widget.close()
