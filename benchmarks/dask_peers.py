"""``bw.map(..., executor="dask")`` against Dask's own ``client.map`` + ``gather``,
on the same cluster, side by side in one run (issue 13).

Run: ``pip install -e ".[bench]"`` then ``python benchmarks/dask_peers.py``
(``--quick`` for a tenth of each workload).

One Dask ``LocalCluster`` (2 worker processes, 2 threads each) serves both peers:

- ``client.map(func, items, pure=False)`` + ``client.gather``: one Dask task per
  item, what a Dask user writes first;
- ``bw.map(processor, items, executor="dask")`` against a real ``jupyter server``
  whose ``dask_address`` is that cluster's scheduler: items go out in chunks,
  every outcome is committed to the server's SQLite ledger, results come back
  in item order.

Workloads: 100,000 no-op items (``operator.pos``) and 200 CPU-bound items
(``_workloads.busy``, about 6 ms of pure Python each; the faster of three runs
per peer). Prints a table per workload, then the targets of issue 13: ``bw`` at
least 10x ``client.map`` on the no-op items and at least 0.8x on the CPU-bound.
"""

from __future__ import annotations

import argparse
import operator
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tests")]

import _workloads  # noqa: E402
from peers import server  # noqa: E402

import batch_widget as bw  # noqa: E402

WORKERS, THREADS = 2, 2


def timed(run: Callable[[], list[Any]], expected: list[Any]) -> float:
    started = time.perf_counter()
    results = run()
    seconds = time.perf_counter() - started
    if results != expected:
        raise AssertionError("wrong results")
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tenth of every workload")
    args = parser.parse_args(argv)
    scale = 10 if args.quick else 1
    # The workers (spawned by the cluster) and the server import _workloads.
    os.environ["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(HERE), os.environ.get("PYTHONPATH")])
    )
    from distributed import Client, LocalCluster

    workloads = [
        (
            "no-op",
            f"{100_000 // scale:,} no-op items",
            list(range(100_000 // scale)),
            operator.pos,
            "operator:pos",
            1,
        ),
        (
            "cpu",
            f"{200 // scale} CPU-bound items (~6 ms of pure Python each)",
            list(range(200 // scale)),
            _workloads.busy,
            "_workloads:busy",
            3,
        ),
    ]
    ratios: dict[str, float] = {}
    report = []
    with (
        LocalCluster(
            n_workers=WORKERS, threads_per_worker=THREADS, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster, set_as_default=False) as client,
        tempfile.TemporaryDirectory(prefix="bw-dask-") as tmp,
        server(Path(tmp) / "server", dask_address=cluster.scheduler_address) as handle,
    ):
        bw.connect(handle.url, handle.token)
        bw.map("operator:pos", range(10), executor="dask")  # connects the server's client

        for key, name, items, func, processor, repeat in workloads:
            expected = [func(item) for item in items]

            def raw(func: Callable[[Any], Any] = func, items: list[Any] = items) -> list[Any]:
                return list(client.gather(client.map(func, items, pure=False)))

            def ours(processor: str = processor, items: list[Any] = items) -> list[Any]:
                return bw.map(processor, items, executor="dask")

            seconds: dict[str, float] = {}
            for peer, run in (('bw.map executor="dask"', ours), ("client.map + gather", raw)):
                seconds[peer] = min(timed(run, expected) for _ in range(repeat))
                print(f"{name}: {peer}: {seconds[peer]:.2f} s", flush=True)
            reference = seconds["client.map + gather"]
            ratios[key] = reference / seconds['bw.map executor="dask"']
            lines = [
                f"\n### {name}\n",
                "| peer | seconds | items/s | speed vs client.map |",
                "|---|---|---|---|",
            ]
            for peer, value in seconds.items():
                lines.append(
                    f"| {peer} | {value:.2f} | {len(items) / value:,.0f} | "
                    f"{reference / value:.2f}x |"
                )
            report.append("\n".join(lines))
    print(
        f"\nOne LocalCluster: {WORKERS} worker processes x {THREADS} threads, "
        f"{os.cpu_count()} cores."
    )
    print("\n".join(report))
    print("\n| target | measured | |\n|---|---|---|")
    for key, target, label in (("no-op", 10.0, "no-op items"), ("cpu", 0.8, "CPU-bound items")):
        met = "met" if ratios[key] >= target else "NOT met"
        print(f"| {label}: bw >= {target:g}x client.map | {ratios[key]:.2f}x | {met} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
