"""Kernel side: streamed answers read as they arrive (the SSE stream, the NDJSON results).

``http.client`` never follows a redirect by itself; :func:`open_stream` follows
the ones :mod:`batch_widget.kernel.redirects` allows (a GET on the same
server), as the REST requests do, and hands any other 3xx back to the caller.
"""

from __future__ import annotations

import http.client
import json
import urllib.parse
from collections.abc import Iterator, Mapping
from typing import Any

from batch_widget.kernel.errors import ServerUnreachable
from batch_widget.kernel.redirects import MAX_REDIRECTS, REDIRECT_STATUSES, may_follow, target_of
from batch_widget.kernel.sse import SSEEvent, SSEParser

__all__ = ["ndjson_records", "open_connection", "open_stream", "read_events", "start_stream"]


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


def open_stream(
    url: str, headers: Mapping[str, str], timeout: float
) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse, str]:
    """``GET url`` with its answer open: ``(connection, answer, the URL that answered)``.

    A redirect to the same scheme, host and port is followed (at most
    ``MAX_REDIRECTS`` hops); any other 3xx is the answer returned, so the
    token never travels to another server.
    """
    hops = 0
    while True:
        conn = open_connection(url, timeout)
        try:
            resp = start_stream(conn, url, headers)
        except BaseException:
            conn.close()
            raise
        location = resp.getheader("Location")
        target = target_of(url, location)
        if (
            resp.status not in REDIRECT_STATUSES
            or not location
            or hops >= MAX_REDIRECTS
            or not may_follow("GET", url, target)
        ):
            return conn, resp, url  # a 3xx among these is the caller's to name
        conn.close()
        url, hops = target, hops + 1


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
        lines, pending = pending[:end].strip(), pending[end + 1 :]
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
