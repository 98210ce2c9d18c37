"""Kernel side: find this user's batch server, or start it (SPEC §12).

The batch server (``python -m batch_widget serve``) is the last place discovery
looks. A live one is described by ``batch_widget-server.json`` in the Jupyter
runtime dir; a kernel that finds none starts one, detached from itself (its own
session, its output in ``batch_widget-server.log`` beside that file), so its
jobs outlive the kernel. An exclusive lock on ``batch_widget-server.lock``
makes kernels that start at the same moment end up with one server.

Standard library only: a kernel must not load the server.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from batch_widget.protocol import RUNTIME_FILE, BatchError

__all__ = ["START_TIMEOUT", "BatchServerUnavailable", "batch_api_status", "batch_server",
           "pid_alive", "read_runtime_file"]

#: Seconds a kernel waits for a batch server it started to answer.
START_TIMEOUT = 60.0
#: Seconds a live batch server gets to answer a probe.
PROBE_TIMEOUT = 5.0
LOCK_FILE = "batch_widget-server.lock"
LOG_FILE = "batch_widget-server.log"


class BatchServerUnavailable(BatchError):
    """The batch server could not be started; the message says why."""


def read_runtime_file(runtime_dir: Path) -> dict[str, Any] | None:
    """The batch server's runtime file, if it names a live process; else None."""
    try:
        info = json.loads((runtime_dir / RUNTIME_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(info, dict) or not isinstance(info.get("pid"), int):
        return None
    if not isinstance(info.get("url"), str) or not pid_alive(info["pid"]):
        return None
    return info


def pid_alive(pid: int) -> bool:
    """Return True if a process with this pid exists (signal 0 probes, sends nothing)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def batch_api_status(url: str, token: str, timeout: float = PROBE_TIMEOUT) -> int | None:
    """The HTTP status ``GET {url}api/batch/jobs?limit=1`` answers with ``token``; None
    when the server cannot be reached."""
    request = urllib.request.Request(f"{url}api/batch/jobs?limit=1",
                                     headers={"Authorization": f"token {token}"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except (OSError, ValueError):
        return None


def _answers(info: dict[str, Any]) -> bool:
    """True if the batch server in ``info`` answers its batch API with its token."""
    return batch_api_status(info["url"], str(info.get("token", ""))) == 200


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (waiting for it), for one kernel at a time."""
    with path.open("a") as file:
        fcntl.flock(file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(file, fcntl.LOCK_UN)


def batch_server(runtime_dir: Path, timeout: float = START_TIMEOUT) -> dict[str, Any]:
    """Return the live batch server's runtime record, starting the server if none runs.

    Raises
    ------
    BatchServerUnavailable
        If the server exits before it answers or does not answer within
        ``timeout`` seconds; the message quotes the end of its log.
    """
    try:
        runtime_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        lock = runtime_dir / LOCK_FILE
        lock.touch(mode=0o600, exist_ok=True)
    except OSError as exc:
        raise BatchServerUnavailable(
            f"the batch server cannot start: the Jupyter runtime dir {runtime_dir} is not "
            f"writable ({exc}). Set JUPYTER_RUNTIME_DIR to a writable folder") from exc
    with _locked(lock):
        info = read_runtime_file(runtime_dir)
        if info is not None and _answers(info):
            return info
        return _start(runtime_dir, timeout)


def _start(runtime_dir: Path, timeout: float) -> dict[str, Any]:
    log_path = runtime_dir / LOG_FILE
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JPY_", "BATCH_WIDGET_"))}
    env["BATCH_WIDGET_LOG"] = str(log_path)
    env["JUPYTER_RUNTIME_DIR"] = str(runtime_dir)
    with log_path.open("ab") as log:
        process = subprocess.Popen(  # detached: its own session, so it outlives the kernel
            [sys.executable, "-m", "batch_widget", "serve"], stdin=subprocess.DEVNULL,
            stdout=log, stderr=subprocess.STDOUT, cwd=Path.home(), env=env,
            start_new_session=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        code = process.poll()
        if code is not None:
            raise BatchServerUnavailable(
                f"the batch server could not start: `{sys.executable} -m batch_widget serve` "
                f"exited with code {code}. The end of its log ({log_path}):\n"
                f"{_tail(log_path)}")
        info = read_runtime_file(runtime_dir)
        if info is not None and info["pid"] == process.pid and _answers(info):
            return info
        time.sleep(0.1)
    raise BatchServerUnavailable(
        f"the batch server (pid {process.pid}) did not answer within {timeout:g} s; it is "
        f"still starting or stuck. Its log ({log_path}) ends with:\n{_tail(log_path)}")


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as exc:
        return f"(cannot read it: {exc})"
