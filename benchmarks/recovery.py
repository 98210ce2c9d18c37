"""Measure the recovery times of the seed's "Recovery Time Estimates" table.

Runs a real JupyterLab with batch_widget, a fault-injecting TCP proxy in front
of it and headless Chromium, with the DEFAULT widget and server settings
(reconnect 5 s, watchdog every 15 s, timeout 60 s, heartbeat 15 s). For each
row it starts a fresh job (one worker, an item every 0.5 s), waits until the
widget is live, injects the fault and measures:

- detection: fault → the widget reacts (leaves ``live``, or for a silent
  broadcaster: its first watchdog poll);
- recovery: the fault is over (or detected, when it never ends) → the UI is
  current again (the widget's done+failed ≥ the server's, sampled just before);
- total downtime: fault → UI current again.

Prints the measured figures beside the seed's and writes ``docs/recovery.md``.
Takes about six minutes; not part of CI::

    python benchmarks/recovery.py [--out docs/recovery.md]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import itertools
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "e2e")]  # the e2e harness

from _lab import LabHandle, launch_chromium, running_lab, widget_cell  # noqa: E402
from _page import (  # noqa: E402
    attrs,
    install_recorder,
    open_warm_notebook,
    recorded,
    show_cells,
    wait_for,
)
from _proxy import FaultProxy  # noqa: E402

ITEM_SECONDS = 0.5
ITEMS = 600
SAMPLE_EVERY = 0.1
EXTENDED_CUT = 72.5  # > watchdog timeout + interval; not a multiple of the 5 s browser retry


@dataclass
class Row:
    """One line of the table: the seed's estimates and what was measured."""

    issue: str
    seed_detection: str
    seed_recovery: str
    seed_total: str
    detection: float | None = None
    recovery: float | None = None
    total: float | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class Sample:
    t: float  # wall clock, seconds
    server: int  # done + failed on the server, read first
    shown: int  # done + failed in the widget, read second
    connection: str

    @property
    def current(self) -> bool:
        return self.shown >= self.server


class Bench:
    """A page showing one live job, with the helpers every row needs."""

    def __init__(self, page: Any, lab: LabHandle, proxy: FaultProxy, job_id: str):
        self.page, self.lab, self.proxy, self.job_id = page, lab, proxy, job_id
        self.samples: list[Sample] = []

    def sample(self) -> Sample:
        server = self.lab.job(self.job_id)
        shown = attrs(self.page)
        sample = Sample(
            time.time(),
            server["done"] + server["failed"],
            shown["done"] + shown["failed"],
            str(shown["connection"]),
        )
        self.samples.append(sample)
        return sample

    def run_until(self, done: Callable[[], bool], timeout: float) -> None:
        """Sample every 0.1 s until ``done()`` (checked after each sample)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sample()
            if done():
                return
            time.sleep(SAMPLE_EVERY)
        raise TimeoutError(f"gave up after {timeout:.0f} s")

    def transition(self, since: float, predicate: Callable[[dict[str, Any]], bool]) -> float | None:
        """Wall time (s) of the first recorded attribute change after ``since`` matching."""
        for entry in recorded(self.page, 0):
            if entry["t"] / 1000 >= since and predicate(entry):
                return float(entry["t"]) / 1000
        return None

    def current_after(self, since: float, stale_first: bool = True) -> float | None:
        """First sample after ``since`` where the UI is current (after being stale)."""
        stale = not stale_first
        for sample in self.samples:
            if sample.t < since:
                continue
            if not sample.current:
                stale = True
            elif stale:
                return sample.t
        return None

    def shown_changes(self, since: float) -> list[float]:
        """Times (s) the widget's done+failed changed after ``since``."""
        times, last = [], None
        for entry in recorded(self.page, 0):
            value = entry["done"] + entry["failed"]
            if entry["t"] / 1000 >= since and last is not None and value != last:
                times.append(entry["t"] / 1000)
            last = value
        return times


def need(value: Any, what: str) -> Any:
    """``value``, or a clear error when the measurement never saw ``what``."""
    if value is None:
        raise RuntimeError(f"never observed: {what}")
    return value


def not_live(entry: dict[str, Any]) -> bool:
    return entry["connection"] != "live"


def is_live(entry: dict[str, Any]) -> bool:
    return entry["connection"] == "live"


# -- the rows ----------------------------------------------------------------------------


