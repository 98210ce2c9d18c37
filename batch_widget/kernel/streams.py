"""Kernel side: streamed answers read as they arrive (the SSE stream, the NDJSON results)."""

from __future__ import annotations

import http.client
import json
import urllib.parse
from collections.abc import Iterator, Mapping
from typing import Any

from batch_widget.kernel.answers import ServerUnreachable
from batch_widget.kernel.sse import SSEEvent, SSEParser

__all__ = ["ndjson_records", "open_connection", "read_events", "start_stream"]


def open_connection(url: str, timeout: float) -> http.client.HTTPConnection:
    parts = urllib.parse.urlsplit(url)
    cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    return cls(parts.hostname or "localhost", parts.port, timeout=timeout)


def start_stream(
    conn: http.client.HTTPConnection, url: str, headers: Mapping[str, str]
) -> http.client.HTTPResponse:
    parts = urllib.parse.urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    try:
        conn.request("GET", target, headers=dict(headers))
        resp = conn.getresponse()
    except TimeoutError:
        raise
    except (OSError, http.client.HTTPException) as exc:
        raise ServerUnreachable(f"cannot open the stream at {url}: {exc}") from exc
    return resp


def ndjson_records(resp: http.client.HTTPResponse, block: int = 1 << 20) -> Iterator[Any]:
    """Decode an NDJSON body as it arrives, a block of lines per ``json.loads`` call.

    JSON text never holds a raw newline, so the complete lines of a block join
    into one array: one call of the C parser instead of one per line.
    """
    pending = b""
    while True:
        data = resp.read1(block)
        if not data:
            break
        pending += data
        end = pending.rfind(b"\n")
        if end < 0:
            continue
        lines, pending = pending[:end].strip(), pending[end + 1:]
        if lines:
            yield from json.loads(b"[" + lines.replace(b"\n", b",") + b"]")
    if pending.strip():
        yield json.loads(pending)


def read_events(resp: http.client.HTTPResponse) -> Iterator[SSEEvent]:
    parser = SSEParser()
    while True:
        try:
            chunk = resp.read1(65536)
        except TimeoutError:
            raise
        except (OSError, http.client.HTTPException):  # dropped: let the caller reconnect
            return
        if not chunk:
            return
        yield from parser.feed(chunk)
