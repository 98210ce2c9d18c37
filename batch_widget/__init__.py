"""batch_widget: run batch jobs from Jupyter with live, unbreakable progress.

In a notebook::

    import batch_widget as bw
    job = bw.submit("batch_widget.processors:checksum", paths)
    job            # the live progress widget
    job.wait()

``bw.map(processor, items)`` runs, waits and returns the results in one call;
``bw.jobs()`` lists the server's jobs; ``bw.attach(job_id)`` picks a job up
again, e.g. after a kernel restart. ``python -m batch_widget config`` lists the
server's settings.

The server side (``BatchWidgetApp``) loads through the Jupyter server extension
points below; the kernel side never imports jupyter_server.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from batch_widget.kernel.errors import (
    BatchFailed,
    RedirectRefused,
    ResultsIncomplete,
    ServerNotFound,
    ServerUnreachable,
)
from batch_widget.kernel.job import Job, JobList, attach, connect, jobs, submit
from batch_widget.kernel.job import map as map  # public as bw.map, kept out of __all__
from batch_widget.protocol import (
    BatchError,
    InvalidRequest,
    JobNotFound,
    JobStateConflict,
    PermissionDenied,
)

if TYPE_CHECKING:
    from batch_widget.kernel.jobsview import JobsView
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
    "JobsView",
    "PermissionDenied",
    "RedirectRefused",
    "ResultsIncomplete",
    "ServerNotFound",
    "ServerUnreachable",
    "__version__",
    "attach",
    "connect",
    "jobs",
    "submit",
]
# bw.map is public too, but not in __all__: `from batch_widget import *` must not
# shadow the builtin map.
_PUBLIC = frozenset([*__all__, "map"])


def __getattr__(name: str) -> Any:
    # The widgets load anywidget and ipywidgets: only kernels that show one pay for that.
    if name == "BatchProgress":
        from batch_widget.kernel.widget import BatchProgress

        return BatchProgress
    if name == "JobsView":
        from batch_widget.kernel.jobsview import JobsView

        return JobsView
    raise AttributeError(f"module 'batch_widget' has no attribute {name!r}")


def __dir__() -> list[str]:
    # The public API only, not the module's imports (Any, TYPE_CHECKING, annotations).
    return sorted(_PUBLIC)


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    from batch_widget.server.app import BatchWidgetApp

    return [{"module": "batch_widget", "app": BatchWidgetApp}]
