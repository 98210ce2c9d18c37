"""Helpers shared by the test modules (imported as ``_helpers``; ``tests/`` is on sys.path).

They live here, not in ``conftest.py``: several conftest files are collected in
one run, and ``from conftest import ...`` would get whichever was imported last.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

from tornado.httpclient import HTTPClientError, HTTPResponse

TERMINAL = {"completed", "failed", "cancelled", "interrupted"}
SLEEP = "batch_widget.processors:sleep"

Fetch = Callable[..., Awaitable[HTTPResponse]]


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


async def eventually(check: Callable[[], bool], timeout: float = 10, every: float = 0.02) -> None:
    """Wait until ``check()`` is true, failing after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(every)
