"""batch_widget: run batch jobs from Jupyter with live, unbreakable progress.

In a notebook::

    import batch_widget as bw
    job = bw.submit("batch_widget.processors:checksum", paths)
    job            # the live progress widget
    job.wait()

The server side (``BatchWidgetApp``) loads through the Jupyter server extension
points below; the kernel side never imports jupyter_server.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from batch_widget.kernel.client import ServerNotFound, ServerUnreachable
from batch_widget.kernel.job import BatchFailed, Job, JobList, attach, connect, jobs, map, submit
from batch_widget.protocol import (
    BatchError,
    InvalidRequest,
    JobNotFound,
    JobStateConflict,
    PermissionDenied,
)

if TYPE_CHECKING:
    from batch_widget.kernel.widget import BatchProgress

__version__ = "0.1.0"

__all__ = [
    "BatchError",
    "BatchFailed",
    "BatchProgress",
    "InvalidRequest",
    "Job",
    "JobList",
    "JobNotFound",
    "JobStateConflict",
    "PermissionDenied",
    "ServerNotFound",
    "ServerUnreachable",
    "__version__",
    "attach",
    "connect",
    "jobs",
    "map",
    "submit",
]


def __getattr__(name: str) -> Any:
    # BatchProgress loads anywidget and ipywidgets: only kernels that show it pay for that.
    if name == "BatchProgress":
        from batch_widget.kernel.widget import BatchProgress

        return BatchProgress
    raise AttributeError(f"module 'batch_widget' has no attribute {name!r}")


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    from batch_widget.server.app import BatchWidgetApp

    return [{"module": "batch_widget", "app": BatchWidgetApp}]
