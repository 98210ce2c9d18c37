"""batch_widget: run batch jobs from Jupyter with live, unbreakable progress."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["__version__"]


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    from batch_widget._app import BatchWidgetApp

    return [{"module": "batch_widget", "app": BatchWidgetApp}]
