"""The live jobs view, ``bw.JobsView`` (what ``bw.jobs()`` returns; docs/jobs-view.md).

In a widget front end it shows every job of the server, newest first, live:
the browser follows the page's one event stream (no second EventSource) with
the same recovery layers as ``BatchProgress``. Elsewhere (a terminal, a saved
notebook on a code host) it is a table of the jobs as they were when it was
made, and in code it is a sequence of those snapshots, as ``bw.jobs()`` always
was.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any, overload

import anywidget
import traitlets

from batch_widget.kernel.client import Client, default_client
from batch_widget.kernel.listing import JobList
from batch_widget.kernel.widget import LiveTraits
from batch_widget.protocol import BatchError, JobStatus, Snapshot

__all__ = ["MAX_ROWS", "JobsView"]

_STATIC = Path(__file__).resolve().parent.parent / "static"
_log = logging.getLogger("batch_widget")

#: The most rows one page of the view holds: the API's own cap on ``limit``.
MAX_ROWS = 1000
_STATUSES = tuple(status.value for status in JobStatus)


class JobsView(anywidget.AnyWidget, LiveTraits):
    """Every job of the server, newest first, as a live widget.

    Each row shows a job's name, id, status, a small progress bar, its counts,
    rate and where it runs, with Cancel and Retry. New jobs appear at the top and
    running ones move as they run; ``limit`` rows per page, with buttons for
    older and newer pages.

    It is also a sequence of the job snapshots fetched when it was made
    (``len``, iteration, indexing), so ``[j["id"] for j in bw.jobs()]`` works as
    before; ``refresh()`` fetches them again.

    Parameters
    ----------
    status : str, optional
        Show only jobs in this state (``"processing"``, ...); all by default.
    limit : int, optional
        Rows per page (100; at most 1000).
    client : Client, optional
        The server to list (the default client otherwise).
    **kwargs : Any
        Traits (``reconnect_delay``, ``watchdog_interval``, ``watchdog_timeout``,
        ``debug``, ``transport``), passed on to ``anywidget.AnyWidget``.

    Attributes
    ----------
    total : int
        Jobs matching on the server (kept current by the browser while shown).
    shown : int
        Rows the browser shows.
    connection : str
        The browser's connection state, as for ``BatchProgress``.
    """

    _esm = _STATIC / "widget.js"
    _css = _STATIC / "widget.css"

    # Python → browser.
    _batch_view = traitlets.Unicode("jobs", read_only=True).tag(sync=True)
    status_filter = traitlets.Unicode("", help="Only jobs in this state; '' for all.").tag(
        sync=True
    )
    limit = traitlets.Int(100, help="Rows per page.").tag(sync=True)
    offset = traitlets.Int(0, help="The first row shown (the browser pages it).").tag(sync=True)
    kernel_jobs = traitlets.Dict(
        help="The page of jobs as the kernel fetched it (the kernel transport)."
    ).tag(sync=True)

    # Browser → Python.
    total = traitlets.Int(0, help="Jobs matching on the server.").tag(sync=True)
    shown = traitlets.Int(0, help="Rows shown.").tag(sync=True)

    def __init__(
        self,
        status: str | None = None,
        limit: int = 100,
        *,
        client: Client | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(status_filter=status or "", limit=limit, **kwargs)
        self._client = client or default_client()
        self._listed = JobList()
        self._kernel_version = 0
        self.refresh()
        self.on_msg(self._on_browser_message)

    # -- the jobs as data ------------------------------------------------------------

    def refresh(self) -> JobsView:
        """Fetch the page of jobs again (what iteration and the text form show)."""
        answer = self._client.list(
            status=self.status_filter or None, limit=self.limit, offset=self.offset
        )
        listed = JobList(answer.get("jobs", []))
        listed.total = int(answer.get("total", len(listed)))
        self._listed = listed
        self.total = listed.total
        self._send_to_browser(listed, None)
        return self

    @property
    def jobs(self) -> JobList:
        """The job snapshots fetched last, newest first."""
        return self._listed

    def __len__(self) -> int:
        return len(self._listed)

    def __iter__(self) -> Iterator[Snapshot]:
        return iter(self._listed)

    @overload
    def __getitem__(self, index: int) -> Snapshot: ...

    @overload
    def __getitem__(self, index: slice) -> list[Snapshot]: ...

    def __getitem__(self, index: int | slice) -> Snapshot | list[Snapshot]:
        return self._listed[index]

    def __bool__(self) -> bool:
        return True  # a widget, even with no job to show

    def __repr__(self) -> str:
        head = f"JobsView: {len(self._listed)} of {self._listed.total} jobs"
        if self.status_filter:
            head += f" ({self.status_filter})"
        lines = [head]
        for snap in self._listed:
            lines.append(
                f"  {snap['id']}  {snap['status']:<11} {snap['done']}/{snap['failed']}/"
                f"{snap['total']} done/failed/total  {snap['name']}"
            )
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        """The jobs as a static table (what a front end without widgets shows)."""
        return self._listed._repr_html_()

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        """The live widget, with the table and the text beside it for front ends
        without widgets (a saved notebook on a code host, a terminal)."""
        bundle = super()._repr_mimebundle_(**kwargs)
        data = bundle[0] if isinstance(bundle, tuple) else bundle
        if isinstance(data, dict):
            data["text/html"] = self._repr_html_()
            data["text/plain"] = repr(self)
        return bundle

    # -- the kernel transport -------------------------------------------------------

    def _send_to_browser(self, listed: JobList | None, error: str | None) -> None:
        """Set ``kernel_jobs``: the page of jobs for a browser that takes it from the kernel."""
        if self.transport == "server":
            return
        self._kernel_version += 1
        content: dict[str, Any] = {"version": self._kernel_version}
        if listed is not None:
            content.update(jobs=list(listed), total=listed.total)
        if error is not None:
            content["error"] = error
        self.kernel_jobs = content

    def _on_browser_message(self, _widget: Any, content: Any, _buffers: Any) -> None:
        """``refresh``, ``cancel`` and ``retry`` from a browser that cannot reach the
        server (they arrive when the kernel is idle)."""
        if not isinstance(content, dict):
            return
        kind = content.get("type")
        try:
            if kind in {"cancel", "retry"}:
                job_id = content.get("job_id")
                if isinstance(job_id, str) and job_id:
                    getattr(self._client, kind)(job_id)
            if kind in {"cancel", "retry", "refresh"}:
                self.refresh()
        except BatchError as error:
            _log.warning("the jobs view's %s failed: %s", kind, error)
            self._send_to_browser(None, str(error))

    # -- validation -----------------------------------------------------------------------

    @traitlets.validate("status_filter")
    def _check_status(self, proposal: dict[str, Any]) -> str:
        value = proposal["value"]
        if value and value not in _STATUSES:
            raise traitlets.TraitError(
                f"status must be one of {', '.join(_STATUSES)} (or None for all), got {value!r}"
            )
        return str(value)

    @traitlets.validate("limit")
    def _check_limit(self, proposal: dict[str, Any]) -> int:
        value: int = proposal["value"]
        if not 1 <= value <= MAX_ROWS:
            raise traitlets.TraitError(f"limit must be between 1 and {MAX_ROWS}, got {value!r}")
        return value

    @traitlets.validate("offset")
    def _check_offset(self, proposal: dict[str, Any]) -> int:
        value: int = proposal["value"]
        if value < 0:
            raise traitlets.TraitError(f"offset must be 0 or more, got {value!r}")
        return value
