"""Run JupyterLab (or Notebook 7) with batch_widget in a subprocess, and drive it.

Used by the end-to-end tests, ``scripts/screenshots.py`` and
``benchmarks/recovery.py``::

    with running_lab(tmp_dir, reconnect_delay=1000) as lab, FaultProxy(lab.port) as proxy:
        job = lab.create_job(range(20), seconds=0.2, fail=[3])
        lab.write_notebook("demo.ipynb", [widget_cell(job["id"])])
        page.goto(lab.page_url("demo.ipynb", via=proxy.url))
        run_all_cells(page)
        wait_for_status(page, "completed")

Every Jupyter directory (``HOME``, config, data, runtime, IPython) lives in a
private temp dir, so nothing leaks in from the user's setup. The app is
started with ``expose_app_in_browser`` so tests run cells through
``window.jupyterapp.commands`` rather than through fragile keyboard focus.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from _server import JupyterProcess, free_port, isolated_env, jupyter_command

__all__ = [
    "BASE_URL",
    "CHROMIUM",
    "CHROMIUM_ARGS",
    "GATED",
    "RECONNECT_DELAY",
    "WATCHDOG_INTERVAL",
    "WATCHDOG_TIMEOUT",
    "Gate",
    "LabHandle",
    "free_port",
    "launch_chromium",
    "running_lab",
    "widget_cell",
]

BASE_URL = "/a%40b/"  # an escaped character, as JupyterHub user names produce
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Short widget settings (ms) for the tests; the server's SSE ``retry:`` matches.
RECONNECT_DELAY = 1000
WATCHDOG_INTERVAL = 1000
WATCHDOG_TIMEOUT = 3000
START_TIMEOUT = 120.0
SLEEP = "batch_widget.processors:sleep"
GATED = "sample_processors:gated"  # tests/ is on the Lab's PYTHONPATH
KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}
TESTS_DIR = Path(__file__).resolve().parents[1]

# Lab's own popups would sit on top of the widget in screenshots and steal focus.
USER_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
}


def launch_chromium(playwright: Any, **kwargs: Any) -> Any:
    """Launch the system Chromium (Playwright cannot download its own here)."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, **kwargs)


def widget_cell(
    job_id: str,
    *,
    var: str = "w",
    reconnect_delay: int = RECONNECT_DELAY,
    watchdog_interval: int = WATCHDOG_INTERVAL,
    watchdog_timeout: int = WATCHDOG_TIMEOUT,
    defaults: bool = False,
) -> str:
    """Source of a cell that displays a ``BatchProgress`` for ``job_id``."""
    settings = (
        ""
        if defaults
        else f", reconnect_delay={reconnect_delay}, watchdog_interval={watchdog_interval},"
        f" watchdog_timeout={watchdog_timeout}"
    )
    return (
        f"import batch_widget as bw\n{var} = bw.BatchProgress(job_id={job_id!r}{settings})\n{var}"
    )


