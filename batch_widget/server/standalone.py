"""The batch server: ``python -m batch_widget serve`` (docs/batch-server.md).

Where no Jupyter server with the extension runs (VS Code's kernels, Colab, a
plain ``python``, a Jupyter without the extension), a kernel starts this one.
It is the extension itself, not a second implementation: a stock Jupyter
``ServerApp`` that loads ``batch_widget`` alone, on ``127.0.0.1``, a port the OS
picks and a fresh token, with the same routes, SSE stream and authentication.
Its jobs live in their own store in the Jupyter data dir
(``batch_widget/batch-server.sqlite``), so a JupyterLab with the extension and
a batch server never contend for one store.

Once listening it writes ``batch_widget-server.json`` (``url``, ``token``,
``pid``; mode 0600) in the Jupyter runtime dir, and removes it when it stops. It
refuses a runtime dir that is not this user's or that other users can write in.
Besides the extension's routes it serves one more, the only one that needs no
token: ``api/batch/proof`` (:mod:`batch_widget.server.proof`), with which a
kernel checks that the server at the file's URL knows the file's token before
it sends it.
It stops by itself after ``BatchWidgetApp.batch_server_idle_timeout`` seconds
(``--idle-timeout``) with no job queued or running, no event-stream subscriber
and no request.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from jupyter_core.paths import jupyter_data_dir, jupyter_runtime_dir
from tornado.ioloop import PeriodicCallback

from batch_widget.protocol import RUNTIME_FILE
from batch_widget.runtime import private_runtime_dir
from batch_widget.server.app import BatchWidgetApp
from batch_widget.server.proof import proof_route

__all__ = ["IdleWatch", "main", "write_private"]


def write_private(path: Path, data: Mapping[str, Any]) -> None:
    """Write ``data`` as JSON readable by this user alone (0600), atomically, in a
    directory only this user can write in (:func:`private_runtime_dir`)."""
    private_runtime_dir(path.parent)
    # mkstemp opens O_CREAT | O_EXCL | O_NOFOLLOW, mode 0600, under a random name:
    # nothing planted beforehand can be followed or written through.
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            json.dump(dict(data), file, indent=1)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


class IdleWatch:
    """Stop the server once it has been idle for ``timeout`` seconds.

    Idle means no job queued or processing and no SSE subscriber (a widget or a
    kernel following a job), which the extension reports through jupyter_server's
    own ``ExtensionApp.current_activity()``, and no request for ``timeout``
    seconds: Jupyter's ``web_app.last_activity()``, where ``current_activity()``
    also records the moment it was last busy.

    The check is ``ServerApp.shutdown_no_activity()``'s, but not that method
    itself nor ``ServerApp.shutdown_no_activity_timeout``: that setting is whole
    seconds (``--idle-timeout`` takes fractions), it is checked once a minute (a
    batch server with ``--idle-timeout=1`` would run a minute on), it also waits
    while a kernel runs, which the batch server's rule does not count, and it
    does not say what the server waited for.
    """

    def __init__(self, app: BatchWidgetApp, serverapp: Any, timeout: float) -> None:
        self.app = app
        self.serverapp = serverapp
        self.timeout = timeout
        self._callback = PeriodicCallback(self.check, max(0.05, min(60.0, timeout / 4)) * 1000)

    def start(self) -> None:
        """Check from now on (on the server's IOLoop)."""
        self._callback.start()

    def idle_for(self) -> float:
        """Seconds since the server last had work, a subscriber or a request."""
        if self.app.current_activity():  # what it answers jupyter_server's idle check
            return 0.0
        return time.time() - float(self.serverapp.web_app.last_activity().timestamp())

    def check(self) -> None:
        """Stop the server if it has been idle long enough."""
        idle = self.idle_for()
        if idle >= self.timeout:
            self._callback.stop()
            self.app.server_log.info(
                "the batch server has been idle for %.0f s "
                "(no job, no subscriber, no request): stopping",
                idle,
            )
            self.serverapp.stop()


def _arguments(argv: Sequence[str] | None) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(
        prog="batch-widget serve",
        description="Run the batch server: the batch_widget API on 127.0.0.1, for kernels "
        "with no Jupyter server with the extension (VS Code, Colab, scripts). Other "
        "arguments go to Jupyter (e.g. --BatchWidgetApp.max_workers=8).",
    )
    parser.add_argument(
        "--idle-timeout",
        type=float,
        default=None,
        help="seconds with no job, no subscriber and no request before the "
        "server exits (BatchWidgetApp.batch_server_idle_timeout, 3600 unless "
        "configured)",
    )
    return parser.parse_known_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the batch server until it is stopped or idle; return the exit code."""
    options, rest = _arguments(argv)
    try:
        runtime_file = private_runtime_dir(Path(jupyter_runtime_dir())) / RUNTIME_FILE
    except OSError as exc:  # UnsafeRuntimeDir says what to do; others name the path
        sys.stderr.write(f"batch-widget serve: the batch server cannot start: {exc}\n")
        return 2
    if options.idle_timeout is not None:
        rest = [f"--BatchWidgetApp.batch_server_idle_timeout={options.idle_timeout}", *rest]
    token = secrets.token_hex(24)
    store = Path(jupyter_data_dir()) / "batch_widget" / "batch-server.sqlite"
    args = [
        "--ServerApp.ip=127.0.0.1",
        "--ServerApp.port=0",
        "--ServerApp.port_retries=0",
        "--ServerApp.open_browser=False",
        "--ServerApp.allow_root=True",
        f"--IdentityProvider.token={token}",
        f"--BatchWidgetApp.db_url=sqlite:///{store}",
        *rest,
    ]
    BatchWidgetApp.load_other_extensions = False  # this process serves batch_widget alone
    serverapp = BatchWidgetApp.initialize_server(argv=args)  # type: ignore[no-untyped-call]
    app = _extension(serverapp)
    serverapp.web_app.add_handlers(
        ".*$", [proof_route(serverapp.base_url, token, lambda: str(serverapp.connection_url))]
    )
    serverapp.start_app()
    write_private(
        runtime_file,
        {
            "url": serverapp.connection_url,
            "token": token,
            "pid": os.getpid(),
            "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "idle_timeout": app.batch_server_idle_timeout,
            "log": os.environ.get("BATCH_WIDGET_LOG", ""),
        },
    )
    app.server_log.info(
        "batch server at %s (pid %d), described in %s",
        serverapp.connection_url,
        os.getpid(),
        runtime_file,
    )
    IdleWatch(app, serverapp, app.batch_server_idle_timeout).start()
    try:
        serverapp.start_ioloop()
    finally:
        _remove_if_ours(runtime_file)
    return 0


def _extension(serverapp: Any) -> BatchWidgetApp:
    for extension in serverapp.extension_manager.extension_apps.get("batch_widget", ()):
        if isinstance(extension, BatchWidgetApp):
            return extension
    raise RuntimeError("the batch_widget extension did not load in the batch server")


def _remove_if_ours(path: Path) -> None:
    """Remove the runtime file unless another batch server has written its own since."""
    try:
        if json.loads(path.read_text(encoding="utf-8")).get("pid") == os.getpid():
            path.unlink()
    except (OSError, ValueError, AttributeError):
        pass
