"""Kernel side: ``bw.jobs()``, and the server's jobs as a list that renders as a table."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

from batch_widget.protocol import JobStatus, Snapshot

if TYPE_CHECKING:
    from batch_widget.kernel.jobsview import JobsView

__all__ = ["JobList", "jobs", "snapshot_html"]


class JobList(list[Snapshot]):
    """Job snapshots, newest first, that render as a table in a notebook.

    Attributes
    ----------
    total : int
        How many jobs match on the server (the list may hold fewer).
    """

    total: int = 0

    def _repr_html_(self) -> str:
        rows = "".join(_job_row(snap) for snap in self)
        head = "".join(
            f"<th>{title}</th>"
            for title in ("id", "name", "status", "done/failed/total", "created")
        )
        caption = f"<caption>{len(self)} of {self.total} jobs</caption>"
        body = f"<thead><tr>{head}</tr></thead><tbody>{rows}</tbody>"
        return f'<table class="bw-jobs">{caption}{body}</table>'


def _job_row(snap: Snapshot) -> str:
    counts = f"{snap['done']}/{snap['failed']}/{snap['total']}"
    cells = (snap["id"], snap["name"], snap["status"], counts, snap["created_at"] or "")
    return "<tr>" + "".join(f"<td>{html.escape(str(cell))}</td>" for cell in cells) + "</tr>"


def snapshot_html(snap: Snapshot) -> str:
    """A job's state as static HTML: what a saved notebook shows where no widget runs
    (a code host, a viewer, a broken widget manager), instead of a model reference."""
    name, job_id, status = (html.escape(str(snap[key])) for key in ("name", "id", "status"))
    rest = "not run" if JobStatus(snap["status"]).terminal else "pending"
    counts = (f"{snap['done']} done · {snap['failed']} failed · {snap['pending']} {rest} of "
              f"{snap['total']}")
    error = snap.get("error")
    error_html = f'<div class="bw-static-error">{html.escape(error)}</div>' if error else ""
    return (f'<div class="bw-static" data-job-id="{job_id}" data-status="{status}">'
            f"<b>{name}</b> <code>{job_id}</code> <span>{status}</span> "
            f"<span>{html.escape(counts)}</span>{error_html}"
            f"<div><small>The state when this output was saved. Live progress: "
            f"<code>bw.attach(&quot;{job_id}&quot;)</code> in a running kernel.</small></div>"
            "</div>")


def jobs(status: str | None = None, limit: int = 100, **traits: Any) -> JobsView:
    """The server's jobs, newest first: a live ``JobsView`` widget in a notebook, and
    a sequence of job snapshots in code (``limit`` of them, optionally of one status).

    ``traits`` go to the widget (``watchdog_timeout``, ``debug``, ``transport``, ...)."""
    from batch_widget.kernel.jobsview import JobsView  # anywidget: only when asked for

    return JobsView(status=status, limit=limit, **traits)
