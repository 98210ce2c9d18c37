"""Server side: what the handlers need of the extension app, as a protocol.

The handlers reach their app as jupyter_server's extension handlers do, through
``self.extensionapp`` (``self.settings[name]``), never by importing the app's module;
they use it through :class:`BatchService`, which
:class:`~batch_widget.server.app.BatchWidgetApp` implements (app.py checks that for
mypy). So app.py imports handlers.py for its routes, and nothing imports app.py back.
"""

from __future__ import annotations

import logging
from typing import Protocol

from batch_widget.engine.manager import JobManager
from batch_widget.engine.settings import Settings
from batch_widget.server.events import Broadcaster

__all__ = ["BatchService"]


class BatchService(Protocol):
    """The four things a request asks of the running extension."""

    @property
    def server_log(self) -> logging.Logger:
        """The extension's logger: the ``batch_widget`` child of the server's."""
        ...

    @property
    def batch_settings(self) -> Settings:
        """The server's settings (the stream's reconnect delay, ...)."""
        ...

    def require_manager(self) -> JobManager:
        """The job manager; raises ``StoreInUse`` (503) while another server owns the store."""
        ...

    def require_broadcaster(self) -> Broadcaster:
        """The event broadcaster; raises ``StoreUnavailable`` while the server shuts down."""
        ...
