"""Fixtures of the end-to-end tests: one JupyterLab, a fault proxy, headless Chromium.

One JupyterLab (session scope: it takes seconds to start) serves every test;
each test writes its own notebook into the Lab's root dir, opens it in a fresh
browser context through the :class:`FaultProxy`, and leaves no kernel and no
fault behind. The server's ``reconnect_delay`` (sent as SSE ``retry:``) is
1000 ms, matching the short widget settings the tests use, and it sends a
heartbeat every second.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _lab import CHROMIUM, RECONNECT_DELAY, Gate, LabHandle, build_lab, launch_chromium
from _page import fresh_page
from _proxy import FaultProxy


def _require_chromium() -> None:
    if os.path.exists(CHROMIUM):
        return
    message = f"Chromium not found at {CHROMIUM}: end-to-end tests need it"
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture(autouse=True)
def jp_asyncio_loop() -> None:
    """No in-process Jupyter server here: no asyncio loop for pytest-jupyter.

    Its autouse loop fixtures (overridden in ``tests/conftest.py`` to use
    pytest-asyncio's runner) would be torn down while the Playwright sync
    API's loop runs in this thread: "Cannot run the event loop while another
    loop is running".
    """


@pytest.fixture(autouse=True)
def jp_server_cleanup() -> None:
    """No in-process Jupyter server here: nothing for pytest-jupyter to clean up."""


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless system Chromium, shared by the tests of one module.

    Module scope, not session: Playwright's sync API keeps an asyncio loop
    running in the main thread while it is open, and every asyncio test
    collected after the e2e modules would then fail to start its own loop.
    """
    _require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        yield chromium
        chromium.close()


def _start(tmp_dir: Path, **kwargs: Any) -> LabHandle:
    # Heartbeats (15 s by default) come faster than the tests' 3 s watchdog timeout,
    # in the same ratio as the defaults, so a live stream is never taken for a dead one.
    lab = build_lab(tmp_dir, reconnect_delay=RECONNECT_DELAY, heartbeat_interval=1, **kwargs)
    lab.start()
    return lab


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabHandle]:
    """One JupyterLab for the session (``base_url`` ``/a%40b/``)."""
    _require_chromium()
    handle = _start(tmp_path_factory.mktemp("lab"))
    yield handle
    handle.stop()


@pytest.fixture(scope="session")
def notebook7(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabHandle]:
    """One Notebook 7 server, started only by the tests that ask for it."""
    _require_chromium()
    handle = _start(tmp_path_factory.mktemp("nb7"), app="notebook")
    yield handle
    handle.stop()


@pytest.fixture(scope="session")
def proxy(lab: LabHandle) -> Iterator[FaultProxy]:
    """The fault-injecting proxy in front of :func:`lab`."""
    with FaultProxy(lab.port) as fault_proxy:
        yield fault_proxy


@pytest.fixture
def page(browser: Any, lab: LabHandle, proxy: FaultProxy) -> Iterator[Any]:
    """A fresh page with the attribute recorder; no fault, kernel or context outlives the test."""
    with fresh_page(browser) as new_page:
        yield new_page
        proxy.restore()
    lab.shutdown_kernels()


@pytest.fixture
def gate(tmp_path: Path) -> Iterator[Gate]:
    """A closed :class:`Gate` for a job of the test; opened at teardown so no item waits on."""
    closed = Gate(tmp_path / "gate")
    yield closed
    closed.open()


@pytest.fixture
def notebook_name(request: pytest.FixtureRequest) -> str:
    """A notebook file name unique to the test."""
    return re.sub(r"[^A-Za-z0-9_]+", "_", request.node.name).strip("_") + ".ipynb"
