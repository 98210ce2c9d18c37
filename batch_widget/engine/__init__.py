"""The engine: the job store, the manager, the runner and its worker pools.

Everything that runs jobs, and nothing that speaks HTTP: no tornado, no
jupyter_server, no widgets (the contracts in ``pyproject.toml`` enforce it).
The server side (:mod:`batch_widget.server`) drives it; anything else that can
hand it an event loop can too. Internal API: names here may change.
"""

from __future__ import annotations

from batch_widget.engine.lock import StoreLock
from batch_widget.engine.manager import JobManager
from batch_widget.engine.publishing import EventLoop, Publisher
from batch_widget.engine.settings import DEFAULTS, Settings
from batch_widget.engine.store import Store
from batch_widget.engine.validation import JobRequest

__all__ = [
    "DEFAULTS",
    "EventLoop",
    "JobManager",
    "JobRequest",
    "Publisher",
    "Settings",
    "Store",
    "StoreLock",
]
