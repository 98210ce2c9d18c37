"""What a user would pick instead of ``bw.map``, side by side in one run (issue 12).

Run: ``pip install -e ".[bench]"`` then ``python benchmarks/peers.py``
(``--quick`` for a smaller run, ``--only NAME`` for some workloads).

Every peer runs the same function over the same items, with every result back
in the caller, in item order:

- a plain loop; ``ThreadPoolExecutor(4).map`` (the reference: ratio 1.0);
  ``ProcessPoolExecutor(2).map``; ``tqdm.contrib.concurrent.thread_map`` (4
  workers); ``joblib.Parallel`` with threads (4) and with loky processes (2); a
  Dask ``LocalCluster`` (2 worker processes) with ``client.map`` + ``gather``;
- ``bw.map`` on the thread executor and on the process executor, against a real
  ``jupyter server`` with the extension, started as users start it
  (``jupyter server``), with the default settings (4 workers per job).

Workloads: 1,000,000 and 100,000 no-op items (``operator.pos``), 200 CPU-bound
items (``_workloads.busy``, about 6 ms of pure Python each), and 2,000 files of
256 KB hashed with ``batch_widget.processors.checksum`` (sha256).

Prints one table per workload (seconds, items/s, ratio of speed to
``ThreadPoolExecutor(4).map``), then the targets of issue 12 and whether they
hold; it also reads 1,000,000 results back and samples the server's RSS while
it streams them. Dask, with one task per item, is not run on a million items
(it would take about twenty times its 100,000-item time); the table says so.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import operator
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(ROOT / "tests")]

import _workloads  # noqa: E402
import psutil  # noqa: E402

import batch_widget as bw  # noqa: E402
from batch_widget.processors import checksum  # noqa: E402

REFERENCE = "ThreadPoolExecutor(4).map"


@dataclasses.dataclass
class Workload:
    """Items, the function every peer runs, and the name ``bw.map`` gives the server."""

    name: str
    items: Sequence[Any]
    func: Callable[[Any], Any]
    processor: str
    #: Peers not run here, with the reason the table shows.
    skip: dict[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Row:
    peer: str
    seconds: float | None
    note: str = ""


# --------------------------------------------------------------------------- peers


def plain_loop(w: Workload) -> list[Any]:
    return [w.func(item) for item in w.items]


def thread_pool(w: Workload) -> list[Any]:
    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(w.func, w.items))


def process_pool(w: Workload) -> list[Any]:
    with ProcessPoolExecutor(2) as pool:
        return list(pool.map(w.func, w.items))


def tqdm_thread_map(w: Workload) -> list[Any]:
    from tqdm.contrib.concurrent import thread_map

    return list(thread_map(w.func, w.items, max_workers=4, disable=True))


def joblib_threads(w: Workload) -> list[Any]:
    from joblib import Parallel, delayed

    return list(Parallel(n_jobs=4, prefer="threads")(delayed(w.func)(i) for i in w.items))


def joblib_loky(w: Workload) -> list[Any]:
    from joblib import Parallel, delayed

    return list(Parallel(n_jobs=2, backend="loky")(delayed(w.func)(i) for i in w.items))


class DaskPeer:
    """One LocalCluster (2 worker processes) for the whole run, like a user's session."""

    def __init__(self) -> None:
        self.client: Any = None
        self.cluster: Any = None

    def __call__(self, w: Workload) -> list[Any]:
        if self.client is None:
            from dask.distributed import Client, LocalCluster

            self.cluster = LocalCluster(
                n_workers=2, threads_per_worker=2, processes=True, dashboard_address=None
            )
            self.client = Client(self.cluster)
        futures = self.client.map(w.func, w.items, pure=False)
        return list(self.client.gather(futures))

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.cluster.close()


def bw_map(executor: str) -> Callable[[Workload], list[Any]]:
    def run(w: Workload) -> list[Any]:
        return bw.map(w.processor, w.items, executor=executor)

    return run


# --------------------------------------------------------------------------- the server


@contextmanager
def server(tmp: Path, **traits: Any) -> Iterator[Any]:
    """A real ``jupyter server`` with batch_widget, started through its console script;
    ``traits`` are more ``BatchWidgetApp`` settings."""
    from _server import build_server

    handle = build_server(tmp, progress_interval=0.1, **traits)
    script = Path(sys.executable).with_name("jupyter-server")
    env = dict(handle.env)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), env.get("PYTHONPATH")]))
    handle = dataclasses.replace(
        handle, args=[sys.executable, str(script), *handle.args[3:]], env=env
    )
    handle.start()
    try:
        yield handle
    finally:
        handle.stop()


# --------------------------------------------------------------------------- measuring


def measure(peer: Callable[[Workload], list[Any]], w: Workload, expected: list[Any]) -> float:
    started = time.perf_counter()
    results = peer(w)
    seconds = time.perf_counter() - started
    if results != expected:
        raise AssertionError(f"{peer} gave wrong results on {w.name}")
    return seconds


