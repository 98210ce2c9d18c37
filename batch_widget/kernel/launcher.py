"""Kernel side: find this user's batch server, or start it (docs/batch-server.md).

The batch server (``python -m batch_widget serve``) is the last place discovery
looks. A live one is described by ``batch_widget-server.json`` in the Jupyter
runtime dir; a kernel that finds none starts one, detached from itself (its own
session, its output in ``batch_widget-server.log`` beside that file), so its
jobs outlive the kernel. An exclusive lock on ``batch_widget-server.lock``
(``filelock``'s, whichever the platform has) makes kernels that start at the
same moment end up with one server.

Nothing in the runtime dir is taken on trust (docs/security.md): the dir must be this
user's and writable by nobody else, its files are opened without following
symlinks, and a runtime file is used only if it is this user's alone, names a
loopback URL and a live batch server process of this user, and the server at
that URL proves it knows the file's token (``HMAC-SHA256(token, nonce + url)``,
:mod:`batch_widget.runtime`) before the kernel sends it the token or anything
else. A file that fails is ignored (logged at INFO) and a fresh server started.

The standard library and ``filelock`` only: a kernel must not load the server.
"""

from __future__ import annotations

import contextlib
import hmac
import http.client
import ipaddress
import json
import logging
import os
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from filelock import FileLock

from batch_widget.kernel.errors import BatchServerUnavailable
from batch_widget.kernel.redirects import open_url
from batch_widget.protocol import RUNTIME_FILE
from batch_widget.runtime import (
    PROOF_ROUTE,
    UnsafeRuntimeDir,
    open_private,
    private_runtime_dir,
    read_private,
    runtime_proof,
)

__all__ = [
    "START_TIMEOUT",
    "BatchServerUnavailable",
    "batch_api_status",
    "batch_server",
    "batch_server_process_problem",
    "is_serve_command",
    "pid_alive",
    "read_runtime_file",
    "runtime_record",
    "serve_command",
]

#: Seconds a kernel waits for a batch server it started to answer.
START_TIMEOUT = 60.0
#: Seconds a live batch server gets to answer a probe.
PROBE_TIMEOUT = 5.0
LOCK_FILE = "batch_widget-server.lock"
LOG_FILE = "batch_widget-server.log"
_log = logging.getLogger("batch_widget")


def read_runtime_file(runtime_dir: Path) -> dict[str, Any] | None:
    """The batch server's runtime record if it can be trusted with the kernel's token
    (:func:`runtime_record`); else None, and why is logged at INFO."""
    info, why = runtime_record(runtime_dir)
    if why:
        _log.info(
            "ignoring %s: %s. Starting a batch server of your own", runtime_dir / RUNTIME_FILE, why
        )
    return info


def runtime_record(runtime_dir: Path, pid: int | None = None) -> tuple[dict[str, Any] | None, str]:
    """``(record, "")`` if the runtime file can be trusted, else ``(None, why)``.

    Trusted means: this user's file, readable by nobody else, not a symlink; a
    loopback ``http`` URL; its pid a live batch server of this user (``pid``, if
    given, is the only pid accepted); and the server at the URL proves it knows
    the token before anything is sent to it. ``why`` is empty when there is no file.
    """
    path = runtime_dir / RUNTIME_FILE
    try:
        info = json.loads(read_private(path))
    except FileNotFoundError:
        return None, ""
    except UnsafeRuntimeDir as exc:
        return None, f"it {exc.strerror}"
    except (OSError, ValueError) as exc:
        return None, f"it cannot be read as JSON ({exc})"
    why = _record_problem(info, pid)
    return (None, why) if why else (info, "")


def _record_problem(info: Any, pid: int | None) -> str | None:
    """Why a parsed runtime file cannot be trusted (checked cheapest first, the URL last)."""
    if not isinstance(info, dict):
        return "it is not a JSON object"
    url, token, owner = info.get("url"), info.get("token"), info.get("pid")
    if not isinstance(url, str) or not isinstance(token, str) or not token:
        return "it has no url or no token"
    if not isinstance(owner, int) or isinstance(owner, bool):
        return "it has no pid"
    if pid is not None and owner != pid:
        return f"it names pid {owner}, not the batch server just started (pid {pid})"
    return (
        _loopback_problem(url) or batch_server_process_problem(owner) or _proof_problem(url, token)
    )


def _loopback_problem(url: str) -> str | None:
    parts = urllib.parse.urlsplit(url)
    try:
        loopback = ipaddress.ip_address(parts.hostname or "").is_loopback and bool(parts.port)
    except ValueError:
        loopback = False
    if parts.scheme != "http" or not loopback:
        return f"its url {url!r} is not http:// on a loopback address and port"
    return None


