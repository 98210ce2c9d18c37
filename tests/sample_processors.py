"""Processors the tests name by import path (``sample_processors:...``).

``tests/`` is on ``sys.path`` under pytest; subprocess servers get it through
``PYTHONPATH``.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import os
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any


def flaky(item: Any, marker_dir: str, seconds: float = 0.0) -> Any:
    """Fail the first time an item is seen, succeed after: what ``retry`` is for."""
    time.sleep(seconds)
    marker = Path(marker_dir) / f"{item}.seen"
    if not marker.exists():
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
        raise RuntimeError(f"first attempt at {item} fails")
    return {"item": item, "pid": os.getpid()}


def unserialisable(item: Any) -> Any:
    """Return something JSON cannot encode for odd items."""
    return object() if item % 2 else item


def square(item: int) -> int:
    """CPU-light pure function, usable from worker processes."""
    return item * item


def pid_of_worker(item: Any) -> int:
    """The process id that ran the item."""
    return os.getpid()


def niceness(item: Any) -> int:
    """The scheduling niceness of the thread running the item (Linux: per thread)."""
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


def exits(item: int, exit_on: tuple[int, ...] = (), interrupt_on: tuple[int, ...] = ()) -> int:
    """``sys.exit(2)`` or ``KeyboardInterrupt`` for chosen items, as an argparse ``main()`` does."""
    if item in exit_on:
        sys.exit(2)
    if item in interrupt_on:
        raise KeyboardInterrupt
    return item


def crash(item: int, on: tuple[int, ...] = (), how: str = "exit", seconds: float = 0.0) -> int:
    """Kill the worker process for chosen items: ``os._exit`` or a real segfault."""
    time.sleep(seconds)
    if item in on:
        if how == "segfault":
            ctypes.string_at(0)  # reads address 0: SIGSEGV
        os._exit(3)
    return item


def hang(
    item: int,
    on: tuple[int, ...] = (),
    pid_dir: str = "",
    release: str = "",
    seconds: float = 0.0,
) -> int:
    """Never return for chosen items (a processor stuck on a dead network share).

    Writes ``<pid_dir>/<item>.pid`` first, so a test knows which process is stuck.
    A test that must not leave a stuck thread behind creates the file ``release``.
    """
    if pid_dir:
        Path(pid_dir, f"{item}.pid").write_text(str(os.getpid()), encoding="utf-8")
    if item in on:
        while not (release and Path(release).exists()):
            time.sleep(0.05)
    time.sleep(seconds)
    return item


def once(item: Any, marker_dir: str, seconds: float = 0.0, gate: str | None = None) -> Any:
    """Leave one marker file per run of an item: a test counts how often each item ran.

    With a ``gate`` (see :func:`gated`), item ``i`` ends only once the gate lets it.
    """
    time.sleep(seconds)
    if gate is not None:
        gated(item, gate)
    Path(marker_dir, f"{item}.{os.getpid()}.{uuid.uuid4().hex}").touch()
    return item


def sleep_then_fail(item: Any, seconds: float = 0.2, fail: tuple[Any, ...] = ()) -> Any:
    """Sleep, then raise for items in ``fail``: a retry of them takes time, as in real life."""
    time.sleep(seconds)
    if item in fail:
        raise ValueError(f"item {item!r} failed after {seconds} s")
    return item


def spin(item: Any, seconds: float = 0.05) -> Any:
    """Burn ``seconds`` of CPU in pure Python, holding the GIL as numeric loops do."""
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass
    return item


def sized_result(size: int) -> str:
    """A result of ``size`` characters (its JSON adds two quotes)."""
    return "r" * size


#: Callable, in this module, but not a function defined here: must not pass an allowlist.
partial_sleep = functools.partial(time.sleep)


def not_a_number(item: Any) -> Any:
    """Return NaN and infinities, as pandas' reductions do on empty or odd data."""
    return {"mean": float("nan"), "range": [float("-inf"), float("inf")], "item": item}


class Unprintable(ValueError):
    """An exception whose message cannot be made: its ``__str__`` raises."""

    def __str__(self) -> str:
        raise RuntimeError("no message for you")


def unprintable(item: int) -> int:
    """Raise an :class:`Unprintable` for item 1."""
    if item == 1:
        raise Unprintable
    return item


def relative_output(item: str) -> dict[str, list[str]]:
    """Name an output by a path relative to the server's root dir."""
    return {"outputs": [f"out/{item}.txt"]}


def some_outputs(item: int) -> Any:
    """``item % 3`` outputs for an int (none for multiples of 3); odd results for the rest."""
    if item == -1:
        return "outputs"  # a string result that merely mentions the word
    if item == -2:
        return {"outputs": "not a list"}
    return {"outputs": [f"m/{item}/{k}.txt" for k in range(item % 3)]}


