"""The server side: the Jupyter server extension, its handlers and the SSE broadcaster.

Jupyter and tornado live here and only here (with the engine below it); the
kernel side never imports this package. Internal API: configure it through
``c.BatchWidgetApp.*``.
"""

from __future__ import annotations

from batch_widget.server.app import BatchWidgetApp

__all__ = ["BatchWidgetApp"]
