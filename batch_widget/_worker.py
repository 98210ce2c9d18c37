"""What runs inside a worker: resolve a processor, run a chunk of items.

Kept free of tornado and jupyter_server so a process-pool child imports little.
Each outcome is a tuple in the column order of the store's result UPDATE, so
the driver hands it to SQLite without rebuilding it.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import json
import os
import re
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from typing import Any

import cloudpickle

Processor = Callable[..., Any]
#: ``(status, result_json, error, traceback, duration, job_key, index)``
Outcome = tuple[str, "str | None", "str | None", "str | None", "float | None", int, int]
#: Status of an item a cancelled or stopping chunk never started (it goes back to pending).
SKIPPED = "pending"

_IMPORT_PATH = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
_process_cancel: Any = None


class ProcessorError(Exception):
    """The processor cannot be resolved to a callable."""


def check_import_path(path: str) -> None:
    """Raise ``ProcessorError`` unless ``path`` reads ``package.module:function``."""
    if not _IMPORT_PATH.match(path):
        raise ProcessorError(
            f"processor {path!r} is not an import path of the form 'package.module:function'"
        )


@functools.lru_cache(maxsize=64)
def resolve(ref: str | bytes) -> Processor:
    """Turn an import path or a cloudpickled function into a callable."""
    if isinstance(ref, bytes):
        try:
            func = cloudpickle.loads(ref)
        except Exception as exc:
            raise ProcessorError(f"the pickled function cannot be loaded: {exc}") from exc
    else:
        check_import_path(ref)
        module_name, _, attr = ref.partition(":")
        try:
            func = importlib.import_module(module_name)
            for part in attr.split("."):
                func = getattr(func, part)
        except (ImportError, AttributeError) as exc:
            raise ProcessorError(f"processor {ref!r} cannot be imported: {exc}") from exc
    if not callable(func):
        raise ProcessorError(f"processor {ref!r} is not callable")
    return func  # type: ignore[no-any-return]  # checked callable just above


def init_process(cancel_event: Any, niceness: int, server_pid: int) -> None:
    """Process-pool initializer: remember the job's cancel event, yield the CPU to the server.

    It also starts a watch that ends this worker when the server is gone: an idle
    worker blocks on a queue whose write end it holds itself, and a hung item never
    returns, so neither would notice a SIGKILLed server on its own.
    """
    global _process_cancel  # noqa: PLW0603  # one event per child process, set once
    _process_cancel = cancel_event
    with contextlib.suppress(OSError):  # the forkserver may already run at this niceness
        os.setpriority(os.PRIO_PROCESS, 0, niceness)
    threading.Thread(target=_exit_with_server, args=(server_pid,), daemon=True,
                     name="batch-server-watch").start()


def _exit_with_server(server_pid: int, every: float = 0.5) -> None:
    """End this process (at once, like the server did) when the server is gone.

    Two signs, either is enough: ``server_pid`` no longer exists, or this worker's
    parent (the forkserver, which exits when the server closes its end of their
    pipe) changed: the second also covers a dead server nobody has reaped yet.
    """
    parent = os.getppid()
    while True:
        time.sleep(every)
        if os.getppid() != parent:
            os._exit(1)
        try:
            os.kill(server_pid, 0)
        except (ProcessLookupError, PermissionError):  # gone, or the pid was reused
            os._exit(1)


def run_chunk(
    ref: str | bytes,
    params: dict[str, Any],
    job_key: int,
    chunk: Sequence[tuple[int, str]],
    cancel: threading.Event | None = None,
) -> list[Outcome]:
    """Run the processor over ``chunk`` of ``(index, input_json)``; never raises.

    Items not started once ``cancel`` is set come back as ``SKIPPED``.
    """
    stop = cancel if cancel is not None else _process_cancel
    func = resolve(ref)
    outcomes: list[Outcome] = []
    append = outcomes.append
    clock = time.perf_counter
    for index, raw in chunk:
        if stop is not None and stop.is_set():
            append((SKIPPED, None, None, None, None, job_key, index))
            continue
        started = clock()
        try:
            result = func(json.loads(raw), **params)
        except BaseException as exc:  # sys.exit() or Ctrl-C in an item fails it
            append(("failed", None, _describe(exc), traceback.format_exc(), clock() - started,
                    job_key, index))
            continue
        duration = clock() - started
        try:
            encoded = json.dumps(result)
        except (TypeError, ValueError) as exc:
            append(("failed", None, f"result is not JSON-serialisable: {exc}", None, duration,
                    job_key, index))
            continue
        append(("done", encoded, None, None, duration, job_key, index))
    return outcomes


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"