class Gate:
    """Decide from the test when the items of a ``gated`` job may finish.

    A job made with ``lab.create_job(..., gate=gate)`` runs
    ``sample_processors:gated``: item ``i`` sleeps its ``seconds`` and then
    waits until the gate has released more than ``i`` items. A test that needs
    the job still running when it acts (cuts the network, clicks Cancel,
    restarts the kernel) holds it there instead of hoping it is long enough,
    and releases the rest when it is done. With one worker, items run in order.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.release(0)

    def release(self, count: int) -> None:
        """Let items ``0 .. count - 1`` finish (a lower count holds items again)."""
        partial = self.path.with_suffix(".partial")
        partial.write_text(str(count), encoding="utf-8")
        os.replace(partial, self.path)

    def open(self) -> None:
        """Let every item finish."""
        self.release(2**31)


@dataclass(kw_only=True)
class LabHandle(JupyterProcess):
    """A JupyterLab or Notebook 7 subprocess and how to reach it.

    ``url`` is the direct URL (tests call the API there, past any proxy, so
    faults never hit the test's own control plane).

    Attributes
    ----------
    app : str
        ``"lab"`` or ``"notebook"``.
    """

    start_timeout: ClassVar[float] = START_TIMEOUT

    app: str
    _workspaces: int = 0

    @property
    def label(self) -> str:
        """The app's name, for error messages."""
        return self.app

    # -- REST --------------------------------------------------------------------

    def create_job(
        self,
        items: Iterable[Any],
        *,
        seconds: float = 0.1,
        fail: Sequence[Any] = (),
        name: str | None = None,
        max_workers: int | None = None,
        processor: str = SLEEP,
        gate: Gate | None = None,
    ) -> dict[str, Any]:
        """Create a job (of ``sleep``, or ``gated`` with a ``gate``); return its snapshot."""
        if gate is not None:
            processor = GATED
        body: dict[str, Any] = {"processor": processor, "items": list(items)}
        if processor == SLEEP:
            body["params"] = {"seconds": seconds, "fail": list(fail)}
        elif gate is not None:
            body["params"] = {"seconds": seconds, "fail": list(fail), "gate": str(gate.path)}
        if name is not None:
            body["name"] = name
        if max_workers is not None:
            body["max_workers"] = max_workers
        snapshot: dict[str, Any] = self.api("POST", "api/batch/jobs", body)
        return snapshot

    def job(self, job_id: str) -> dict[str, Any]:
        """The job's current snapshot."""
        snapshot: dict[str, Any] = self.api("GET", f"api/batch/jobs/{job_id}")
        return snapshot

    def wait_job(self, job_id: str, timeout: float = 60) -> dict[str, Any]:
        """Wait until the job is terminal; return its snapshot."""
        deadline = time.monotonic() + timeout
        while True:
            snapshot = self.job(job_id)
            if snapshot["status"] in {"completed", "failed", "cancelled", "interrupted"}:
                return snapshot
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {snapshot['status']} after {timeout} s")
            time.sleep(0.1)

    def shutdown_kernels(self) -> None:
        """Shut down every session's kernel, so finished tests cost no CPU."""
        with contextlib.suppress(OSError):
            for session in self.api("GET", "api/sessions"):
                with contextlib.suppress(OSError):
                    self.api("DELETE", f"api/sessions/{session['id']}")

    def restart_kernel(self, notebook: str) -> None:
        """Restart the kernel of the session whose path is ``notebook``."""
        for session in self.api("GET", "api/sessions"):
            if session["path"] == notebook:
                self.api("POST", f"api/kernels/{session['kernel']['id']}/restart", {}, timeout=60)
                return
        raise LookupError(f"no session for {notebook}")

    # -- notebooks and pages -----------------------------------------------------

    def write_notebook(self, name: str, cells: Sequence[str]) -> Path:
        """Write a notebook of code ``cells`` into the root dir; return its path."""
        notebook = {
            "cells": [
                {
                    "cell_type": "code",
                    "execution_count": None,
                    "id": f"cell-{index}",
                    "metadata": {},
                    "outputs": [],
                    "source": source,
                }
                for index, source in enumerate(cells)
            ],
            "metadata": {"kernelspec": KERNELSPEC, "language_info": {"name": "python"}},
            "nbformat": 4,
            "nbformat_minor": 5,
        }
        path = self.root_dir / name
        path.write_text(json.dumps(notebook, indent=1), encoding="utf-8")
        return path

    def page_url(self, notebook: str, *, via: str | None = None) -> str:
        """The URL that opens ``notebook``; ``via`` is a proxy's root URL to go through.

        In JupyterLab every call gets a fresh workspace, so a page never reopens
        the notebooks (and kernels) of earlier tests.
        """
        root = (via or f"http://127.0.0.1:{self.port}/").rstrip("/") + self.base_url
        if self.app == "notebook":
            return f"{root}notebooks/{notebook}?token={self.token}"
        self._workspaces += 1
        workspace = f"e2e-{os.getpid()}-{self._workspaces}"
        return f"{root}lab/workspaces/{workspace}/tree/{notebook}?token={self.token}"


def _lab_env(home: Path) -> dict[str, str]:
    env = isolated_env(home)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTS_DIR), env.get("PYTHONPATH")]))
    return env


def _write_user_settings(config_dir: Path, theme: str | None) -> None:
    settings = dict(USER_SETTINGS)
    if theme is not None:
        settings["@jupyterlab/apputils-extension/themes.jupyterlab-settings"] = {"theme": theme}
    for name, value in settings.items():
        path = config_dir / "lab" / "user-settings" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value), encoding="utf-8")


def build_lab(
    tmp_dir: Path,
    *,
    app: str = "lab",
    theme: str | None = None,
    base_url: str = BASE_URL,
    **traits: Any,
) -> LabHandle:
    """Prepare (not start) JupyterLab (``app="lab"``) or Notebook 7 (``app="notebook"``).

    ``traits`` are ``BatchWidgetApp`` traits (scalars), e.g. ``reconnect_delay=1000``.
    """
    home, root = tmp_dir / "home", tmp_dir / "root"
    root.mkdir(parents=True, exist_ok=True)
    env = _lab_env(home)
    _write_user_settings(Path(env["JUPYTER_CONFIG_DIR"]), theme)
    port, token = free_port(), secrets.token_hex(16)
    traits = {"db_url": f"sqlite:///{tmp_dir / 'jobs.sqlite'}", **traits}
    module, app_class = (
        ("jupyterlab", "LabApp") if app == "lab" else ("notebook", "JupyterNotebookApp")
    )
    args = [
        *jupyter_command(module, port=port, token=token, base_url=base_url, root=root),
        f"--{app_class}.expose_app_in_browser=True",
        *(["--LabApp.news_url=None"] if app == "lab" else []),
        *(f"--BatchWidgetApp.{key}={value}" for key, value in traits.items()),
    ]
    return LabHandle(
        app=app,
        url=f"http://127.0.0.1:{port}{base_url}",
        token=token,
        base_url=base_url,
        port=port,
        home=home,
        root_dir=root,
        log_path=tmp_dir / f"{app}.log",
        args=args,
        env=env,
    )


@contextlib.contextmanager
def running_lab(tmp_dir: Path, **kwargs: Any) -> Iterator[LabHandle]:
    """Run JupyterLab (or Notebook 7) for the duration of the block; see :func:`build_lab`."""
    lab = build_lab(tmp_dir, **kwargs)
    lab.start()
    try:
        yield lab
    finally:
        lab.stop()
