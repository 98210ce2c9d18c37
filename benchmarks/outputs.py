"""Outputs benchmark (issue 22, item 5): ``GET api/status`` while a job's outputs are listed.

Run: ``python benchmarks/outputs.py [--old-tree PATH]``. Starts a real ``jupyter
server`` with batch_widget, runs a job of 100,000 items that each name one output
(``sample_processors:relative_output``: names only, no file written), then times
sequential ``GET api/status`` (Jupyter's own route) idle, and while a client lists
every output of the job: page by page (``?limit=10000``, following ``next_after``,
as ``job.outputs()`` does), and as one default page (what the widget asks for).

``--old-tree`` names another checkout (``git worktree add /tmp/old HEAD~1``): a
second server runs that code on its own store, with the same job, and the figures
are printed side by side. A server that does not page answers every output at once
(it ignores ``?limit=``): that is the "old unpaged path".

Target: the worst ``api/status`` during a full listing under 300 ms (SPEC §21's
bound for heavy payloads). Exit status 0 when this tree meets it.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"
PROCESSOR = "sample_processors:relative_output"
TARGET_MS = 300.0
#: The tail of a page: ``"next_after": <index or null>}`` (the handler writes it last).
NEXT_AFTER = re.compile(rb'"next_after": (\d+|null)\}\s*$')


class Server:
    """A running server's URL and token, with blocking helpers."""

    def __init__(self, url: str, token: str) -> None:
        self.url = url
        self.token = token

    def get(self, path: str, timeout: float = 300) -> bytes:
        request = urllib.request.Request(
            self.url + path, headers={"Authorization": f"token {self.token}"}
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body: bytes = response.read()
            return body

    def call(self, method: str, path: str, body: Any) -> Any:
        request = urllib.request.Request(
            self.url + path,
            data=json.dumps(body).encode(),
            method=method,
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=300) as response:
            return json.loads(response.read())


@contextmanager
def running(tmp: Path, tree: Path) -> Iterator[Server]:
    """A server on the code in ``tree`` (first on its PYTHONPATH), its own store."""
    sys.path.insert(0, str(TESTS))
    build_server = importlib.import_module("_server").build_server
    handle = build_server(tmp)
    handle.env["PYTHONPATH"] = os.pathsep.join([str(tree), str(TESTS)])
    handle.start()
    try:
        yield Server(handle.url, handle.token)
    finally:
        handle.stop()


def big_job(server: Server, items: int) -> str:
    """Create the job and wait for its end; return its id."""
    job = server.call(
        "POST",
        "api/batch/jobs",
        {"processor": PROCESSOR, "items": list(range(items)), "executor": "thread"},
    )
    deadline = time.monotonic() + 600
    while True:
        snapshot = json.loads(server.get(f"api/batch/jobs/{job['id']}"))
        if snapshot["status"] == "completed":
            return str(job["id"])
        if snapshot["status"] in {"failed", "cancelled", "interrupted"} or (
            time.monotonic() > deadline
        ):
            raise RuntimeError(f"the job did not complete: {snapshot}")
        time.sleep(0.1)


def list_all(server: Server, job_id: str) -> int:
    """Every output, page after page; return the bytes read. Parses only each page's tail."""
    after, read = -1, 0
    while True:
        body = server.get(f"api/batch/jobs/{job_id}/outputs?limit=10000&after={after}")
        read += len(body)
        match = NEXT_AFTER.search(body[-64:])
        if match is None or match.group(1) == b"null":
            return read  # the last page, or a server that answers everything at once
        after = int(match.group(1))


def first_page(server: Server, job_id: str) -> int:
    """The widget's request: the default page."""
    return len(server.get(f"api/batch/jobs/{job_id}/outputs?limit=20"))


def status_during(server: Server, work: Callable[[], int], rounds: int) -> dict[str, float]:
    """``api/status`` latencies (ms) while ``work`` runs ``rounds`` times; and work's figures."""
    latencies: list[float] = []
    done = threading.Event()

    def ping() -> None:
        while not done.is_set():
            start = time.perf_counter()
            server.get("api/status")
            latencies.append((time.perf_counter() - start) * 1000)

    pinger = threading.Thread(target=ping, daemon=True)
    pinger.start()
    durations, read = [], 0
    try:
        for _ in range(rounds):
            start = time.perf_counter()
            read = work()
            durations.append(time.perf_counter() - start)
    finally:
        done.set()
        pinger.join(60)
    return {
        "p50": statistics.median(latencies) if latencies else 0.0,
        "max": max(latencies, default=0.0),
        "n": float(len(latencies)),
        "seconds": statistics.median(durations),
        "bytes": float(read),
    }


def idle(server: Server, count: int = 100) -> dict[str, float]:
    latencies = []
    for _ in range(count):
        start = time.perf_counter()
        server.get("api/status")
        latencies.append((time.perf_counter() - start) * 1000)
    return {
        "p50": statistics.median(latencies),
        "max": max(latencies),
        "n": float(count),
        "seconds": 0.0,
        "bytes": 0.0,
    }


def measure(server: Server, items: int, rounds: int) -> dict[str, dict[str, float]]:
    job_id = big_job(server, items)
    return {
        "idle": idle(server),
        "full listing": status_during(server, lambda: list_all(server, job_id), rounds),
        "widget's first page": status_during(
            server, lambda: first_page(server, job_id), rounds * 20
        ),
    }


def report(results: dict[str, dict[str, dict[str, float]]], items: int) -> None:
    names = list(results)
    print(f"GET api/status latency (ms) while {items:,} outputs are listed")
    header = f"{'':24}" + "".join(f"{name:>36}" for name in names)
    print(header)
    print(f"{'':24}" + "".join(f"{'p50':>9}{'max':>9}{'list s':>9}{'MB':>9}" for _ in names))
    for case in results[names[0]]:
        row = f"{case:24}"
        for name in names:
            figures = results[name][case]
            row += (
                f"{figures['p50']:9.1f}{figures['max']:9.1f}{figures['seconds']:9.2f}"
                f"{figures['bytes'] / 1e6:9.2f}"
            )
        print(row)


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3, help="full listings per case")
    parser.add_argument("--old-tree", type=Path, help="another checkout to run side by side")
    args = parser.parse_args()
    trees = {"this tree": ROOT}
    if args.old_tree is not None:
        trees = {f"{args.old_tree}": args.old_tree.resolve(), **trees}
    results = {}
    for name, tree in trees.items():
        with tempfile.TemporaryDirectory() as tmp, running(Path(tmp), tree) as server:
            results[name] = measure(server, args.items, args.rounds)
    report(results, args.items)
    worst = results["this tree"]["full listing"]["max"]
    ok = worst <= TARGET_MS
    print(
        f"worst api/status during a full listing (this tree): {worst:.0f} ms "
        f"(target <= {TARGET_MS:.0f}) {'PASS' if ok else 'FAIL'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
