"""Kernel side: ``bw.jobs()``, the server's jobs as a list that renders as a table."""

from __future__ import annotations

import html

from batch_widget.kernel.client import default_client
from batch_widget.protocol import Snapshot

__all__ = ["JobList", "jobs"]


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


def jobs(status: str | None = None, limit: int = 100) -> JobList:
    """Return recent jobs, newest first, optionally of one status."""
    answer = default_client().list(status=status, limit=limit)
    listed = JobList(answer.get("jobs", []))
    listed.total = int(answer.get("total", len(listed)))
    return listed
