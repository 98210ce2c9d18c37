"""Which server owns a job store: an advisory lock beside the store file."""

from __future__ import annotations

import errno
import json
import logging
import os
from pathlib import Path
from typing import Any

from filelock import lock_descriptor

from batch_widget.engine.store import open_private
from batch_widget.runtime import open_no_symlink

#: Where the owner record starts. Windows enforces the lock on the byte it locks
#: (byte 0, ``LockFileEx``): another server could not read a record that began there.
_RECORD_OFFSET = 1


class StoreLock:
    """Ownership of a store file, so that one server at a time runs and changes its jobs.

    Two Jupyter servers of one user share the default ``db_url``. Without an
    owner, the second would mark the first one's running jobs interrupted and a
    retry would run their items twice. The lock is the operating system's lock
    on a file beside the store (``flock`` on POSIX, ``LockFileEx`` on Windows,
    through filelock's ``lock_descriptor``), which the OS drops when its process
    dies, even by SIGKILL, so a crash never leaves a stale owner. The file also
    records who holds it, for the message the other server shows.

    Not ``filelock.FileLock``: the file is opened by the store's
    :func:`~batch_widget.engine.store.open_private` (0600, a regular file, never
    through a symbolic link, and a refusal that names the file and what to do),
    and it holds the owner record, which a ``FileLock`` would not keep. Nor its
    soft marker where the OS has no lock: a marker outlives a SIGKILLed server
    on a store shared between hosts. There, as before, the store has no owner.
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
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)  # Store tightens it
        fd = open_private(self.path, os.O_RDWR | os.O_CREAT, self._log, what="the job store's lock")
        try:
            taken = lock_descriptor(fd, blocking=False)
        except OSError as exc:
            os.close(fd)
            return self._without_lock(exc)
        if not taken:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, b"\n" + json.dumps(owner).encode())  # the record from _RECORD_OFFSET
        self._fd = fd
        return True

    def _without_lock(self, exc: OSError) -> bool:
        """No OS lock here (ENOSYS: no ``fcntl``, or a file system without ``flock``):
        run unowned, one server per store being up to the user. Another error is
        taken, as before, for a store this server cannot own (another holds it)."""
        if exc.errno == errno.ENOSYS:
            self._log.warning(
                "%s cannot be locked here (%s): run one server per job store", self.path, exc
            )
            self._fd = -1
            return True
        self._log.debug("%s cannot be locked (%s)", self.path, exc)  # asked every 5 s
        return False

    def owner(self) -> dict[str, Any]:
        """What the current holder recorded (empty if unreadable)."""
        try:
            fd = open_no_symlink(self.path, os.O_RDONLY)
            with os.fdopen(fd, "rb") as file:
                file.seek(_RECORD_OFFSET)
                recorded = json.loads(file.read())
        except (OSError, ValueError):
            return {}
        return recorded if isinstance(recorded, dict) else {}

    def release(self) -> None:
        """Give the store up (the file stays: deleting it would race a new owner)."""
        fd, self._fd = self._fd, None
        if fd is not None and fd >= 0:
            os.close(fd)  # closing the only descriptor drops the OS lock