def brief_sse_drop(bench: Bench, row: Row) -> None:
    t0 = time.time()
    bench.proxy.kill_sse()
    time.sleep(0.5)
    bench.proxy.restore()
    bench.run_until(
        lambda: (
            bench.transition(t0, not_live) is not None
            and bench.transition(bench.transition(t0, not_live) or t0, is_live) is not None
            and bench.current_after(t0) is not None
        ),
        60,
    )
    detected = bench.transition(t0, not_live)
    detected = need(detected, "leaving live")
    live = need(bench.transition(detected, is_live), "live again")
    current = need(bench.current_after(t0), "current again")
    row.detection, row.recovery, row.total = detected - t0, current - (t0 + 0.5), current - t0
    row.notes.append(f"SSE closed for 0.5 s; live again after {live - t0:.1f} s")


def extended_disconnect(bench: Bench, row: Row) -> None:
    t0 = time.time()
    bench.proxy.cut(EXTENDED_CUT)
    end = t0 + EXTENDED_CUT
    bench.run_until(
        lambda: time.time() > end and bench.current_after(end, stale_first=False) is not None,
        EXTENDED_CUT + 60,
    )
    detected = bench.transition(t0, not_live)
    polling = bench.transition(t0, lambda e: e["connection"] == "polling")
    live = bench.transition(end, is_live)
    current = need(bench.current_after(end, stale_first=False), "current again")
    detected = need(detected, "leaving live")
    row.detection, row.recovery, row.total = detected - t0, current - end, current - t0
    row.notes.append(f"all traffic cut for {EXTENDED_CUT:.0f} s")
    row.notes.append(
        f"`polling` after {polling - t0:.1f} s" if polling else "never showed `polling`"
    )
    if live:
        row.notes.append(f"live {live - end:.1f} s after the network returned")


def sse_permanently_dead(bench: Bench, row: Row) -> None:
    t0 = time.time()
    bench.proxy.kill_sse()
    bench.run_until(lambda: len(bench.shown_changes(t0 + 1)) >= 3, 150)
    detected = bench.transition(t0, not_live)
    polling = bench.transition(t0, lambda e: e["connection"] == "polling")
    changes = bench.shown_changes(t0 + 1)
    first_poll = changes[0]
    current = need(bench.current_after(first_poll - 0.05, stale_first=False), "current again")
    detected = need(detected, "leaving live")
    row.detection, row.recovery, row.total = detected - t0, current - first_poll, current - t0
    gaps = [b - a for a, b in itertools.pairwise(changes)]
    row.notes.append(
        f"`polling` after {polling - t0:.1f} s" if polling else "never showed `polling`"
    )
    row.notes.append("then a poll every " + ", ".join(f"{gap:.1f}" for gap in gaps) + " s")
    bench.proxy.restore()


def backend_broadcast_fail(bench: Bench, row: Row) -> None:
    t0 = time.time()
    bench.proxy.silence_sse(heartbeats=True)
    time.sleep(0.3)
    bench.run_until(lambda: bool(bench.shown_changes(t0 + 0.3)), 120)
    first_poll = bench.shown_changes(t0 + 0.3)[0]
    bench.run_until(
        lambda: bench.current_after(first_poll - 0.05, stale_first=False) is not None, 10
    )
    current = bench.current_after(first_poll - 0.05, stale_first=False)
    assert current is not None
    row.detection, row.recovery, row.total = first_poll - t0, current - first_poll, current - t0
    states = {e["connection"] for e in recorded(bench.page, 0) if e["t"] / 1000 >= t0}
    row.notes.append(
        "job events dropped, heartbeats pass; states seen: " + ", ".join(sorted(states))
    )
    bench.proxy.restore()


ROWS: list[tuple[Row, Callable[[Bench, Row], None]]] = [
    (Row("Brief SSE drop", "0s (immediate)", "5s", "5s"), brief_sse_drop),
    (Row("Extended disconnect", "15-60s", "5s after detection", "20-65s"), extended_disconnect),
    (
        Row("SSE permanently dead", "60s", "N/A (watchdog takes over)", "60s initial"),
        sse_permanently_dead,
    ),
    (Row("Backend broadcast fail", "60s", "Immediate", "60s"), backend_broadcast_fail),
]


# -- running -------------------------------------------------------------------------------


