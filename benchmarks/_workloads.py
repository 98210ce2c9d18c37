"""The functions ``benchmarks/peers.py`` runs, importable by the server's workers too.

``peers.py`` puts this folder on the server's ``PYTHONPATH``, so ``bw.map`` names
them by import path (``_workloads:busy``) as every peer calls them directly.
"""

from __future__ import annotations

__all__ = ["BUSY_LOOPS", "busy"]

#: Loop turns of :func:`busy`: about 6 ms of pure Python on the 2-core machine.
BUSY_LOOPS = 130_000


def busy(item: int) -> int:
    """CPU-bound pure Python: holds the GIL for its whole run."""
    total = item
    for turn in range(BUSY_LOOPS):
        total = (total * 31 + turn) % 1_000_003
    return total
