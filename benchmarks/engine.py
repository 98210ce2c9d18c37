"""Engine benchmark (issue 2): throughput against a bare thread pool, and memory.

Run: ``python benchmarks/engine.py``. Prints figures measured side by side in
one run. Each measurement runs in a fresh child process so one cannot warm or
bloat another.

1. Throughput of a 100,000-item job of ``sleep`` with ``seconds=0`` (every
   result committed to SQLite) against
   ``concurrent.futures.ThreadPoolExecutor(4).map`` of the same function over
   the same items. Target: ratio (job items/s over pool items/s) >= 1.0.
2. The same job with ``retries=3`` (items that never fail): the retry policy
   costs nothing until an item fails. Target: within 5 % of the job without it.
3. Peak RSS growth of a 1,000,000-item job. Target: under 300 MB.
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

THROUGHPUT_ITEMS = 100_000
MEMORY_ITEMS = 1_000_000
WORKERS = 4


def _rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_job(n_items: int, retries: int | None = None) -> dict[str, float]:
    """Run one ``sleep(seconds=0)`` job of ``n_items`` on a fresh store; measure it."""
    from batch_widget.engine import JobManager, JobRequest, Settings, Store

    with tempfile.TemporaryDirectory() as tmp:
        before = _rss_mb()
        started = time.perf_counter()
        store = Store(Path(tmp) / "jobs.sqlite")
        manager = JobManager(store, None, Settings(max_workers=WORKERS, max_items=n_items))
        manager.start()
        job = manager.create(
            JobRequest(
                items=list(range(n_items)),
                processor="batch_widget.processors:sleep",
                params={"seconds": 0},
                **({} if retries is None else {"retries": retries}),
            )
        )
        final = manager.wait(job["id"])
        elapsed = time.perf_counter() - started
        items, _ = manager.items(job["id"], offset=n_items - 1, limit=1)
        manager.stop()
        store.close()
    assert final["status"] == "completed", final
    assert final["done"] == n_items, final
    assert items[0]["result"] == n_items - 1, items
    return {"seconds": elapsed, "rss_before": before, "peak": _peak_rss_mb()}


def run_pool(n_items: int) -> dict[str, float]:
    """``ThreadPoolExecutor(4).map`` of the same function over the same items."""
    from batch_widget.processors import sleep

    started = time.perf_counter()
    with ThreadPoolExecutor(WORKERS) as pool:
        results = list(pool.map(lambda item: sleep(item, seconds=0), range(n_items)))
    elapsed = time.perf_counter() - started
    assert results[-1] == n_items - 1
    return {"seconds": elapsed}


def run_job_retrying(n_items: int) -> dict[str, float]:
    """:func:`run_job` with ``retries=3``: the policy on, no item failing."""
    return run_job(n_items, retries=3)


def _in_child(name: str, n_items: int) -> dict[str, float]:
    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        return pool.apply(globals()[name], (n_items,))  # type: ignore[no-any-return]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=THROUGHPUT_ITEMS)
    parser.add_argument("--memory-items", type=int, default=MEMORY_ITEMS)
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="alternating rounds of job and pool; the best of each is compared",
    )
    args = parser.parse_args()

    job_times, retrying_times, pool_times = [], [], []
    for _ in range(args.rounds):
        job_times.append(_in_child("run_job", args.items)["seconds"])
        retrying_times.append(_in_child("run_job_retrying", args.items)["seconds"])
        pool_times.append(_in_child("run_pool", args.items)["seconds"])
    job_best, pool_best = min(job_times), min(pool_times)
    retrying_best = min(retrying_times)
    ratio = pool_best / job_best
    print(
        f"throughput, {args.items:,} items of sleep(seconds=0), {WORKERS} workers, "
        f"best of {args.rounds} alternating rounds"
    )
    print(
        f"  batch_widget job (every result committed): {job_best:7.2f} s  "
        f"{args.items / job_best:>10,.0f} items/s   rounds: "
        + ", ".join(f"{t:.2f}" for t in job_times)
    )
    print(
        f"  the same job with retries=3:                 {retrying_best:7.2f} s  "
        f"{args.items / retrying_best:>10,.0f} items/s   rounds: "
        + ", ".join(f"{t:.2f}" for t in retrying_times)
    )
    print(
        f"  ThreadPoolExecutor({WORKERS}).map:            {pool_best:7.2f} s  "
        f"{args.items / pool_best:>10,.0f} items/s   rounds: "
        + ", ".join(f"{t:.2f}" for t in pool_times)
    )
    print(
        f"  ratio job/pool throughput: {ratio:.2f}  (target >= 1.0: "
        f"{'met' if ratio >= 1.0 else 'NOT met'})"
    )
    cost = retrying_best / job_best - 1
    print(
        f"  retries=3 on items that never fail: {cost:+.1%} time  (target within 5 %: "
        f"{'met' if cost <= 0.05 else 'NOT met'})"
    )

    memory = _in_child("run_job", args.memory_items)
    growth = memory["peak"] - memory["rss_before"]
    print(
        f"memory, {args.memory_items:,}-item job: RSS before {memory['rss_before']:.0f} MB, "
        f"peak {memory['peak']:.0f} MB, growth {growth:.0f} MB in {memory['seconds']:.1f} s "
        f"(target < 300 MB: {'met' if growth < 300 else 'NOT met'})"
    )
    return 0 if ratio >= 1.0 and growth < 300 else 1


if __name__ == "__main__":
    sys.exit(main())