@contextmanager
def bench_page(browser: Any, lab: LabHandle, proxy: FaultProxy, name: str) -> Iterator[Bench]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(90_000)
    page = context.new_page()
    install_recorder(page)
    job_id = ""
    try:
        open_warm_notebook(page, lab, f"{name}.ipynb", via=proxy.url)
        job = lab.create_job(range(ITEMS), seconds=ITEM_SECONDS, name=name, max_workers=1)
        job_id = job["id"]
        show_cells(page, [widget_cell(job_id, defaults=True)])
        page.locator(".bw-progress[data-connection=live]").wait_for()
        wait_for(lambda: attrs(page)["done"] >= 2, 30, what="progress")
        yield Bench(page, lab, proxy, job_id)
    finally:
        proxy.restore()
        if job_id:
            # Best effort: the job may have ended.
            with contextlib.suppress(Exception):
                lab.api("POST", f"api/batch/jobs/{job_id}/cancel", {})
        context.close()
        lab.shutdown_kernels()


def fmt(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds:.1f}s"


def markdown(rows: list[Row]) -> str:
    lines = [
        "# Recovery times, measured",
        "",
        "Measured by `benchmarks/recovery.py` on "
        f"{dt.date.today().isoformat()}: real JupyterLab, headless Chromium, a fault-injecting",
        "TCP proxy between them; DEFAULT settings (`reconnect_delay` 5000 ms, `watchdog_interval`",
        "15000 ms, `watchdog_timeout` 60000 ms, server heartbeat 15 s); one worker, an item",
        f"every {ITEM_SECONDS:g} s.",
        "",
        "- **Detection**: fault → the widget reacts (leaves `live`; for a silent broadcaster, its",
        "  first watchdog poll).",
        "- **Recovery**: fault over (network back, or the fault detected when it never ends) → UI",
        "  current again (the widget's done+failed ≥ the server's).",
        "- **Total downtime**: fault → UI current again.",
        "",
        "Reading the figures against the seed:",
        "",
        "- A dropped or refused stream is detected at once (the browser's `error` event), not in",
        "  15-60 s: the watchdog's range only matters when nothing tells the browser.",
        "- A stream that stays down switches the widget to polling exactly `watchdog_timeout`",
        "  (60 s) after it went down; from then on it polls every `watchdog_interval` (15 s),",
        "  not every 60 s.",
        "- A silent broadcaster (connection open, heartbeats flowing, no job events) is only",
        "  seen by the watchdog's check, which runs every `watchdog_interval`: it polls at the",
        "  first check after `watchdog_timeout`, so between 60 and 75 s, as the seed's design",
        "  (a 15 s check of a 60 s age) implies.",
        "- Once the network is back, the browser's own retry (every `retry:` 5 s) reopens the",
        "  stream within 0-5 s and the poll on `open` makes the UI current at once; an",
        "  outage's downtime is its length plus that (the extended disconnect here lasts",
        f"  {EXTENDED_CUT:g} s).",
        "",
        "| Issue | Detection (seed) | Detection (measured) | Recovery (seed) | Recovery (measured) "
        "| Total downtime (seed) | Total downtime (measured) | Notes |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        cells = [
            f"**{row.issue}**",
            row.seed_detection,
            fmt(row.detection),
            row.seed_recovery,
            fmt(row.recovery),
            row.seed_total,
            fmt(row.total),
            "; ".join(row.notes),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "recovery.md")
    parser.add_argument("--only", help="run only the rows whose name contains this")
    args = parser.parse_args(argv)

    from playwright.sync_api import sync_playwright

    rows: list[Row] = []
    with (
        tempfile.TemporaryDirectory(prefix="bw-recovery-") as tmp,
        running_lab(Path(tmp)) as lab,
        FaultProxy(lab.port) as proxy,
        sync_playwright() as playwright,
    ):
        browser = launch_chromium(playwright)
        for index, (row, measure) in enumerate(ROWS):
            if args.only and args.only.lower() not in row.issue.lower():
                continue
            print(f"measuring: {row.issue} ...", flush=True)
            started = time.monotonic()
            try:
                with bench_page(browser, lab, proxy, f"recovery_{index}") as bench:
                    measure(bench, row)
            except Exception as error:
                row.notes.append(f"measurement failed: {error!r}")
            print(
                f"  detection {fmt(row.detection)} (seed {row.seed_detection}), "
                f"recovery {fmt(row.recovery)} (seed {row.seed_recovery}), "
                f"total {fmt(row.total)} (seed {row.seed_total}); {'; '.join(row.notes)} "
                f"[{time.monotonic() - started:.0f} s]",
                flush=True,
            )
            rows.append(row)
        browser.close()

    table = markdown(rows)
    print()
    print(table)
    if not args.only:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(table, encoding="utf-8")
        print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
