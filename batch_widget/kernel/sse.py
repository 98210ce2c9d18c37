"""Kernel side: an incremental parser of the ``text/event-stream`` (SSE) format."""

from __future__ import annotations

import codecs
import json
from dataclasses import dataclass
from typing import Any

__all__ = ["SSEEvent", "SSEParser"]


@dataclass(frozen=True)
class SSEEvent:
    """One dispatched Server-Sent Event.

    Attributes
    ----------
    id : str or None
        The last event id seen so far on the stream (as a browser would report it).
    event : str
        The event type, ``"message"`` when the server named none.
    data : str
        The data lines joined with ``"\\n"``.
    """

    id: str | None
    event: str
    data: str

    def json(self) -> Any:
        """Return ``data`` decoded as JSON."""
        return json.loads(self.data)


class SSEParser:
    """Incremental parser of the ``text/event-stream`` format (WHATWG HTML §9.2.6).

    Feed it bytes as they arrive, split anywhere; it returns the events that
    became complete. Comments (``:`` lines) are skipped, ``retry:`` is kept in
    :attr:`retry`, and lines may end in ``\\n``, ``\\r\\n`` or ``\\r``.
    """

    def __init__(self) -> None:
        self.last_event_id: str | None = None
        self.retry: int | None = None
        self._buffer = ""
        self._pending_cr = False
        self._data: list[str] = []
        self._event = ""
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Consume ``chunk`` and return the events it completed, in order."""
        text = self._decoder.decode(chunk)
        if not text:
            return []
        if self._pending_cr and text.startswith("\n"):
            text = text[1:]  # the \n of a \r\n split across chunks
        self._pending_cr = False
        self._buffer += text
        events: list[SSEEvent] = []
        lines = self._buffer.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        self._buffer = lines.pop()  # an unfinished line waits for more bytes
        if text.endswith("\r"):
            self._pending_cr = True
        for line in lines:
            event = self._line(line)
            if event is not None:
                events.append(event)
        return events

    def _line(self, line: str) -> SSEEvent | None:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self.last_event_id = value
        elif name == "retry" and value.isdigit():
            self.retry = int(value)
        return None

    def _dispatch(self) -> SSEEvent | None:
        data, event = self._data, self._event
        self._data, self._event = [], ""
        if not data:
            return None
        return SSEEvent(self.last_event_id, event or "message", "\n".join(data))
