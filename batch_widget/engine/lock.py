"""Which server owns a job store: an advisory lock beside the store file."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from batch_widget.engine.store import open_private


class StoreLock:
    """Ownership of a store file, so that one server at a time runs and changes its jobs.

    Two Jupyter servers of one user share the default ``db_url``. Without an
    owner, the second would mark the first one's running jobs interrupted and a
    retry would run their items twice. The lock is an advisory ``flock`` on a
    file beside the store, which the kernel drops when its process dies, even
    by SIGKILL, so a crash never leaves a stale owner. The file also records who
    holds it, for the message the other server shows.
    """

    def __init__(self, store_path: str | Path, log: logging.Logger | None = None) -> None:
        self.path = Path(f"{store_path}.lock")
        self._fd: int | None = None
        self._log = log or logging.getLogger("batch_widget")

    def acquire(self, owner: dict[str, Any]) -> bool:
        """Take the store if no other process holds it; record ``owner``. Never blocks.

        The file is opened 0600 and never through a symbolic link (one planted
        there would make the server truncate and write its target): that raises
        ``StoreUnavailable`` naming the file, and nothing is written.
        """
        if self._fd is not None:
            return True
        try:
            import fcntl
        except ImportError:  # Windows: no flock; one server per store is up to the user
            self._fd = -1
            return True
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)  # Store tightens it
        fd = open_private(self.path, os.O_RDWR | os.O_CREAT, self._log,
                          what="the job store's lock")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps(owner).encode())
        self._fd = fd
        return True

    def owner(self) -> dict[str, Any]:
        """What the current holder recorded (empty if unreadable)."""
        try:
            fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
            with os.fdopen(fd, encoding="utf-8") as file:
                recorded = json.loads(file.read())
        except (OSError, ValueError):
            return {}
        return recorded if isinstance(recorded, dict) else {}

    def release(self) -> None:
        """Give the store up (the file stays: deleting it would race a new owner)."""
        fd, self._fd = self._fd, None
        if fd is not None and fd >= 0:
            os.close(fd)  # closing the only descriptor drops the flock
