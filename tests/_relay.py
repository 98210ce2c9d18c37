"""A TCP relay in front of a real server, as a reverse proxy would be, that can hold one answer.

``HoldingRelay(port)`` listens on its own port of 127.0.0.1 and relays every
connection to ``port`` byte for byte. Once :meth:`HoldingRelay.arm`-ed, the
answer of the next request whose path contains ``/results`` stops after
``hold_after`` bytes: :attr:`held` is set and nothing more is relayed until
:attr:`release` is set. A test uses the pause to act while a stream is half read
(delete the job), with nothing timed. Its socket to the server takes a small
receive buffer, so the server cannot push far ahead of what was relayed.

When the server closes its side (even mid-answer), the relay closes the
client's: the client sees exactly how the server ended the answer.
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
from collections.abc import Iterator

__all__ = ["HoldingRelay", "holding_relay"]

HOLD_AFTER = 64 * 1024
RELEASE_TIMEOUT = 120.0  # a held answer goes on by itself after this long (a failed test)
_UPSTREAM_BUFFER = 64 * 1024
_JOB_PATH = re.compile(rb"/jobs/([^/?\s]+)/results")


class HoldingRelay:
    """Relay 127.0.0.1:<port> to 127.0.0.1:``upstream``; hold one results answer when armed."""

    def __init__(self, upstream: int, hold_after: int = HOLD_AFTER) -> None:
        self.upstream = upstream
        self.hold_after = hold_after
        self.held = threading.Event()
        self.release = threading.Event()
        #: The job id in the held request's path.
        self.held_job: str | None = None
        self._armed = False
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._accept, daemon=True, name="relay")
        self._thread.start()

    def arm(self) -> None:
        """Hold the answer of the next results request."""
        with self._lock:
            self._armed = True
            self.held.clear()
            self.release.clear()

    def close(self) -> None:
        """Stop accepting; let any held answer go."""
        self.release.set()
        self._listener.close()
        self._thread.join(10)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:  # closed
                return
            threading.Thread(target=self._connection, args=(client,), daemon=True).start()

    def _take_hold(self, request_line: bytes) -> bool:
        match = _JOB_PATH.search(request_line)
        with self._lock:
            if not self._armed or match is None:
                return False
            self._armed = False
            self.held_job = match.group(1).decode()
            return True

    def _connection(self, client: socket.socket) -> None:
        upstream = socket.socket()
        upstream.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _UPSTREAM_BUFFER)
        try:
            upstream.connect(("127.0.0.1", self.upstream))
            head = b""
            while b"\r\n" not in head:
                data = client.recv(65536)
                if not data:
                    return
                head += data
            hold = self._take_hold(head.split(b"\r\n", 1)[0])
            upstream.sendall(head)
            threading.Thread(target=self._copy, args=(client, upstream, False), daemon=True).start()
            self._copy(upstream, client, hold)
        except OSError:
            pass
        finally:
            for sock in (client, upstream):
                with contextlib.suppress(OSError):
                    sock.close()

    def _copy(self, source: socket.socket, sink: socket.socket, hold: bool) -> None:
        """Copy ``source`` to ``sink`` until either ends; then end ``sink`` too."""
        relayed = 0
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    return
                sink.sendall(data)
                relayed += len(data)
                if hold and relayed >= self.hold_after:
                    hold = False
                    self.held.set()
                    self.release.wait(RELEASE_TIMEOUT)
        except OSError:
            return
        finally:
            with contextlib.suppress(OSError):
                sink.shutdown(socket.SHUT_RDWR)


@contextlib.contextmanager
def holding_relay(upstream: int, hold_after: int = HOLD_AFTER) -> Iterator[HoldingRelay]:
    """A :class:`HoldingRelay` for the duration of the block."""
    relay = HoldingRelay(upstream, hold_after)
    try:
        yield relay
    finally:
        relay.close()