def is_serve_command(argv: list[str]) -> bool:
    """True if ``argv`` runs the batch server (``python [-P] -m batch_widget serve ...``
    or the console command ``batch-widget serve ...``)."""
    for index, word in enumerate(argv):
        if argv[index : index + 3] == ["-m", "batch_widget", "serve"]:
            return True
        if Path(word).stem == "batch-widget" and argv[index + 1 : index + 2] == ["serve"]:
            return True
    return False


def batch_server_process_problem(pid: int) -> str | None:
    """Why ``pid`` is not a batch server process of this user; None if it is.

    Linux says who owns a process and what it runs (``/proc/<pid>``). Other POSIX
    systems only say whether it exists and may be signalled by this user (as root,
    any may); Windows is not asked. Where the platform cannot tell, the server's
    proof of the token (:func:`_proof_problem`) decides alone.
    """
    if pid <= 0:
        return f"its pid {pid} is not a process"
    if sys.platform == "win32":
        return None
    if sys.platform.startswith("linux") and Path("/proc/self/cmdline").exists():
        return _linux_process_problem(pid)
    try:
        os.kill(pid, 0)  # signal 0 probes, sends nothing
    except ProcessLookupError:
        return f"its pid {pid} is not running"
    except PermissionError:
        return f"its pid {pid} is another user's process"
    except OSError as exc:
        return f"its pid {pid} cannot be checked ({exc})"
    return None


def _linux_process_problem(pid: int) -> str | None:
    proc = Path("/proc", str(pid))
    try:
        owner = proc.stat().st_uid
        argv = [
            word.decode(errors="replace")
            for word in (proc / "cmdline").read_bytes().split(b"\0")
            if word
        ]
    except FileNotFoundError:
        return f"its pid {pid} is not running"
    except OSError as exc:
        return f"its pid {pid} cannot be checked ({exc})"
    if owner != os.geteuid():
        return f"its pid {pid} is another user's process (uid {owner})"
    if not is_serve_command(argv):
        return f"its pid {pid} is not a batch server but {' '.join(argv)[:200]!r}"
    return None


def _proof_problem(url: str, token: str, timeout: float = PROBE_TIMEOUT) -> str | None:
    """None if the server at ``url`` proves it knows ``token``; else why not.

    The question carries a fresh nonce and no credentials; the answer must be
    ``HMAC-SHA256(token, nonce + url)`` for the URL asked, so a server that relays
    the question to the real one fails too. Redirects are not followed.
    """
    nonce = secrets.token_hex(32)
    parts = urllib.parse.urlsplit(url)
    target = f"{parts.path.rstrip('/')}/{PROOF_ROUTE}?nonce={nonce}"
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=timeout)
    try:
        connection.request("GET", target)  # no token, no cookie: nothing to give away
        response = connection.getresponse()
        body = response.read(4096)
    except (OSError, http.client.HTTPException) as exc:
        return f"the server at its url {url} does not answer ({exc})"
    finally:
        connection.close()
    try:
        proof = json.loads(body).get("proof") if response.status == 200 else None
    except (ValueError, AttributeError):
        proof = None
    expected = runtime_proof(token, nonce, url)
    if not isinstance(proof, str) or not hmac.compare_digest(proof.encode(), expected.encode()):
        return (
            f"the server at its url {url} does not prove it knows the token (it answered "
            f"{response.status}): it is not the batch server that wrote the file"
        )
    return None


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
    when the server cannot be reached.

    A redirect to another scheme, host or port is not followed (its 3xx is the
    status): the token goes to no other server (docs/security.md).
    """
    request = urllib.request.Request(
        f"{url}api/batch/jobs?limit=1", headers={"Authorization": f"token {token}"}
    )
    try:
        with open_url(request, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        error.close()
        return int(error.code)
    except (OSError, ValueError):
        return None


def _answers(info: dict[str, Any]) -> bool:
    """True if the batch server in ``info`` answers its batch API with its token."""
    return batch_api_status(info["url"], str(info.get("token", ""))) == 200


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold the start lock on ``path`` (waiting for it), for one kernel at a time.

    ``FileLock`` is the platform's lock: ``flock`` (POSIX), ``LockFileEx``
    (Windows), and where neither works (no ``fcntl``, or a file system without
    ``flock``) a marker file, which the next kernel takes over once its holder's
    pid is gone, so a kernel killed while starting the server blocks no other.
    filelock opens the file without following a symbolic link; one planted
    before the runtime dir was private is refused first, with what to do.
    """
    _refuse_planted(path)
    lock = FileLock(path, mode=0o600)
    try:
        lock.acquire()
    except OSError as exc:
        raise _unusable(path, exc) from exc
    try:
        yield
    finally:
        lock.release()


