"""Reading a job's item ledger back: pages of item records and the results stream.

Stored inputs and results are JSON already: they are spliced into the answers
as they are, never decoded and encoded again. Every query walks the
``items`` primary key ``(job, idx)`` from a position (``idx > after``), so
its cost does not grow with that position; ``OFFSET`` paging, which skips
rows one by one, is kept for old clients.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from batch_widget.protocol import ItemRecord, ItemStatus

__all__ = ["PAGE_BYTES", "Position", "ResultsChunk", "item_record", "items_page", "results_chunk"]

#: A page (or a chunk of the results stream) stops before the item that would
#: take it past this many bytes; it always holds at least one item while any match.
PAGE_BYTES = 8 * 1024 * 1024

_ITEM_COLUMNS = "idx, input, status, result, error, traceback, duration, log, attempts"
_RESULT_COLUMNS = "idx, status, result, error, attempts"


@dataclass(frozen=True)
class Position:
    """Where a page starts: after an index (keyset) or after skipping rows (offset)."""

    after: int | None = None
    offset: int = 0

    def clause(self) -> tuple[str, list[Any], str]:
        """The extra WHERE condition, its arguments, and the OFFSET clause."""
        if self.after is not None:
            return " AND idx > ?", [self.after], ""
        return "", [], f" OFFSET {int(self.offset)}"


@dataclass(frozen=True)
class ResultsChunk:
    """Part of the results stream: NDJSON lines, how many, and the last index in them."""

    body: bytes
    count: int
    last: int | None


def _filter(job_key: int, status: ItemStatus | None) -> tuple[str, list[Any]]:
    if status is None:
        return "job = ?", [job_key]
    return "job = ? AND status = ?", [job_key, status.value]


def count_items(conn: sqlite3.Connection, job_key: int, status: ItemStatus | None) -> int:
    """How many items of the job have ``status`` (every item for None): a scan of the job."""
    where, args = _filter(job_key, status)
    (total,) = conn.execute(f"SELECT COUNT(*) FROM items WHERE {where}", args).fetchone()
    return int(total)


def item_rows(
    conn: sqlite3.Connection,
    job_key: int,
    status: ItemStatus | None,
    position: Position,
    limit: int,
) -> sqlite3.Cursor:
    """A cursor over one page of item rows in index order."""
    where, args = _filter(job_key, status)
    extra, extra_args, offset = position.clause()
    return conn.execute(
        f"SELECT {_ITEM_COLUMNS} FROM items WHERE {where}{extra} ORDER BY idx LIMIT ?{offset}",
        [*args, *extra_args, limit],
    )


def items_page(rows: sqlite3.Cursor, total: int, max_bytes: int = PAGE_BYTES) -> bytes:
    """The JSON body ``{"items": [...], "total": n}`` of ``rows``, within ``max_bytes``."""
    parts: list[str] = []
    size = 0
    for row in rows:
        text = _item_json(row)
        if parts and size + len(text) > max_bytes:
            break
        parts.append(text)
        size += len(text) + 2
    rows.close()
    return f'{{"items": [{", ".join(parts)}], "total": {int(total)}}}'.encode()


def results_chunk(
    conn: sqlite3.Connection,
    job_key: int,
    status: ItemStatus | None,
    after: int,
    limit: int,
    *,
    max_bytes: int = PAGE_BYTES,
) -> ResultsChunk:
    """The next lines of ``GET .../results``, one item each.

    A line is ``{"index", "status", "result", "error", "attempts"}``.
    """
    where, args = _filter(job_key, status)
    rows = conn.execute(
        f"SELECT {_RESULT_COLUMNS} FROM items WHERE {where} AND idx > ? ORDER BY idx LIMIT ?",
        [*args, after, limit],
    )
    lines: list[str] = []
    size = 0
    last: int | None = None
    dumps = json.dumps
    for index, item_status, raw_result, error, attempts in rows:
        line = (
            f'{{"index": {int(index)}, "status": "{item_status}", '
            f'"result": {"null" if raw_result is None else raw_result}, '
            f'"error": {"null" if error is None else dumps(error)}, '
            f'"attempts": {int(attempts)}}}\n'
        )
        if lines and size + len(line) > max_bytes:
            break
        lines.append(line)
        size += len(line)
        last = int(index)
    rows.close()
    return ResultsChunk("".join(lines).encode(), len(lines), last)


def _item_json(row: Sequence[Any]) -> str:
    """One ``ItemRecord`` as JSON, the stored input and result spliced in as they are."""
    index, raw_input, status, raw_result, error, trace, duration, log, attempts = row
    dumps = json.dumps
    return (
        f'{{"index": {int(index)}, "input": {raw_input}, "status": {dumps(status)}, '
        f'"result": {"null" if raw_result is None else raw_result}, '
        f'"error": {dumps(error)}, "traceback": {dumps(trace)}, '
        f'"duration": {dumps(duration)}, "log": {dumps(log)}, "attempts": {int(attempts)}}}'
    )


def item_record(row: Sequence[Any]) -> ItemRecord:
    """One stored row as an ``ItemRecord`` (decoded)."""
    index, raw_input, status, raw_result, error, trace, duration, log, attempts = row
    return {
        "index": index,
        "input": json.loads(raw_input),
        "status": status,
        "result": None if raw_result is None else json.loads(raw_result),
        "error": error,
        "traceback": trace,
        "duration": duration,
        "log": log,
        "attempts": attempts,
    }
