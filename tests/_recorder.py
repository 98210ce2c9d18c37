"""A second local user, and an HTTP server that records every request it gets.

The attacks of issue 22 come from another user of the same machine, so the
tests make a real one (``useradd``; CI runs as root) and run a real server as
that user. Where ``useradd`` or ``runuser`` cannot work the tests fail rather
than skip: a skipped test would prove nothing.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

OTHER_USER = "bwother"
#: Seconds a recorder gets to start listening, and to stop.
RECORDER_TIMEOUT = 30.0

#: Records each request (method, path, headers, body) as a JSON line on stdout,
#: then answers 200 ``{"jobs": [], "total": 0}`` (what a batch server's job list
#: says), or, with a relay URL, passes a proof question on to that server.
RECORDER = r"""
import json, os, sys, threading, urllib.error, urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
relay = sys.argv[1] if len(sys.argv) > 1 else ""
lock = threading.Lock()

class Handler(BaseHTTPRequestHandler):
    def serve(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode("latin-1") if length else ""
        with lock:
            print(json.dumps({"method": self.command, "path": self.path,
                              "headers": dict(self.headers), "body": body}), flush=True)
        status, payload = 200, b'{"jobs": [], "total": 0}'
        if relay and self.path.startswith("/api/batch/proof"):
            try:
                with urllib.request.urlopen(relay + self.path.lstrip("/"), timeout=10) as got:
                    status, payload = got.status, got.read()
            except urllib.error.HTTPError as error:
                status, payload = error.code, error.read()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_DELETE = serve

    def log_message(self, *args):
        pass

server = ThreadingHTTPServer(("127.0.0.1", int(os.environ.get("RECORDER_PORT", "0"))), Handler)
print(json.dumps({"port": server.server_address[1], "pid": os.getpid()}), flush=True)
server.serve_forever()
"""


def _tool(name: str) -> str:
    """The path of a system command (``useradd`` and ``runuser`` live in sbin)."""
    found = shutil.which(
        name,
        path=os.pathsep.join(
            [os.environ.get("PATH", ""), "/usr/sbin", "/sbin", "/usr/bin", "/bin"]
        ),
    )
    if found is None:
        pytest.fail(f"these tests need `{name}` to act as a second local user")
    return found


def other_user() -> pwd.struct_passwd:
    """The second local user, created if missing; the test fails if it cannot be."""
    try:
        return pwd.getpwnam(OTHER_USER)
    except KeyError:
        pass
    done = subprocess.run(
        [_tool("useradd"), "-m", OTHER_USER],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    if done.returncode != 0:
        pytest.fail(
            f"these tests need a second local user and `useradd -m {OTHER_USER}` "
            f"failed ({done.returncode}): {done.stderr.strip()}. Run them as root."
        )
    return pwd.getpwnam(OTHER_USER)


def _as(user: str | None, argv: list[str]) -> list[str]:
    return argv if user is None else [_tool("runuser"), "-u", user, "--", *argv]


def python_for(user: str | None) -> str:
    """A Python interpreter ``user`` can run (this one, or the system's)."""
    if user is None:
        return sys.executable
    for candidate in (sys.executable, shutil.which("python3", path="/usr/bin:/bin")):
        if (
            candidate
            and subprocess.run(
                _as(user, [candidate, "-c", "pass"]),
                cwd="/",
                capture_output=True,
                check=False,
                timeout=60,
            ).returncode
            == 0
        ):
            return candidate
    pytest.fail(
        f"no Python interpreter that the user {user} can run (tried {sys.executable} "
        "and /usr/bin/python3)"
    )


class Recorder:
    """A recording HTTP server on 127.0.0.1, run as ``user`` (None: this user)."""

    def __init__(self, user: str | None = None, relay: str = "", port: int = 0) -> None:
        env = {"PATH": "/usr/bin:/bin", "RECORDER_PORT": str(port)}
        if user is not None:
            env["HOME"] = pwd.getpwnam(user).pw_dir
        argv = [python_for(user), "-c", RECORDER, *([relay] if relay else [])]
        self.process = subprocess.Popen(
            _as(user, argv),
            cwd="/",
            env=env,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert self.process.stdout is not None
        first = self.process.stdout.readline()
        if not first:
            _, err = self.process.communicate(timeout=RECORDER_TIMEOUT)
            pytest.fail(f"the recording server did not start: {err}")
        started = json.loads(first)
        self.port: int = started["port"]
        self.pid: int = started["pid"]  # the Python process itself, not runuser
        self.url = f"http://127.0.0.1:{self.port}/"
        self._requests: list[dict[str, Any]] | None = None

    def requests(self) -> list[dict[str, Any]]:
        """Stop the server and return every request it recorded, in order."""
        if self._requests is None:
            if self.process.poll() is None:
                os.kill(self.pid, signal.SIGTERM)
            out, _ = self.process.communicate(timeout=RECORDER_TIMEOUT)
            self._requests = [json.loads(line) for line in out.splitlines() if line.strip()]
        return self._requests

    def stop(self) -> None:
        """Stop it (idempotent)."""
        self.requests()


def what_it_was_sent(requests: list[dict[str, Any]]) -> list[str]:
    """Every credential or body among ``requests``, named (empty when nothing leaked)."""
    leaks = []
    for request in requests:
        headers = {name.lower(): value for name, value in request["headers"].items()}
        for secret in ("authorization", "cookie", "x-xsrftoken"):
            if secret in headers:
                leaks.append(f"{request['method']} {request['path']}: {secret}: {headers[secret]}")
        if request["body"]:
            leaks.append(f"{request['method']} {request['path']}: body {request['body'][:200]}")
        if "token=" in request["path"]:
            leaks.append(f"{request['method']} {request['path']}: a token in the URL")
    return leaks


def own_private_dir(path: Path) -> Path:
    """``path`` created as a directory only this user may write in."""
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o700)
    return path
