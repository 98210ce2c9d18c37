"""What a processor prints and logs while it runs an item, kept per item (docs/jobs-view.md).

Worker threads share ``sys.stdout``, ``sys.stderr`` and the logging tree, so a
capture is per *thread*: :func:`install` (once per process) puts a small proxy in
front of each stream and a handler on the root logger; each writes to the buffer
of the item the calling thread is running, if any, and otherwise passes through
unchanged. One item's output never lands in another item's log, however many
threads run. What a child process writes to the file descriptors directly
(``os.system``) is not seen.

A log keeps its first ``limit`` bytes (64 KiB by default) and says how much was cut.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
from collections.abc import Iterator
from typing import Any, TextIO

__all__ = ["LOG_LIMIT", "ItemLog", "begin", "capturing", "end", "install"]

#: Bytes of output an item keeps (UTF-8); the rest is cut, with a note.
LOG_LIMIT = 64 * 1024

_current = threading.local()
_install_lock = threading.Lock()


class ItemLog:
    """The output of one item: its first ``limit`` bytes, and how many more were cut."""

    def __init__(self, limit: int = LOG_LIMIT) -> None:
        self.limit = limit
        self.parts: list[str] = []
        self.size = 0
        self.cut = 0

    def write(self, text: str) -> None:
        """Keep ``text`` while under the limit; count what goes over it."""
        if not text:
            return
        data = text.encode("utf-8", "backslashreplace")
        room = self.limit - self.size
        if room <= 0:
            self.cut += len(data)
            return
        if len(data) > room:
            self.cut += len(data) - room
            data = data[:room]
        self.parts.append(data.decode("utf-8", "ignore"))
        self.size += len(data)

    def text(self) -> str | None:
        """The log, with a note on what was cut; None when the item wrote nothing."""
        if not self.parts and not self.cut:
            return None
        kept = "".join(self.parts)
        if self.cut:
            kept += (
                f"\n[... {self.cut} more bytes cut: an item's log keeps its first "
                f"{self.limit // 1024} KiB]\n"
            )
        return kept


def _log_of_thread() -> ItemLog | None:
    """The log of the item the calling thread runs (made on its first write), or None."""
    if not getattr(_current, "active", False):
        return None
    log: ItemLog | None = getattr(_current, "log", None)
    if log is None:
        log = _current.log = ItemLog(getattr(_current, "limit", LOG_LIMIT))
    return log


def begin(limit: int = LOG_LIMIT) -> None:
    """Start capturing what the calling thread prints and logs (cheap: no log is made
    until something is written)."""
    _current.active = True
    _current.limit = limit
    _current.log = None


def end() -> str | None:
    """Stop capturing in the calling thread; return what was captured, or None."""
    log: ItemLog | None = getattr(_current, "log", None)
    _current.active = False
    _current.log = None
    return None if log is None else log.text()


class _Stream:
    """Stands in for ``sys.stdout`` or ``sys.stderr``: writes of a capturing thread go to
    its item's log, everything else to the real stream."""

    def __init__(self, real: TextIO) -> None:
        self._real = real

    def write(self, text: str) -> int:
        log = _log_of_thread()
        if log is None:
            return self._real.write(text)
        log.write(text)
        return len(text)

    def flush(self) -> None:
        if not getattr(_current, "active", False):
            self._real.flush()

    def __getattr__(self, name: str) -> Any:  # fileno, encoding, isatty, ...
        return getattr(self._real, name)


class _Handler(logging.Handler):
    """Puts the log records of a capturing thread into its item's log."""

    def __init__(self) -> None:
        super().__init__(logging.NOTSET)
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        log = _log_of_thread()
        if log is None:
            return
        with contextlib.suppress(Exception):  # a record that cannot format is not worth a crash
            log.write(self.format(record) + "\n")


def install() -> None:
    """Put the per-thread proxies in front of ``sys.stdout``/``sys.stderr`` and the root
    logger (a no-op while they are there). Every chunk calls it, since something may
    have put another stream in ``sys.stdout`` since (pytest's capture does)."""
    with _install_lock:
        if not isinstance(sys.stdout, _Stream):
            sys.stdout = _Stream(sys.stdout)
        if not isinstance(sys.stderr, _Stream):
            sys.stderr = _Stream(sys.stderr)
        root = logging.getLogger()
        if not any(isinstance(handler, _Handler) for handler in root.handlers):
            root.addHandler(_Handler())


class Captured:
    """What :func:`capturing` collected, once its block has ended."""

    text: str | None = None


@contextlib.contextmanager
def capturing(limit: int = LOG_LIMIT) -> Iterator[Captured]:
    """Collect what the calling thread prints and logs inside the block."""
    captured = Captured()
    begin(limit)
    try:
        yield captured
    finally:
        captured.text = end()
