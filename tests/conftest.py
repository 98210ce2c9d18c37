"""Shared fixtures: a Jupyter server with batch_widget enabled, and small API helpers.

Per-test configuration goes through markers, merged closest-last:

- ``@pytest.mark.batch_config(sse_timeout=1, ...)``: ``BatchWidgetApp`` traits;
- ``@pytest.mark.server_config({"ServerApp": {...}})``: any other config section.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError, HTTPResponse
from traitlets.config import Config

from batch_widget._app import BatchWidgetApp
from batch_widget._handlers import APP_KEY

pytest_plugins = ["pytest_jupyter.jupyter_server"]

TERMINAL = {"completed", "failed", "cancelled", "interrupted"}
SLEEP = "batch_widget.processors:sleep"

Fetch = Callable[..., Awaitable[HTTPResponse]]


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
    app: BatchWidgetApp = jp_serverapp.web_app.settings[APP_KEY]

    async def start() -> None:
        app.ensure_started()

    jp_asyncio_loop.run_until_complete(start())
    return app


@pytest.fixture
def server_token(jp_serverapp: Any) -> str:
    """The server's token, for raw-socket clients."""
    token: str = jp_serverapp.identity_provider.token
    return token


class Api:
    """A thin JSON client over ``jp_fetch`` for the batch routes."""

    def __init__(self, fetch: Fetch) -> None:
        self.fetch = fetch

    async def call(
        self, method: str, *parts: str, body: Any = None, params: dict[str, Any] | None = None
    ) -> tuple[int, Any, HTTPResponse]:
        """Send a request; return (code, decoded JSON or None, response), never raising."""
        kwargs: dict[str, Any] = {"method": method, "params": params}
        if body is not None:
            kwargs["body"] = body if isinstance(body, (str, bytes)) else json.dumps(body)
        elif method in {"POST", "PUT"}:
            kwargs["body"] = b""
        try:
            response = await self.fetch("api", "batch", *parts, **kwargs)
        except HTTPClientError as error:
            if error.response is None:
                raise
            response = error.response
        text = response.body.decode() if response.body else ""
        return response.code, json.loads(text) if text else None, response

    async def create(self, items: list[Any], processor: str = SLEEP, **fields: Any) -> Any:
        """Create a job and return its snapshot (asserting 201)."""
        code, data, _ = await self.call(
            "POST", "jobs", body={"processor": processor, "items": items, **fields}
        )
        assert code == 201, data
        return data

    async def get(self, job_id: str) -> Any:
        """Return a job's snapshot (asserting 200)."""
        code, data, _ = await self.call("GET", "jobs", job_id)
        assert code == 200, data
        return data

    async def jobs(self, **params: Any) -> Any:
        """Return the job list answer."""
        code, data, _ = await self.call("GET", "jobs", params=params)
        assert code == 200, data
        return data

    async def wait(self, job_id: str, timeout: float = 30) -> Any:
        """Poll until the job is terminal; return its snapshot."""
        deadline = time.monotonic() + timeout
        while True:
            snapshot = await self.get(job_id)
            if snapshot["status"] in TERMINAL:
                return snapshot
            assert time.monotonic() < deadline, f"job still {snapshot['status']}"
            await asyncio.sleep(0.05)


@pytest.fixture
def api(jp_fetch: Fetch, batch_app: BatchWidgetApp) -> Api:
    """A JSON client for the batch API on a server with the extension started."""
    return Api(jp_fetch)


async def eventually(check: Callable[[], bool], timeout: float = 10, every: float = 0.02) -> None:
    """Wait until ``check()`` is true, failing after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(every)
