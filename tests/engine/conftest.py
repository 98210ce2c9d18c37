"""Engine units run without any Jupyter server (``pytest tests/engine`` needs none).

pytest-jupyter's plugin, loaded by the root ``conftest.py`` for the whole suite, adds two
autouse fixtures to every test: ``jp_asyncio_loop`` and ``jp_server_cleanup``, which builds
and tears down a ``ServerApp`` after each test. These tests start no server, so here the
loop is simply the test's own and there is nothing to clean up;
``tests/repo/test_layout.py`` checks that no engine test asks for more.
"""

from __future__ import annotations

import asyncio

import pytest


@pytest.fixture(autouse=True)
def jp_asyncio_loop(_function_scoped_runner: asyncio.Runner) -> asyncio.AbstractEventLoop:
    """The loop pytest-asyncio runs the test on, as in the rest of the suite."""
    return _function_scoped_runner.get_loop()


@pytest.fixture(autouse=True)
def jp_server_cleanup() -> None:
    """Nothing to clean up: no engine test starts or builds a Jupyter server."""
