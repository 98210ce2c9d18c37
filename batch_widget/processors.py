"""Built-in processors (docs/http-api.md), used by the examples and the tests.

A processor is a plain function ``f(item, **params)`` returning a
JSON-serialisable result. This module imports nothing from the package.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import time
from collections.abc import Iterable
from typing import Any

__all__ = ["checksum", "gzip_file", "sleep"]

_READ_SIZE = 1 << 20


def sleep(item: Any, seconds: float = 0.1, fail: Iterable[Any] | None = None) -> Any:
    """Sleep ``seconds``, then return ``item``; raise ``ValueError`` for items in ``fail``."""
    if fail is not None and item in fail:
        raise ValueError(f"item {item!r} was asked to fail")
    time.sleep(seconds)
    return item


def checksum(item: str, algorithm: str = "sha256") -> str:
    """Return the hex digest of the file at path ``item``."""
    digest = hashlib.new(algorithm)
    with open(item, "rb") as stream:
        while block := stream.read(_READ_SIZE):
            digest.update(block)
    return digest.hexdigest()


def gzip_file(item: str, dest_dir: str | None = None) -> dict[str, list[str]]:
    """Compress the file at ``item`` to ``item + ".gz"`` (or into ``dest_dir``).

    Returns ``{"outputs": [path]}`` so the widget lists the file when the job ends.
    """
    target = item + ".gz"
    if dest_dir is not None:
        os.makedirs(dest_dir, exist_ok=True)
        target = os.path.join(dest_dir, os.path.basename(item) + ".gz")
    with open(item, "rb") as source, gzip.open(target, "wb") as sink:
        shutil.copyfileobj(source, sink, _READ_SIZE)
    return {"outputs": [target]}