def _refuse_planted(path: Path) -> None:
    """Raise ``BatchServerUnavailable`` if ``path`` is a symbolic link or not this user's
    alone; make an existing file 0600. A missing file is left to filelock to create.

    filelock would refuse a symbolic link too (``O_NOFOLLOW``), but with an OS error
    that says neither which file nor what to do, and outside a sticky folder it takes
    another user's file that it may write.
    """
    try:
        fd = open_private(path, os.O_RDWR)  # not O_RDONLY: that would wait on a planted FIFO
    except FileNotFoundError:
        return
    except OSError as exc:
        raise _unusable(path, exc) from exc
    os.close(fd)


def _open_in_runtime_dir(path: Path, flags: int) -> int:
    """Open a file of the runtime dir (0600, never through a symlink); say what to do if
    it is not this user's own."""
    try:
        return open_private(path, flags)
    except OSError as exc:
        raise _unusable(path, exc) from exc


def _unusable(path: Path, exc: OSError) -> BatchServerUnavailable:
    """Why the batch server cannot start with the runtime dir's file ``path``, and what to do."""
    if isinstance(exc, UnsafeRuntimeDir):
        return BatchServerUnavailable(
            f"the batch server cannot start: {path} {exc.strerror}, so it may not be yours "
            "to write. Remove it if you put it there, or set JUPYTER_RUNTIME_DIR to a "
            "private folder of yours"
        )
    return BatchServerUnavailable(
        f"the batch server cannot start: {path} cannot be opened ({exc}). Set "
        "JUPYTER_RUNTIME_DIR to a writable private folder of yours"
    )


def batch_server(runtime_dir: Path, timeout: float = START_TIMEOUT) -> dict[str, Any]:
    """Return the live batch server's runtime record, starting the server if none runs.

    Raises
    ------
    BatchServerUnavailable
        If the runtime dir is not this user's private folder, or its lock or log
        file is a symlink or another user's; if the server exits before it answers
        or does not answer within ``timeout`` seconds (the message quotes the end
        of its log).
    """
    _private_runtime_dir(runtime_dir)
    with _locked(runtime_dir / LOCK_FILE):
        info = read_runtime_file(runtime_dir)
        if info is not None and _answers(info):
            return info
        return _start(runtime_dir, timeout)


def _private_runtime_dir(runtime_dir: Path) -> None:
    """Create the runtime dir (0700) if needed; refuse one other users could write in."""
    try:
        private_runtime_dir(runtime_dir)
    except UnsafeRuntimeDir as exc:
        raise BatchServerUnavailable(f"the batch server cannot start: {exc}") from exc
    except OSError as exc:
        raise BatchServerUnavailable(
            f"the batch server cannot start: the Jupyter runtime dir {runtime_dir} is not "
            f"writable ({exc}). Set JUPYTER_RUNTIME_DIR to a writable folder"
        ) from exc


def serve_command(
    runtime_dir: Path, version: tuple[int, int] = sys.version_info[:2]
) -> tuple[list[str], Path]:
    """The batch server's command line and working directory.

    ``python -m`` puts its working directory first on ``sys.path``: a ``json.py``
    or ``secrets.py`` in a project folder or the home dir would be imported in
    place of the standard library's. Python 3.11+ has ``-P`` against that; on 3.10
    the server runs in the runtime dir (private, holding no modules) with the home
    dir as its root dir, as on 3.11+. ``PYTHONPATH`` is kept either way.
    """
    home = Path.home()
    if version >= (3, 11):
        return [sys.executable, "-P", "-m", "batch_widget", "serve"], home
    return (
        [sys.executable, "-m", "batch_widget", "serve", f"--ServerApp.root_dir={home}"],
        runtime_dir,
    )


def _start(runtime_dir: Path, timeout: float) -> dict[str, Any]:
    log_path = runtime_dir / LOG_FILE
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JPY_", "BATCH_WIDGET_"))}
    env["BATCH_WIDGET_LOG"] = str(log_path)
    env["JUPYTER_RUNTIME_DIR"] = str(runtime_dir)
    command, cwd = serve_command(runtime_dir)
    with os.fdopen(
        _open_in_runtime_dir(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT), "ab"
    ) as log:
        process = subprocess.Popen(  # detached: its own session, so it outlives the kernel
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=env,
            start_new_session=True,
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        code = process.poll()
        if code is not None:
            raise BatchServerUnavailable(
                f"the batch server could not start: `{' '.join(command)}` exited with code "
                f"{code}. The end of its log ({log_path}):\n{_tail(log_path)}"
            )
        info, _ = runtime_record(runtime_dir, process.pid)
        if info is not None and _answers(info):
            return info
        time.sleep(0.1)
    raise BatchServerUnavailable(
        f"the batch server (pid {process.pid}) did not answer within {timeout:g} s; it is "
        f"still starting or stuck. Its log ({log_path}) ends with:\n{_tail(log_path)}"
    )


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as exc:
        return f"(cannot read it: {exc})"
