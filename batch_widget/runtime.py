"""What the kernel and the batch server agree on about the Jupyter runtime dir.

See docs/batch-server.md and docs/security.md.

The batch server describes itself in a file of the runtime dir, and a kernel
trusts what it finds there with its token, items and params. So both sides
check that the dir is this user's own (not group- or world-writable, where
another user could plant a file or a symlink), open their files there without
following symlinks, and agree on one proof that a server knows the token before
a kernel sends it anything: ``HMAC-SHA256(token, nonce + url)`` over a random
nonce the kernel picks, bound to the URL the kernel asked so that another
server cannot relay the real one's answer.

Standard library only: the kernel side and the server side both import it.
"""

from __future__ import annotations

import errno
import hashlib
import hmac
import os
import re
import stat
from pathlib import Path

__all__ = [
    "NONCE_PATTERN",
    "PROOF_ROUTE",
    "UnsafeRuntimeDir",
    "open_no_symlink",
    "open_private",
    "private_dir_problem",
    "private_file_problem",
    "private_runtime_dir",
    "read_private",
    "runtime_proof",
]

#: The batch server's one route that answers without the token (it answers nothing
#: but the keyed hash), relative to its base URL: ``GET api/batch/proof?nonce=<hex>``.
PROOF_ROUTE = "api/batch/proof"
#: What a nonce must look like: 64 hex digits (32 random bytes).
NONCE_PATTERN = re.compile(r"[0-9a-f]{64}")
#: Where files have no POSIX owner or mode bits to check (Windows: the profile's ACLs).
_POSIX = os.name == "posix"
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_BINARY = getattr(os, "O_BINARY", 0)


class UnsafeRuntimeDir(OSError):
    """A runtime dir or a file in it that other users could have planted or changed."""


def runtime_proof(token: str, nonce: str, url: str) -> str:
    """The batch server's answer to ``nonce`` when asked at ``url`` (hex HMAC-SHA256)."""
    return hmac.new(token.encode(), (nonce + url).encode(), hashlib.sha256).hexdigest()


def private_dir_problem(path: Path) -> str | None:
    """Why other users could plant files in the directory ``path``; None if they cannot."""
    if not _POSIX:
        return None  # Windows: no st_uid; the user's profile is private by its ACLs
    info = os.stat(path)
    if not stat.S_ISDIR(info.st_mode):
        return "is not a directory"
    if info.st_uid != os.geteuid():
        return f"belongs to another user (uid {info.st_uid}; you are uid {os.geteuid()})"
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"can be written by other users (mode {stat.S_IMODE(info.st_mode):04o})"
    return None


def private_runtime_dir(path: Path) -> Path:
    """Create ``path`` (0700) if needed and return it, if only this user can write there.

    The batch server (before it writes its runtime file) and the kernel (before it
    trusts one) both ask this.

    Raises
    ------
    UnsafeRuntimeDir
        If the directory is another user's or others can write in it (a kernel would
        then trust a file or follow a symlink another user planted); the message
        says what to do.
    OSError
        If it cannot be created.
    """
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    problem = private_dir_problem(path)
    if problem is not None:
        raise UnsafeRuntimeDir(
            f"the Jupyter runtime dir {path} {problem}, so another user could plant files "
            "there. Set JUPYTER_RUNTIME_DIR to a private folder of yours (e.g. "
            "`mkdir -m 700 ~/.batch-runtime`)"
        )
    return path


def private_file_problem(info: os.stat_result, *, readable_by_others: bool = False) -> str | None:
    """Why the file ``info`` describes is not this user's alone; None if it is.

    ``readable_by_others`` allows group and world read bits (a log file an older
    version created with the umask's mode: it holds no secret, and is fixed to
    0600 by :func:`open_private`).
    """
    if not _POSIX:
        return None
    if not stat.S_ISREG(info.st_mode):
        return "is not a regular file"
    if info.st_uid != os.geteuid():
        return f"belongs to another user (uid {info.st_uid}; you are uid {os.geteuid()})"
    others = stat.S_IWGRP | stat.S_IWOTH
    if not readable_by_others:
        others |= stat.S_IRGRP | stat.S_IROTH
    if info.st_mode & others:
        return f"can be read or written by other users (mode {stat.S_IMODE(info.st_mode):04o})"
    return None


def read_private(path: Path, limit: int = 1 << 16) -> bytes:
    """The first ``limit`` bytes of ``path``, a file of this user's alone (0600 or stricter).

    Raises
    ------
    UnsafeRuntimeDir
        If ``path`` is a symlink, or another user's, or others may read or write it.
    OSError
        If it cannot be read (``FileNotFoundError`` if there is none).
    """
    fd = open_no_symlink(path, os.O_RDONLY)
    with os.fdopen(fd, "rb") as file:
        problem = private_file_problem(os.fstat(fd))
        if problem is not None:
            raise UnsafeRuntimeDir(errno.EPERM, problem, str(path))
        return file.read(limit)


def open_private(path: Path, flags: int) -> int:
    """Open ``path`` (created 0600) without following a symlink; return the descriptor.

    An existing file must be this user's; its mode is set to 0600.

    Raises
    ------
    UnsafeRuntimeDir
        If ``path`` is a symlink or belongs to another user; the message says so.
    OSError
        If the file cannot be opened for another reason.
    """
    fd = open_no_symlink(path, flags)
    try:
        problem = private_file_problem(os.fstat(fd), readable_by_others=True)
        if problem is not None:
            raise UnsafeRuntimeDir(errno.EPERM, problem, str(path))
        if _POSIX:
            os.fchmod(fd, 0o600)
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_no_symlink(path: Path, flags: int) -> int:
    """``os.open`` (mode 0600 if created) that refuses a symlink with a clear error.

    Raises
    ------
    UnsafeRuntimeDir
        If ``path`` is a symbolic link (``O_NOFOLLOW``; where the platform has none,
        looked at first).
    """
    if not _NOFOLLOW and os.path.islink(path):  # Windows: no O_NOFOLLOW; look first
        raise UnsafeRuntimeDir(errno.ELOOP, "is a symbolic link", str(path))
    try:
        return os.open(path, flags | _NOFOLLOW | _BINARY, 0o600)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.EMLINK) and os.path.islink(path):
            raise UnsafeRuntimeDir(errno.ELOOP, "is a symbolic link", str(path)) from exc
        raise
