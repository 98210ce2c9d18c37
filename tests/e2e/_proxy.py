"""A fault-injecting TCP proxy for end-to-end tests of the recovery layers.

The browser talks to Jupyter through this proxy, so a test can break the
network the way the real world does, at the TCP level, without touching the
server or the widget::

    with FaultProxy(upstream_port=8888) as proxy:
        page.goto(proxy.url + "a%40b/lab")
        proxy.cut(2)          # every connection closed, new ones refused, for 2 s
        proxy.kill_sse()      # SSE connections closed and refused until restore()
        proxy.silence_sse()   # SSE connections stay open but go mute
        proxy.drop_sse_cookies()  # SSE requests lose their login cookie (a 403)
        proxy.restore()

A connection counts as SSE once a request on it asks for ``api/batch/events``
(browsers reuse keep-alive connections, so every request line is checked, not
only the first). The asyncio loop runs in a daemon thread; the public methods
are thread-safe and return once the fault is in place.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

__all__ = ["FaultProxy"]

T = TypeVar("T")

SSE_REQUEST = re.compile(rb"(?:^|\r\n)[A-Z]+ [^ \r\n]*api/batch/events")
COOKIE_HEADER = re.compile(rb"\r\nCookie:[^\r\n]*", re.IGNORECASE)
CHUNK = 65536


@dataclass(eq=False)
class _Link:
    """One proxied client connection and its upstream."""

    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter | None = None
    sse: bool = False
    muted: bool = False  # a silenced SSE connection stays mute until it closes
    mute_events: bool = False  # drop job events, keep the rest (heartbeats)
    framer: _SseFramer | None = None
    opened_at: float = field(default_factory=time.monotonic)

    def abort(self) -> None:
        for writer in (self.client, self.upstream):
            if writer is not None:
                writer.transport.abort()


class _SseFramer:
    """Follow an SSE response's chunked framing, so job events can be cut out whole.

    tornado writes each batch of events as one HTTP/1.1 chunk; a chunk's
    events are filtered and the chunk re-framed with its new size.
    """

    JOB_EVENT = re.compile(rb"^event: (progress|complete)$", re.MULTILINE)

    def __init__(self) -> None:
        self.buffer = b""
        self.in_body = False
        self.chunked = False

    def feed(self, data: bytes, drop_job_events: bool) -> bytes:
        """Return what to forward of ``data`` (job events dropped when asked)."""
        if self.in_body and not self.chunked:
            return data
        self.buffer += data
        out = b""
        if not self.in_body:
            head, sep, rest = self.buffer.partition(b"\r\n\r\n")
            if not sep:
                return b""
            self.in_body = True
            self.chunked = b"transfer-encoding: chunked" in head.lower()
            out, self.buffer = head + sep, rest
            if not self.chunked:
                out, self.buffer = out + self.buffer, b""
                return out
        while True:
            size_line, sep, rest = self.buffer.partition(b"\r\n")
            if not sep:
                return out
            size = int(size_line.split(b";")[0], 16)
            if len(rest) < size + 2:
                return out
            payload, self.buffer = rest[:size], rest[size + 2 :]
            if size and drop_job_events:
                payload = self.without_job_events(payload)
                if not payload:
                    continue
            out += b"%x\r\n%s\r\n" % (len(payload), payload)

    @classmethod
    def without_job_events(cls, payload: bytes) -> bytes:
        blocks = payload.split(b"\n\n")
        kept = [block for block in blocks[:-1] if not cls.JOB_EVENT.search(block)]
        return b"".join(block + b"\n\n" for block in kept) + blocks[-1]


class FaultProxy:
    """Forward ``127.0.0.1:<port>`` to ``upstream_host:upstream_port``, with faults on demand.

    Parameters
    ----------
    upstream_port : int
        The Jupyter server's port.
    upstream_host : str
        The Jupyter server's host.
    port : int
        Where to listen (0: a free port).

    Attributes
    ----------
    port : int
        The port the proxy listens on.
    sse_opened : int
        SSE connections seen so far (a request for ``api/batch/events``).
    """

    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1", port: int = 0):
        self.upstream = (upstream_host, upstream_port)
        self.port = port
        self.sse_opened = 0
        self._links: set[_Link] = set()
        self._cut_until = 0.0  # monotonic; inf while cut without a duration
        self._sse_killed = False
        self._sse_silenced = ""  # "", "all" or "events"
        self._sse_cookies_dropped = False
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="fault-proxy", daemon=True
        )

    # -- lifecycle ---------------------------------------------------------------

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>/``: the server root as the browser sees it."""
        return f"http://127.0.0.1:{self.port}/"

    def start(self) -> FaultProxy:
        """Start listening; returns self."""
        self._thread.start()
        self._call(self._listen)
        return self

    def stop(self) -> None:
        """Close every connection and stop the loop and its thread."""
        if not self._thread.is_alive():
            return
        self._call(self._shutdown)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- faults ------------------------------------------------------------------

    def cut(self, seconds: float | None = None) -> None:
        """Close every connection and refuse new ones for ``seconds`` (None: until restore)."""

        def apply() -> None:
            self._cut_until = float("inf") if seconds is None else time.monotonic() + seconds
            self._drop(lambda link: True)

        self._call_sync(apply)

    def kill_sse(self) -> None:
        """Close SSE connections and refuse new SSE requests until :meth:`restore`."""

        def apply() -> None:
            self._sse_killed = True
            self._drop(lambda link: link.sse)

        self._call_sync(apply)

    def silence_sse(self, *, heartbeats: bool = False) -> None:
        """Keep SSE connections open but drop what the server sends on them.

        With ``heartbeats=False`` every byte is dropped: the connection is open
        but mute, as behind a half-open TCP connection or a buffering proxy; a
        connection silenced so stays mute (its byte stream has a hole in it).
        With ``heartbeats=True`` only job events (``progress``, ``complete``)
        are dropped, as when the backend's broadcast fails while the stream
        itself is healthy; :meth:`restore` lets job events through again.
        Both apply to open SSE connections and to new ones until :meth:`restore`.
        """

        def apply() -> None:
            self._sse_silenced = "events" if heartbeats else "all"
            for link in self._links:
                if link.sse:
                    self._silence(link)

        self._call_sync(apply)

    def drop_sse_cookies(self) -> None:
        """Close SSE connections; SSE requests go without ``Cookie`` until :meth:`restore`.

        The server then refuses the stream (403), as for a page that has a token but
        no login cookie: an EventSource cannot send the token any other way.
        Nothing else changes: the page's fetches still carry their cookies.
        """

        def apply() -> None:
            self._sse_cookies_dropped = True
            self._drop(lambda link: link.sse)

        self._call_sync(apply)

    def restore(self) -> None:
        """End every fault: new connections pass through untouched."""

        def apply() -> None:
            self._cut_until = 0.0
            self._sse_killed = False
            self._sse_silenced = ""
            self._sse_cookies_dropped = False
            for link in self._links:
                link.mute_events = False

        self._call_sync(apply)

    # -- observation -------------------------------------------------------------

    def open_sse(self) -> int:
        """How many SSE connections are open right now."""
        return self._call_sync(lambda: sum(1 for link in self._links if link.sse))

    @property
    def is_cut(self) -> bool:
        """Whether new connections are refused right now."""
        return time.monotonic() < self._cut_until

    # -- internals ---------------------------------------------------------------

    def _call(self, coro_fn: Callable[[], Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro_fn(), self._loop).result(10)

    def _call_sync(self, fn: Callable[[], T]) -> T:
        async def run() -> T:
            return fn()

        return self._call(run)  # type: ignore[no-any-return]

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        self._drop(lambda link: True)

    def _drop(self, which: Callable[[_Link], bool]) -> None:
        for link in [link for link in self._links if which(link)]:
            link.abort()
            self._links.discard(link)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        link = _Link(client=writer)
        if self.is_cut:
            link.abort()
            return
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._links.add(link)
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            self._links.discard(link)
            link.abort()
            return
        link.upstream = up_writer
        try:
            await asyncio.gather(
                self._pump_up(link, reader, up_writer),
                self._pump_down(link, up_reader, writer),
            )
        finally:
            self._links.discard(link)
            link.abort()

    async def _pump_up(
        self, link: _Link, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Client → server, watching request lines for the SSE route."""
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(CHUNK):
                if not link.sse and SSE_REQUEST.search(data):
                    link.sse = True
                    link.framer = _SseFramer()
                    self.sse_opened += 1
                    if self._sse_killed:
                        break
                    self._silence(link)
                if self._sse_cookies_dropped and SSE_REQUEST.search(data):
                    data = COOKIE_HEADER.sub(b"", data)  # a GET's head: no body length to fix
                writer.write(data)
                await writer.drain()
        link.abort()

    async def _pump_down(
        self, link: _Link, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Server → client, dropping bytes of muted connections."""
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(CHUNK):
                if link.muted:
                    continue
                if link.framer is not None:
                    data = link.framer.feed(data, link.mute_events)
                    if not data:
                        continue
                writer.write(data)
                await writer.drain()
        link.abort()

    def _silence(self, link: _Link) -> None:
        if self._sse_silenced == "all":
            link.muted = True
        elif self._sse_silenced == "events":
            link.mute_events = True
