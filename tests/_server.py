"""Run a real ``jupyter server`` with batch_widget in a subprocess, for end-to-end tests.

Reusable by any test (or nbval setup)::

    with running_server(tmp_path, allow_callables=False) as server:
        bw.connect(server.url, server.token)
        ...
        server.kill()          # SIGKILL, as a crash would
        server.restart()       # same port, token and database

Every Jupyter directory (``HOME``, config, data, runtime, IPython) lives under
``tmp_path``, so nothing leaks in from, or out to, the user's setup.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, ClassVar

__all__ = ["BASE_URL", "JupyterProcess", "ServerHandle", "free_port", "running_server"]

BASE_URL = "/a%40b/"  # an escaped character, as JupyterHub user names produce
START_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0
# Other installed server extensions only slow the start; notebooks may turn them back on.
QUIET_EXTENSIONS = {
    "jupyterlab": False,
    "notebook": False,
    "jupyter_lsp": False,
    "jupyter_server_terminals": False,
    "notebook_shim": False,
}


def stop_process(process: subprocess.Popen[Any] | None, sig: int, timeout: float) -> None:
    """Send ``sig`` to a running ``process`` and wait; SIGKILL it after ``timeout`` seconds."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(sig)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def free_port() -> int:
    """Return a TCP port that is free right now on 127.0.0.1."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass(kw_only=True)
class JupyterProcess:
    """A Jupyter app in a subprocess with private directories, and how to reach it.

    Attributes
    ----------
    url : str
        Direct URL including ``base_url``, ending in ``/``.
    token : str
        The app's token.
    base_url : str
        The app's ``base_url``.
    root_dir : Path
        The app's root (notebook) directory.
    env : dict
        The environment the app runs with (reuse it for kernels or nbval).
    """

    start_timeout: ClassVar[float] = START_TIMEOUT

    url: str
    token: str
    base_url: str
    port: int
    home: Path
    root_dir: Path
    log_path: Path
    args: list[str]
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None
    #: What answers 200 once the app is ready (``api/status`` for one without the extension).
    ready_path: str = "api/batch/jobs"
    _log_file: IO[bytes] | None = field(default=None, repr=False)

    @property
    def label(self) -> str:
        """What the app is called in error messages."""
        return "jupyter server"

    @property
    def pid(self) -> int:
        """The running app's pid (what a kernel sees as ``JPY_PARENT_PID``)."""
        assert self.process is not None, f"{self.label} is not running"
        return self.process.pid

    def start(self) -> None:
        """Start the app and wait until ``ready_path`` (the batch API) answers 200."""
        self._log_file = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self.args,
            env=self.env,
            cwd=self.root_dir,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
        )
        self._wait_ready()

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop the app with ``sig`` (SIGTERM: clean shutdown) and wait for it to exit."""
        stop_process(self.process, sig, STOP_TIMEOUT)
        self.process = None
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def kill(self) -> None:
        """Kill the app with SIGKILL, as a crash or an OOM kill would."""
        self.stop(signal.SIGKILL)

    def restart(self) -> None:
        """Start again on the same port, token and database (stopping first if needed)."""
        self.stop()
        self.start()

    def log(self) -> str:
        """Return everything the app has written so far."""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def api(self, method: str, path: str, body: Any = None, timeout: float = 10) -> Any:
        """Call ``{url}{path}`` with the token; return the decoded JSON (None when empty)."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.url + path,
            data=data,
            method=method,
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw = response.read()
        return json.loads(raw) if raw else None

    def call(
        self, method: str, path: str, body: Any = None, timeout: float = 10
    ) -> tuple[int, Any]:
        """Send a JSON request with the token; return ``(status, JSON or None)``, never raising."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.url + path,
            data=data if data is not None else (b"" if method == "POST" else None),
            method=method,
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                raw = response.read()
                return response.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as error:
            raw = error.read()
            return error.code, json.loads(raw) if raw else None

    def wait_for_job(self, job_id: str, check: Any, timeout: float = 60) -> Any:
        """Poll the job until ``check(snapshot)``; return the snapshot."""
        deadline = time.monotonic() + timeout
        while True:
            snapshot = self.api("GET", f"api/batch/jobs/{job_id}")
            if check(snapshot):
                return snapshot
            assert time.monotonic() < deadline, snapshot
            time.sleep(0.05)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        while True:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.label} exited with {self.process.returncode}:\n{self.log()}"
                )
            try:
                self.api("GET", self.ready_path)
                return
            except urllib.error.HTTPError as error:
                if error.code == 503:  # up, and waiting for another server's job store
                    return
            except (OSError, ValueError):
                pass
            if time.monotonic() > deadline:
                self.stop(signal.SIGKILL)
                raise RuntimeError(
                    f"{self.label} not ready in {self.start_timeout} s:\n{self.log()}"
                )
            time.sleep(0.2)


@dataclass(kw_only=True)
class ServerHandle(JupyterProcess):
    """A ``jupyter server`` subprocess with batch_widget on its own job store.

    Attributes
    ----------
    runtime_dir : Path
        Where the server writes its ``jpserver-<pid>.json``.
    db_path : Path
        The job store.
    """

    runtime_dir: Path
    db_path: Path


def jupyter_command(module: str, *, port: int, token: str, base_url: str, root: Path) -> list[str]:
    """The command line that starts Jupyter app ``module`` on 127.0.0.1, private and headless."""
    return [
        sys.executable,
        "-m",
        module,
        "--allow-root",
        "--no-browser",
        "--ip=127.0.0.1",
        f"--port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.base_url={base_url}",
        f"--ServerApp.root_dir={root}",
    ]


def _cli_value(value: Any) -> str | None:
    """Render a scalar trait value for the command line; None for containers."""
    if isinstance(value, (bool, int, float, str)):
        return str(value)
    return None


def isolated_env(home: Path) -> dict[str, str]:
    """This process's environment with every Jupyter directory (and HOME) under ``home``."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("JUPYTER", "JPY_", "BATCH_WIDGET_", "IPYTHON"))
    }
    dirs = {
        "HOME": home,
        "JUPYTER_CONFIG_DIR": home / "config",
        "JUPYTER_DATA_DIR": home / "data",
        "JUPYTER_RUNTIME_DIR": home / "runtime",
        "IPYTHONDIR": home / "ipython",
    }
    for path in dirs.values():
        path.mkdir(parents=True, exist_ok=True)
    env.update({key: str(path) for key, path in dirs.items()})
    env["PYTHONUNBUFFERED"] = "1"
    return env