def table(w: Workload, rows: list[Row]) -> str:
    reference = next((r.seconds for r in rows if r.peer == REFERENCE), None)
    lines = [
        f"\n### {w.name}\n",
        f"| peer | seconds | items/s | speed vs `{REFERENCE}` |",
        "|---|---|---|---|",
    ]
    for row in rows:
        if row.seconds is None:
            lines.append(f"| {row.peer} | — | — | not run: {row.note} |")
            continue
        rate = len(w.items) / row.seconds
        ratio = reference / row.seconds if reference else float("nan")
        lines.append(f"| {row.peer} | {row.seconds:.2f} | {rate:,.0f} | {ratio:.2f}x |")
    return "\n".join(lines)


class RssSampler:
    """The peak RSS of a process, sampled every 20 ms on a thread."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.start = self.peak = self.process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self.process.memory_info().rss)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def make_files(folder: Path, count: int, size: int) -> list[str]:
    folder.mkdir(parents=True)
    paths = []
    for n in range(count):
        path = folder / f"file-{n:04d}.bin"
        path.write_bytes(hashlib.sha256(str(n).encode()).digest() * (size // 32))
        paths.append(str(path))
    return paths


def workloads(tmp: Path, quick: bool) -> list[Workload]:
    scale = 10 if quick else 1
    slow_peers = {
        "Dask LocalCluster client.map": "one task per item: about 20 times its 100,000-item time"
    }
    files = make_files(tmp / "files", 2000 // scale, 256 * 1024)
    return [
        Workload(
            f"{1_000_000 // scale:,} no-op items",
            range(1_000_000 // scale),
            operator.pos,
            "operator:pos",
            skip=slow_peers,
        ),
        Workload(
            f"{100_000 // scale:,} no-op items",
            range(100_000 // scale),
            operator.pos,
            "operator:pos",
        ),
        Workload(
            f"{200 // scale} CPU-bound items (~6 ms of pure Python each)",
            range(200 // scale),
            _workloads.busy,
            "_workloads:busy",
        ),
        Workload(
            f"{len(files):,} files of 256 KB, sha256",
            files,
            checksum,
            "batch_widget.processors:checksum",
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tenth of every workload")
    parser.add_argument("--only", nargs="*", help="run the workloads whose name has these")
    args = parser.parse_args(argv)
    dask = DaskPeer()
    peers: list[tuple[str, Callable[[Workload], list[Any]]]] = [
        ("plain loop", plain_loop),
        (REFERENCE, thread_pool),
        ("ProcessPoolExecutor(2).map", process_pool),
        ("tqdm thread_map (4)", tqdm_thread_map),
        ("joblib threads (4)", joblib_threads),
        ("joblib loky (2)", joblib_loky),
        ("Dask LocalCluster client.map", dask),
        ("bw.map thread", bw_map("thread")),
        ("bw.map process", bw_map("process")),
    ]
    report: list[str] = []
    figures: dict[tuple[str, str], float] = {}
    with (
        tempfile.TemporaryDirectory(prefix="bw-peers-") as tmp_name,
        server(Path(tmp_name) / "server") as handle,
    ):
        tmp = Path(tmp_name)
        bw.connect(handle.url, handle.token)
        bw.map("operator:pos", range(10))  # a first job warms the server, as any session has
        chosen = [
            w
            for w in workloads(tmp, args.quick)
            if not args.only or any(part in w.name for part in args.only)
        ]
        cold = cold_process_job(chosen)
        for w in chosen:
            expected = [w.func(item) for item in w.items]
            rows: list[Row] = []
            if cold is not None and w.processor == cold[0]:
                rows.append(Row("bw.map process, the server's first process job", cold[1]))
            for name, peer in peers:
                if name in w.skip:
                    rows.append(Row(name, None, w.skip[name]))
                    continue
                seconds = measure(peer, w, expected)
                figures[(w.name, name)] = seconds
                rows.append(Row(name, seconds))
                print(f"{w.name}: {name}: {seconds:.2f} s", flush=True)
            report.append(table(w, rows))
        readback = read_back(handle, 100_000 if args.quick else 1_000_000)
        dask.close()
    print("\n".join(report))
    print(readback)
    return 0


def cold_process_job(chosen: list[Workload]) -> tuple[str, float] | None:
    """The CPU-bound workload as the server's first process job: its workers start then.

    Later ``bw.map process`` rows run on the warm workers an earlier job left.
    """
    cpu = next((w for w in chosen if w.func is _workloads.busy), None)
    if cpu is None:
        return None
    seconds = measure(bw_map("process"), cpu, [cpu.func(item) for item in cpu.items])
    print(f"{cpu.name}: bw.map process, cold: {seconds:.2f} s", flush=True)
    return cpu.processor, seconds


def read_back(handle: Any, count: int) -> str:
    """Time ``job.results()`` of a finished job of ``count`` items; sample the server's RSS."""
    job = bw.submit("operator:pos", range(count))
    job.wait()
    with RssSampler(handle.pid) as rss:
        started = time.perf_counter()
        results = job.results()
        seconds = time.perf_counter() - started
    assert results == list(range(count))
    growth = (rss.peak - rss.start) / 2**20
    return (
        f"\nReading back {count:,} results (`job.results()` of a finished job): "
        f"{seconds:.2f} s; the server's RSS grew by {growth:.0f} MB while it streamed "
        f"them (peak {rss.peak / 2**20:.0f} MB)."
    )


if __name__ == "__main__":
    sys.exit(main())
