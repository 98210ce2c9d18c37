"""Kernel side: the server's jobs as a list that renders as a table, and a job as HTML.

What a front end without widgets shows (a terminal, a saved notebook on a code host).
Plain data, no widget: the jobs view (:mod:`~batch_widget.kernel.jobsview`) holds its
page of jobs as a :class:`JobList`, and ``bw.jobs()`` (:mod:`~batch_widget.kernel.job`)
builds that view, so this module imports neither.
"""

from __future__ import annotations

import html

from batch_widget.protocol import JobStatus, Snapshot

__all__ = ["JobList", "snapshot_html"]


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
    counts = (
        f"{snap['done']} done · {snap['failed']} failed · {snap['pending']} {rest} of "
        f"{snap['total']}"
    )
    error = snap.get("error")
    error_html = f'<div class="bw-static-error">{html.escape(error)}</div>' if error else ""
    return (
        f'<div class="bw-static" data-job-id="{job_id}" data-status="{status}">'
        f"<b>{name}</b> <code>{job_id}</code> <span>{status}</span> "
        f"<span>{html.escape(counts)}</span>{error_html}"
        f"<div><small>The state when this output was saved. Live progress: "
        f"<code>bw.attach(&quot;{job_id}&quot;)</code> in a running kernel.</small></div>"
        "</div>"
    )
