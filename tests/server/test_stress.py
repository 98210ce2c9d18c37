"""Ten clients hammering one real server with cancel/retry/delete/get/create for 60 s.

No answer may be a 5xx, no more jobs may process at once than
``max_concurrent_jobs``, and once the dust settles every job is in a state the
SPEC allows, with counters equal to its ledger.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from pathlib import Path

from _helpers import SLEEP, TERMINAL
from _server import ServerHandle, running_server

CLIENTS = 10
SECONDS = 60.0
JOBS = 8
MOST_JOBS = 24
MAX_CONCURRENT = 2
#: What the ledger of a job may hold in each terminal state.
ALLOWED_ITEMS = {
    "completed": {"done", "failed"},
    "cancelled": {"done", "failed", "cancelled"},
    "failed": {"done", "failed", "pending"},
    "interrupted": {"done", "failed", "pending"},
}


class Pool:
    """The job ids the clients pick from; a deleted job is replaced by a new one."""

    def __init__(self, server: ServerHandle) -> None:
        self.server = server
        self.lock = threading.Lock()
        self.ids: list[str] = []
        self.created: list[str] = []

    def create(self) -> int:
        code, job = self.server.call(
            "POST",
            "api/batch/jobs",
            {
                "processor": SLEEP,
                "items": list(range(12)),
                "params": {"seconds": 0.005, "fail": [3, 7]},
                "max_workers": 2,
            },
        )
        if code == 201:
            with self.lock:
                self.ids.append(job["id"])
                self.created.append(job["id"])
        return code

    def pick(self, rng: random.Random) -> str | None:
        with self.lock:
            return rng.choice(self.ids) if self.ids else None

    def forget(self, job_id: str) -> None:
        with self.lock:
            if job_id in self.ids:
                self.ids.remove(job_id)


def client(
    pool: Pool, seed: int, until: float, codes: Counter[tuple[str, int]], processing_seen: list[int]
) -> None:
    rng = random.Random(seed)
    server = pool.server
    while time.monotonic() < until:
        job_id = pool.pick(rng)
        op = rng.choice(["get", "get", "cancel", "retry", "retry", "delete", "list"])
        if job_id is None or (op == "delete" and len(pool.ids) < MOST_JOBS):
            code = pool.create()
            codes["create", code] += 1
            continue
        if op == "get":
            code, _ = server.call("GET", f"api/batch/jobs/{job_id}")
        elif op == "list":
            code, answer = server.call("GET", "api/batch/jobs?status=processing")
            if code == 200:
                processing_seen.append(answer["total"])
        elif op == "delete":
            code, _ = server.call("DELETE", f"api/batch/jobs/{job_id}")
            if code == 204:
                pool.forget(job_id)
        else:
            code, _ = server.call("POST", f"api/batch/jobs/{job_id}/{op}")
        codes[op, code] += 1


def test_ten_clients_for_a_minute_get_no_5xx_and_leave_consistent_jobs(tmp_path: Path) -> None:
    with running_server(tmp_path, max_concurrent_jobs=MAX_CONCURRENT) as server:
        pool = Pool(server)
        for _ in range(JOBS):
            assert pool.create() == 201
        codes: Counter[tuple[str, int]] = Counter()
        processing_seen: list[int] = []
        until = time.monotonic() + SECONDS
        clients = [
            threading.Thread(target=client, args=(pool, seed, until, codes, processing_seen))
            for seed in range(CLIENTS)
        ]
        for thread in clients:
            thread.start()
        for thread in clients:
            thread.join()

        print(f"{sum(codes.values())} requests: {dict(sorted(codes.items()))}")
        assert not [key for key in codes if key[1] >= 500], codes
        assert sum(codes.values()) > 1000, "the clients hardly ran"
        assert processing_seen and max(processing_seen) <= MAX_CONCURRENT

        for job_id in list(pool.ids):  # let every job end
            server.call("POST", f"api/batch/jobs/{job_id}/cancel")
        deadline = time.monotonic() + 30
        for job_id in pool.ids:
            while (snapshot := server.api("GET", f"api/batch/jobs/{job_id}"))[
                "status"
            ] not in TERMINAL:
                assert time.monotonic() < deadline, snapshot
                time.sleep(0.05)
            items = server.api("GET", f"api/batch/jobs/{job_id}/items?limit=100")["items"]
            by_status = Counter(item["status"] for item in items)
            assert set(by_status) <= ALLOWED_ITEMS[snapshot["status"]], (snapshot, by_status)
            assert snapshot["done"] == by_status["done"], (snapshot, by_status)
            assert snapshot["failed"] == by_status["failed"], (snapshot, by_status)
            assert snapshot["pending"] == snapshot["total"] - snapshot["done"] - snapshot["failed"]
        listed = server.api("GET", "api/batch/jobs?limit=1000")
        assert sorted(j["id"] for j in listed["jobs"]) == sorted(pool.ids)
