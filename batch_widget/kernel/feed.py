"""Kernel side: the widget's updates through the kernel (docs/batch-server.md, ``transport``).

Where the browser cannot reach the job's server (a batch server on another
origin, a VS Code webview, a JupyterLab without the extension), the kernel
follows the job and sets the widget's ``kernel_snapshot`` trait, which travels
over the widget's own channel. A :class:`KernelFeed` does that in a daemon
thread: it follows the job through the loop ``Job.wait`` runs too
(:class:`~batch_widget.kernel.follow.JobFollower`: reconnecting, polling when the
stream keeps failing), and sets each newer snapshot. The
server already coalesces a job's events to ``progress_interval``.

Setting a trait from a thread sends a comm message from that thread. ipykernel
routes a thread's output by the parent message it has for the thread; 7.x stopped
guessing it for new threads (ipykernel#1450, #1451), 6.x never needed it. The
feed takes the parent of the cell that displayed the widget and adopts it in its
thread, which is right for both.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from typing import Any

from batch_widget.kernel.client import Client
from batch_widget.kernel.follow import JobFollower
from batch_widget.protocol import (
    DELETED,
    BatchError,
    ItemStatus,
    JobNotFound,
    JobStatus,
    Snapshot,
)

__all__ = ["KernelFeed"]

#: Failed items the kernel sends along with a finished job (the widget lists these).
FAILED_ITEMS_SHOWN = 50
#: Items whose outputs the kernel sends along with a finished job: the widget shows
#: the first ``OUTPUTS_SHOWN`` (``view.js``) and the count of the rest. The trait is
#: saved in the notebook, so it never carries every output of a big job.
OUTPUTS_SHOWN = 20
_log = logging.getLogger("batch_widget")


def _parent() -> Any:
    """The parent message of the running cell, or None outside an IPython kernel."""
    with contextlib.suppress(Exception):
        from IPython import get_ipython  # only in a kernel

        shell = get_ipython()
        getter = getattr(shell, "get_parent", None)
        if callable(getter):
            return getter()
        return getattr(shell, "parent_header", None)
    return None


def _adopt(parent: Any) -> None:
    """Route this thread's messages (comm updates) as children of ``parent``."""
    if not parent:
        return
    with contextlib.suppress(Exception):
        from IPython import get_ipython  # only in a kernel

        setter = getattr(get_ipython(), "set_parent", None)
        if callable(setter):
            setter(parent)


class KernelFeed:
    """Keep a widget's ``kernel_snapshot`` (and ``kernel_extras``) current from a thread.

    Parameters
    ----------
    widget
        A ``BatchProgress``: the feed sets its ``kernel_snapshot`` and ``kernel_extras``.
    client
        The server the job lives on.
    """

    def __init__(self, widget: Any, client: Client) -> None:
        self.widget = widget
        self.client = client
        self.closed = False
        self._parent = _parent()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self, *, resume: bool = False) -> None:
        """Follow the job until it ends (again: a Retry makes it active); ``resume``
        undoes :meth:`close` (the browser takes its updates from the kernel after all)."""
        with self._lock:
            if resume:
                self.closed = False
            if self.closed or (self._thread is not None and self._thread.is_alive()):
                return
            self._thread = threading.Thread(
                target=self._follow, daemon=True, name=f"batch-widget-feed-{self.widget.job_id}"
            )
            self._thread.start()

    def close(self) -> None:
        """Set nothing more (the widget is closed, or the browser reaches the server)."""
        self.closed = True

    def refresh(self) -> None:
        """Fetch the job now and set it (the browser's watchdog asks for this)."""
        threading.Thread(
            target=self._refresh, daemon=True, name=f"batch-widget-refresh-{self.widget.job_id}"
        ).start()

    def act(self, action: str) -> None:
        """Cancel or retry the job for the browser, then show the answer."""
        threading.Thread(
            target=self._act,
            args=(action,),
            daemon=True,
            name=f"batch-widget-{action}-{self.widget.job_id}",
        ).start()

    # -- in the feed's threads -----------------------------------------------------

    def _follow(self) -> None:
        _adopt(self._parent)
        # Every snapshot the follower fetches or hears, its first fetch too.
        follower = JobFollower(self.client, self.widget.job_id, self._push)
        try:
            follower.until_end()
        except JobNotFound:
            self._gone(follower.last)
        except (BatchError, OSError) as exc:
            _log.warning(
                "the kernel stopped following job %s for its widget: %s", self.widget.job_id, exc
            )

    def _refresh(self) -> None:
        _adopt(self._parent)
        try:
            self._push(self.client.get(self.widget.job_id))
        except JobNotFound:
            self._gone(self.widget.kernel_snapshot or None)
        except (BatchError, OSError) as exc:
            _log.info("refreshing job %s for its widget failed: %s", self.widget.job_id, exc)

    def _act(self, action: str) -> None:
        _adopt(self._parent)
        call = self.client.cancel if action == "cancel" else self.client.retry
        try:
            self._push(call(self.widget.job_id))
        except JobNotFound:
            self._gone(self.widget.kernel_snapshot or None)
        except BatchError as exc:  # e.g. 409: already finished; show what is true now
            _log.info("%s of job %s from its widget: %s", action, self.widget.job_id, exc)
            self._refresh()
        if action == "retry":
            self.start()

    def _push(self, snapshot: Snapshot) -> None:
        """Set ``snapshot`` if it is newer than the one the widget has (extras first)."""
        if self.closed:
            return
        with self._lock:
            shown = self.widget.kernel_snapshot or {}
            if shown.get("status") == DELETED or shown.get("version", -1) >= snapshot["version"]:
                return
            if JobStatus(snapshot["status"]).terminal:
                self.widget.kernel_extras = self._extras(snapshot)
            self.widget.kernel_snapshot = dict(snapshot)

    def _gone(self, last: Any) -> None:
        if self.closed:
            return
        base = dict(last) if isinstance(last, dict) else {"id": self.widget.job_id}
        with self._lock:
            self.widget.kernel_snapshot = {
                **base,
                "status": DELETED,
                "version": int(base.get("version", 0)) + 1,
            }

    def _extras(self, snapshot: Snapshot) -> dict[str, Any]:
        """What the widget shows of a finished job besides its counts."""
        extras: dict[str, Any] = {"version": snapshot["version"]}
        with contextlib.suppress(BatchError, OSError):
            if snapshot["failed"]:
                extras["failed_items"] = self.client.items(
                    snapshot["id"], status=ItemStatus.FAILED.value, limit=FAILED_ITEMS_SHOWN
                )
            page = self.client.outputs(snapshot["id"], limit=OUTPUTS_SHOWN)
            outputs = [str(path) for path in page.get("outputs", [])][:OUTPUTS_SHOWN]
            extras["outputs"] = outputs
            extras["outputs_total"] = int(page.get("total", len(outputs)))
        return extras