def released(gate: str) -> int:
    """How many items the gate file at ``gate`` lets finish (0 while it does not exist)."""
    try:
        return int(Path(gate).read_text(encoding="utf-8") or 0)
    except (FileNotFoundError, ValueError):
        return 0


def gated(
    item: int, gate: str, seconds: float = 0.0, fail: Any = (), timeout: float = 300.0
) -> Any:
    """Sleep ``seconds``, then wait until the gate lets item ``item`` finish.

    The test that owns the gate file decides when items end (see
    ``tests/e2e/_lab.py:Gate``): item ``i`` finishes once the number in the file
    exceeds ``i``, so a job cannot run out before the test has done what it
    needs a running job for. Raises ``ValueError`` for items in ``fail``, like
    ``batch_widget.processors:sleep``; gives up after ``timeout`` seconds so an
    abandoned gate never holds a server thread for good.
    """
    time.sleep(seconds)
    deadline = time.monotonic() + timeout
    while released(gate) <= item:
        if time.monotonic() > deadline:
            raise TimeoutError(f"gate {gate} still closed for item {item} after {timeout} s")
        time.sleep(0.01)
    if item in fail:
        raise ValueError(f"item {item!r} was asked to fail")
    return item


def surrogate_error(item: int) -> int:
    """Fail item 1 with a message holding a lone surrogate, as an undecodable file name does."""
    if item == 1:
        name = b"a\xffb".decode("utf-8", "surrogateescape")
        raise FileNotFoundError(f"no such file: {name}")
    return item


def where_and_when(
    item: Any, seconds: float = 0.0, slow_from: int | None = None, slow_seconds: float = 0.0
) -> dict[str, Any]:
    """The item, the pid that ran it and when it started (``time.monotonic``, one clock
    for every process of the machine), after ``seconds`` of work, or ``slow_seconds``
    from item ``slow_from`` on (items that slow down after their chunks were sized)."""
    started = time.monotonic()
    slow = slow_from is not None and item >= slow_from
    time.sleep(slow_seconds if slow else seconds)
    return {"item": item, "pid": os.getpid(), "started": started}


def chatty(item: int, lines: int = 3, fail_on: tuple[int, ...] = ()) -> int:
    """Print, write to stderr and log ``lines`` lines each, all naming the item."""
    for line in range(lines):
        print(f"item {item} says {line}")
        sys.stderr.write(f"item {item} warns {line}\n")
        logging.getLogger("chatty").warning("item %d logs %d", item, line)
        time.sleep(0.0005)  # let the other worker threads interleave
    if item in fail_on:
        raise ValueError(f"item {item} failed after talking")
    return item


def loud(item: int, size: int = 1024 * 1024) -> int:
    """Print ``size`` bytes."""
    sys.stdout.write("x" * size)
    return item


def _attempt_number(marker_dir: str, item: Any) -> int:
    """Count a call for ``item`` in a file every worker (thread, process, Dask) sees."""
    marker = Path(marker_dir) / f"{item}.attempts"
    marker.parent.mkdir(parents=True, exist_ok=True)
    with open(marker, "ab") as stream:
        stream.write(b".")
        return stream.tell()


def fails_first(
    item: int, marker_dir: str, failures: dict[str, int], error: str = "ConnectionError"
) -> dict[str, int]:
    """Raise ``error`` on the first ``failures[str(item)]`` calls for an item, then succeed.

    Returns the call's number, so a test compares it with the item's ``attempts``.
    """
    attempt = _attempt_number(marker_dir, item)
    if attempt <= failures.get(str(item), 0):
        exc_class = {"ConnectionError": ConnectionError, "ValueError": ValueError}[error]
        raise exc_class(f"attempt {attempt} at {item} fails")
    return {"item": item, "attempt": attempt}


def fails_by_kind(item: int, marker_dir: str) -> int:
    """Odd items: a ``ConnectionError`` (an ``OSError``) on the first call; even items: always
    a ``ValueError``."""
    attempt = _attempt_number(marker_dir, item)
    if item % 2 == 0:
        raise ValueError(f"item {item} is bad (attempt {attempt})")
    if attempt == 1:
        raise ConnectionError(f"item {item}: connection reset (attempt {attempt})")
    return attempt


def dies_on(item: int, marker_dir: str, on: tuple[int, ...] = ()) -> int:
    """End the worker process on every call for the chosen items; count each call."""
    attempt = _attempt_number(marker_dir, item)
    if item in on:
        os._exit(3)
    return attempt