def build_server(
    tmp_path: Path,
    *,
    base_url: str = BASE_URL,
    extra_args: Sequence[str] = (),
    config: Mapping[str, Mapping[str, Any]] | None = None,
    **traits: Any,
) -> ServerHandle:
    """Prepare (but do not start) a server under ``tmp_path``; see :func:`running_server`."""
    home = tmp_path / "home"
    root = tmp_path / "root"
    root.mkdir(parents=True, exist_ok=True)
    env = isolated_env(home)
    port, token = free_port(), secrets.token_hex(16)
    db_path = tmp_path / "jobs.sqlite"
    traits = {"db_url": f"sqlite:///{db_path}", "progress_interval": 0.05, **traits}
    sections: dict[str, dict[str, Any]] = {
        "ServerApp": {"jpserver_extensions": {**QUIET_EXTENSIONS, "batch_widget": True}},
        "BatchWidgetApp": {k: v for k, v in traits.items() if _cli_value(v) is None},
    }
    for section, values in (config or {}).items():
        sections.setdefault(section, {}).update(values)
    config_file = Path(env["JUPYTER_CONFIG_DIR"]) / "jupyter_server_config.json"
    config_file.write_text(json.dumps(sections, indent=1), encoding="utf-8")
    args = [
        *jupyter_command("jupyter_server", port=port, token=token, base_url=base_url, root=root),
        *(
            f"--BatchWidgetApp.{k}={_cli_value(v)}"
            for k, v in traits.items()
            if _cli_value(v) is not None
        ),
        *extra_args,
    ]
    return ServerHandle(
        url=f"http://127.0.0.1:{port}{base_url}",
        token=token,
        base_url=base_url,
        port=port,
        home=home,
        runtime_dir=Path(env["JUPYTER_RUNTIME_DIR"]),
        root_dir=root,
        db_path=db_path,
        log_path=tmp_path / "server.log",
        args=args,
        env=env,
    )


@contextlib.contextmanager
def running_server(
    tmp_path: Path,
    *,
    base_url: str = BASE_URL,
    extra_args: Sequence[str] = (),
    config: Mapping[str, Mapping[str, Any]] | None = None,
    **traits: Any,
) -> Iterator[ServerHandle]:
    """Run a real ``jupyter server`` with batch_widget for the duration of the block.

    Parameters
    ----------
    tmp_path : Path
        A private directory: homes, config, runtime files, root dir, the store, the log.
    base_url : str
        The server's ``base_url`` (escaped characters welcome).
    extra_args : sequence of str
        More command-line arguments.
    config : mapping, optional
        More config sections, e.g. ``{"ServerApp": {"jpserver_extensions": {"jupyterlab": True}}}``.
    **traits
        ``BatchWidgetApp`` traits; scalars go on the command line, containers in the
        config file. ``db_url`` defaults to ``<tmp_path>/jobs.sqlite`` and
        ``progress_interval`` to 0.05.

    Yields
    ------
    ServerHandle
        ``url``, ``token``, ``base_url``, ``pid``; ``stop``, ``kill``, ``restart``, ``log``.
    """
    server = build_server(
        tmp_path, base_url=base_url, extra_args=extra_args, config=config, **traits
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()
