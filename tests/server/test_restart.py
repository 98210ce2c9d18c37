"""A real ``jupyter server`` killed mid-job and restarted on the same store (SPEC §6)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from _helpers import SLEEP, TERMINAL
from _server import ServerHandle, running_server


def all_items(server: ServerHandle, job_id: str) -> dict[int, Any]:
    """Every item record of the job, by index."""
    answer = server.api("GET", f"api/batch/jobs/{job_id}/items?limit=10000")
    return {item["index"]: item for item in answer["items"]}


def test_a_killed_server_leaves_the_job_interrupted_and_retry_finishes_it(
    tmp_path: Path,
) -> None:
    with running_server(tmp_path) as server:
        code, job = server.call(
            "POST",
            "api/batch/jobs",
            {
                "processor": SLEEP,
                "items": list(range(300)),
                "params": {"seconds": 0.02},
                "max_workers": 2,
            },
        )
        assert code == 201, job
        server.wait_for_job(job["id"], lambda s: s["done"] >= 40)
        committed = {
            i: item for i, item in all_items(server, job["id"]).items() if item["status"] == "done"
        }
        assert len(committed) >= 40

        server.kill()
        server.start()

        after_restart = server.api("GET", f"api/batch/jobs/{job['id']}")
        assert after_restart["status"] == "interrupted"
        assert after_restart["done"] >= len(committed)
        assert after_restart["done"] < 300
        items = all_items(server, job["id"])
        assert {i: items[i] for i in committed} == committed
        assert not [item for item in items.values() if item["status"] == "running"]

        code, retried = server.call("POST", f"api/batch/jobs/{job['id']}/retry")
        assert code == 200, retried
        final = server.wait_for_job(job["id"], lambda s: s["status"] in TERMINAL)
        assert final["status"] == "completed"
        assert (final["done"], final["failed"], final["pending"]) == (300, 0, 0)
        items = all_items(server, job["id"])
        assert {i: items[i] for i in committed} == committed
        assert [items[i]["result"] for i in range(300)] == list(range(300))
