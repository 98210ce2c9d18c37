"""nbval setup: the notebooks run against a real Jupyter server with batch_widget.

A pytest plugin (``-p nbval_server`` in pyproject.toml's pytest ``addopts``;
it lives here, not in ``notebooks/``, so the tutorials' folder holds only
tutorials). ``pytest notebooks --nbval`` (or ``pytest tests notebooks --nbval``)
runs every notebook cell by cell in a fresh kernel and compares its outputs
with the stored ones. The kernels find the server through ``BATCH_WIDGET_URL``
and ``BATCH_WIDGET_TOKEN``, which they inherit from this process.

With ``BATCH_WIDGET_NBVAL=batch-server`` no Jupyter server is started: the
kernels get an environment of their own (HOME and every Jupyter dir in a temp
dir, no ``BATCH_WIDGET_*``, no ``JPY_PARENT_PID``), so they find nothing and
start the batch server (SPEC §12), as in VS Code or a plain ``python``. Every
batch server started from that environment is stopped at session end.

Why hooks and not a fixture: nbval's cells are plain ``pytest.Item``s, which
never request fixtures (autouse or not), and each notebook's kernel starts in
the notebook collector's ``setup()``. So the server starts in a ``tryfirst``
``pytest_runtest_setup`` hook, before the first notebook's kernel, once per
session, and only when a notebook actually runs; it stops at session end.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
NOTEBOOKS = TESTS.parent / "notebooks"
SANITIZE_FILE = TESTS / "nbval_sanitize.cfg"
ENV_KEYS = ("BATCH_WIDGET_URL", "BATCH_WIDGET_TOKEN")
#: What the example notebooks write beside themselves (they make it again on every run).
NOTEBOOK_DATA = NOTEBOOKS / "data"

sys.path.insert(0, str(TESTS))  # tests/_server.py: the real-server harness

from _batch_server import stop_batch_servers  # noqa: E402
from _server import isolated_env, running_server  # noqa: E402

#: ``BATCH_WIDGET_NBVAL=batch-server``: the notebooks run on the batch server alone.
BATCH_SERVER_MODE = os.environ.get("BATCH_WIDGET_NBVAL") == "batch-server"

_session = contextlib.ExitStack()
_started = False


def pytest_configure(config: pytest.Config) -> None:
    """Default ``--nbval-sanitize-with`` to this folder's sanitize file."""
    option = config.option
    if hasattr(option, "nbval_sanitize_with") and option.nbval_sanitize_with is None:
        option.nbval_sanitize_with = str(SANITIZE_FILE)


def _is_notebook_cell(item: pytest.Item) -> bool:
    return item.path.suffix == ".ipynb"


def _start_server() -> None:
    """Start one server for the session and point kernels at it through the env.

    The files the notebooks write into ``notebooks/data`` go when the session
    ends, unless that folder was there before (a user's own run in JupyterLab).
    """
    if not NOTEBOOK_DATA.exists():
        _session.callback(shutil.rmtree, NOTEBOOK_DATA, ignore_errors=True)
    tmp = Path(_session.enter_context(tempfile.TemporaryDirectory(prefix="bw-nbval-")))
    if BATCH_SERVER_MODE:
        kernel_env = isolated_env(tmp / "home")
        changed = {key for key in os.environ if key.startswith(("JPY_", "BATCH_WIDGET_"))}
        changed |= set(kernel_env) - {"PATH"}
        _session.callback(_restore_env, {key: os.environ.get(key) for key in changed})
        for key in changed:
            os.environ.pop(key, None)
        os.environ.update({k: v for k, v in kernel_env.items() if k in changed})
        _session.callback(stop_batch_servers, dict(kernel_env))
        return
    server = _session.enter_context(running_server(tmp))
    saved = {key: os.environ.get(key) for key in ENV_KEYS}
    _session.callback(_restore_env, saved)
    os.environ["BATCH_WIDGET_URL"] = server.url
    os.environ["BATCH_WIDGET_TOKEN"] = server.token


def _restore_env(saved: dict[str, str | None]) -> None:
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Before the first notebook's kernel starts, start the server it will use."""
    global _started  # noqa: PLW0603  # one server per session, started lazily
    if _started or not _is_notebook_cell(item):
        return
    _started = True
    _start_server()


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Stop the server (SIGTERM, then wait) and restore the environment."""
    _session.close()
