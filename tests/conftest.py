"""Shared fixtures: a Jupyter server with batch_widget enabled, and small API helpers.

Per-test configuration goes through markers, merged closest-last:

- ``@pytest.mark.batch_config(sse_timeout=1, ...)``: ``BatchWidgetApp`` traits;
- ``@pytest.mark.server_config({"ServerApp": {...}})``: any other config section.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from _helpers import Api, Fetch
from traitlets.config import Config

from batch_widget.server.app import BatchWidgetApp

pytest_plugins = ["pytest_jupyter.jupyter_server"]


def pytest_configure(config: pytest.Config) -> None:
    """Register the configuration markers."""
    config.addinivalue_line("markers", "batch_config(**traits): BatchWidgetApp traits")
    config.addinivalue_line("markers", "server_config(dict): extra Jupyter config sections")


@pytest.fixture
def jp_asyncio_loop(_function_scoped_runner: asyncio.Runner) -> asyncio.AbstractEventLoop:
    """Run the server on the loop pytest-asyncio runs the test on.

    The project runs pytest-asyncio in auto mode, which runs each async test on
    its own function-scoped ``asyncio.Runner``; pytest-jupyter's fixtures would
    otherwise start the server on a second loop that never runs during the test.
    """
    return _function_scoped_runner.get_loop()


@pytest.fixture
def jp_base_url() -> str:
    """A base URL with an escaped character, as JupyterHub user names produce."""
    return "/a%40b/"


@pytest.fixture
def jp_server_config(tmp_path: Path, request: pytest.FixtureRequest) -> Config:
    """Enable batch_widget with a store in the test's temp dir, plus marker config."""
    traits: dict[str, Any] = {
        "db_url": f"sqlite:///{tmp_path / 'store' / 'jobs.sqlite'}",
        "progress_interval": 0.05,
    }
    sections: dict[str, Any] = {}
    for marker in reversed(list(request.node.iter_markers("batch_config"))):
        traits.update(marker.kwargs)
    for marker in reversed(list(request.node.iter_markers("server_config"))):
        for section, values in marker.args[0].items():
            sections.setdefault(section, {}).update(values)
    config = Config(sections)
    config.ServerApp.jpserver_extensions = {"batch_widget": True}
    for name, value in traits.items():
        setattr(config.BatchWidgetApp, name, value)
    return config


@pytest.fixture
def batch_app(jp_serverapp: Any, jp_asyncio_loop: asyncio.AbstractEventLoop) -> BatchWidgetApp:
    """The running extension, its background work started on the server's IOLoop.

    pytest-jupyter never calls ``_start_jupyter_server_extension``, so start it here
    (the handlers would also start it lazily on the first request).
    """
    app: BatchWidgetApp = jp_serverapp.web_app.settings[BatchWidgetApp.name]

    async def start() -> None:
        app.ensure_started()

    jp_asyncio_loop.run_until_complete(start())
    return app


@pytest.fixture
def server_token(jp_serverapp: Any) -> str:
    """The server's token, for raw-socket clients."""
    token: str = jp_serverapp.identity_provider.token
    return token


@pytest.fixture
def api(jp_fetch: Fetch, batch_app: BatchWidgetApp) -> Api:
    """A JSON client for the batch API on a server with the extension started."""
    return Api(jp_fetch)
