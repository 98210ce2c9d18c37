"""REST and SSE handlers (docs/http-api.md) and their route table.

Handlers only translate HTTP to job manager calls. They reach their app
through jupyter_server's ``ExtensionHandlerMixin`` (``self.extensionapp``).
Domain errors (:class:`~batch_widget.protocol.BatchError`) become
``{"message": ...}`` answers with the status ``HTTP_STATUS`` gives them, in one
place: :meth:`BatchHandler.write_error`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Callable
from typing import Any, TypeVar, cast

from jupyter_core.utils import ensure_async
from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from jupyter_server.extension.handler import ExtensionHandlerMixin
from jupyter_server.utils import url_path_join
from tornado import web
from tornado.http1connection import HTTP1Connection
from tornado.ioloop import IOLoop
from tornado.iostream import StreamClosedError

from batch_widget.engine.manager import JobManager
from batch_widget.engine.validation import JobRequest
from batch_widget.protocol import (
    BatchError,
    InvalidRequest,
    JobNotFound,
    Snapshot,
    http_status,
)
from batch_widget.server.events import (
    Broadcaster,
    Event,
    Subscriber,
    event_name,
    format_event,
    format_heartbeat,
    format_retry,
)
from batch_widget.server.service import BatchService

__all__ = ["route_table"]

_JOB_ID = r"(?P<job_id>[^/]+)"  # any id reaches the handler, so unknown ones get a JSON 404
_EXECUTE_DENIED = (
    "permission denied: running a job executes code in the server, "
    "which needs the 'execute' permission on 'kernels'"
)

T = TypeVar("T")


class BatchHandler(ExtensionHandlerMixin, APIHandler):
    """Base of every batch_widget handler: its app's parts, argument parsing, errors."""

    auth_resource = "batch"

    async def prepare(self) -> None:  # type: ignore[override]  # APIHandler narrows it too
        """Keep reads (status polls, the SSE stream) from counting as user activity.

        jupyter_server bumps ``api_last_activity`` in ``APIHandler.finish`` unless
        ``_track_activity`` is False; an idle-culler must not see a browser that
        merely watches a progress bar as a busy user.
        """
        self._track_activity = self.request.method not in {"GET", "HEAD", "OPTIONS"}
        await super().prepare()

    @property
    def log(self) -> logging.Logger:
        """The extension's logger (the server's ``batch_widget`` child), named in each line."""
        return self.app.server_log

    @property
    def app(self) -> BatchService:
        """The extension app that registered this handler (jupyter_server's own lookup,
        ``self.settings[self.name]``), used only through :class:`BatchService`."""
        return cast(BatchService, self.extensionapp)

    @property
    def manager(self) -> JobManager:
        """The job manager; ``StoreInUse`` (503) while another server owns the store."""
        return self.app.require_manager()

    # -- errors ----------------------------------------------------------------

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Answer a domain error with its status (``HTTP_STATUS``) and ``{"message": ...}``."""
        exc_info = kwargs.get("exc_info")
        error = exc_info[1] if exc_info else None
        status = http_status(type(error))  # None unless a domain error
        if status is not None:
            self.set_status(status)
            self.finish(json.dumps({"message": str(error)}))
            return
        super().write_error(status_code, **kwargs)

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        """Log a domain error as one line: it is the client's mistake, not a crash."""
        status = http_status(type(value))  # None unless a domain error
        if status is not None:
            # A 5xx (the store is gone or owned elsewhere) is the server's state: loud.
            self.log.log(
                logging.ERROR if status >= 500 else logging.INFO,
                "%s %s -> %s: %s",
                self.request.method,
                self.request.path,
                status,
                value,
            )
            return
        super().log_exception(typ, value, tb)

    # -- helpers ---------------------------------------------------------------

    async def run_blocking(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a blocking manager call on the default executor."""
        return await IOLoop.current().run_in_executor(None, lambda: fn(*args, **kwargs))

    async def require_execute_permission(self) -> None:
        """Refuse with 403 unless the user may execute code (``kernels``/``execute``)."""
        allowed = await ensure_async(
            self.authorizer.is_authorized(self, self.current_user, "execute", "kernels")
        )
        if not allowed:
            raise web.HTTPError(403, _EXECUTE_DENIED)

    def close_connection(self) -> None:
        """Close the socket mid-answer: a stalled client, or a body that must not end."""
        connection = self.request.connection
        if isinstance(connection, HTTP1Connection):
            connection.close()

    def write_json(self, data: Any, status: int = 200) -> None:
        """Finish with ``data`` as JSON."""
        self.set_status(status)
        self.finish(json.dumps(data))

    def json_object_body(self) -> dict[str, Any]:
        """Return the body as a strict JSON object or raise InvalidRequest.

        Strict: ``NaN`` and ``Infinity`` (which Python's ``json`` accepts) are
        refused, so nothing stored can later be sent to a browser as bare ``NaN``.
        """
        try:
            body = json.loads(self.request.body or b"null", parse_constant=_refuse_constant)
        except (ValueError, RecursionError) as exc:
            raise InvalidRequest(f"the request body is not valid JSON: {exc}") from None
        if not isinstance(body, dict):
            raise InvalidRequest("the request body must be a JSON object")
        return body

    def int_argument(self, name: str, default: int) -> int:
        """Return query argument ``name`` as an int, or raise InvalidRequest.

        Ranges are the manager's business; this only turns text into a number.
        """
        value = self.optional_int_argument(name)
        return default if value is None else value

    def optional_int_argument(self, name: str) -> int | None:
        """Return query argument ``name`` as an int, None when absent; InvalidRequest if bad."""
        text = self.get_argument(name, None)
        if text is None:
            return None
        try:
            return int(text)
        except ValueError:
            raise InvalidRequest(f"?{name}= must be an integer, not {text!r}") from None


class JobsHandler(BatchHandler):
    """``api/batch/jobs``: create and list jobs."""

    @web.authenticated
    @authorized
    async def post(self) -> None:
        """Create and queue a job: 201, its snapshot and a ``Location`` header."""
        await self.require_execute_permission()
        body = self.json_object_body()
        manager = self.manager  # a server that does not own the store answers 503 first
        request = JobRequest.from_json(body)
        snapshot = await self.run_blocking(manager.create, request)
        self.set_header("Location", url_path_join(self.base_url, "api/batch/jobs", snapshot["id"]))
        self.write_json(snapshot, status=201)

    @web.authenticated
    @authorized
    async def get(self) -> None:
        """List jobs, newest first: ``{"jobs": [...], "total": n}``."""
        jobs, total = self.manager.list_jobs(
            status=self.get_argument("status", None),
            limit=self.int_argument("limit", 100),
            offset=self.int_argument("offset", 0),
        )
        self.write_json({"jobs": jobs, "total": total})


class JobHandler(BatchHandler):
    """``api/batch/jobs/{id}``: read or forget one job."""

    @web.authenticated
    @authorized
    async def get(self, job_id: str) -> None:
        """Answer the job's snapshot."""
        self.write_json(self.manager.get(job_id))

    @web.authenticated
    @authorized
    async def delete(self, job_id: str) -> None:
        """Forget a terminal job and its items: 204."""
        await self.run_blocking(self.manager.delete, job_id)
        self.set_status(204)
        self.finish()


class ItemsHandler(BatchHandler):
    """``api/batch/jobs/{id}/items``: the per-item ledger."""

    def compute_etag(self) -> str | None:
        """No ETag: hashing a page of big results would hold the IOLoop."""
        return None

    @web.authenticated
    @authorized
    async def get(self, job_id: str) -> None:
        """Answer ``{"items": [...], "total": n}``, built off the IOLoop.

        A page may hold fewer than ``limit`` items when they are big (see
        ``Store.items_page``); clients advance by the number of items received.
        """
        body = await self.run_blocking(
            self.manager.items_page,
            job_id,
            status=self.get_argument("status", None),
            offset=self.int_argument("offset", 0),
            limit=self.int_argument("limit", 1000),
            after=self.optional_int_argument("after"),
        )
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.finish(body)


class ResultsHandler(BatchHandler):
    """``api/batch/jobs/{id}/results``: the whole ledger as NDJSON, streamed page by page."""

    def compute_etag(self) -> str | None:
        """No ETag: the body is streamed."""
        return None

    @web.authenticated
    @authorized
    async def get(self, job_id: str) -> None:
        """Stream ``{"index", "status", "result", "error"}`` lines in index order.

        Each part is read off the IOLoop and flushed before the next is read, so
        the server holds one part (at most ``ledger.PAGE_BYTES``) at a time. A bad
        argument or an unknown job is answered (400, 404) before the stream starts.

        Once the first part is sent, an error (the job deleted meanwhile, the
        store gone) can no longer be a status: the connection is broken off
        instead of ending the body, so no reader takes a short stream for the
        whole ledger (docs/security.md). So is an unfiltered stream that has fewer lines
        than the job has items after ``after`` (its rows went while it was read,
        the job being deleted).
        """
        status = self.get_argument("status", None)
        start = after = self.int_argument("after", -1)
        chunk = await self.run_blocking(self.manager.results_chunk, job_id, status, after)
        self.set_header("Content-Type", "application/x-ndjson")
        self.set_header("Cache-Control", "no-cache")
        sent = 0
        try:
            while chunk.count:
                self.write(chunk.body)
                await self.flush()
                assert chunk.last is not None
                after, sent = chunk.last, sent + chunk.count
                chunk = await self.run_blocking(self.manager.results_chunk, job_id, status, after)
            missing = await self.run_blocking(self.lines_missing, job_id, status, start, sent)
        except StreamClosedError:
            return  # the client went away
        except Exception as error:  # whatever it is, the body must not end
            domain = http_status(type(error)) is not None  # a deleted job is no crash
            self.break_off(job_id, after, str(error), None if domain else error)
            return
        if missing and not sent:
            raise JobNotFound(job_id)  # nothing sent yet: a status can still say it (404)
        if missing:
            self.break_off(
                job_id,
                after,
                f"{missing} lines of the job's items are gone (is it being deleted?)",
                None,
            )
            return
        self.finish()

    def lines_missing(self, job_id: str, status: str | None, start: int, sent: int) -> int:
        """How many lines an unfiltered stream after ``start`` lacks (0 for a filtered one).

        The ledger holds a row for every item from the job's creation on.

        Raises
        ------
        JobNotFound
            If the job is gone.
        """
        total = self.manager.get(job_id)["total"]
        return 0 if status is not None else max(0, total - 1 - start) - sent

    def break_off(self, job_id: str, after: int, why: str, crash: Exception | None) -> None:
        """Close the connection mid-body (the reader gets an incomplete answer), and log why."""
        self.log.log(
            logging.INFO if crash is None else logging.ERROR,
            "the results stream of job %s broke off after index %s: %s",
            job_id,
            after,
            why,
            exc_info=crash,
        )
        self.close_connection()


class OutputsHandler(BatchHandler):
    """``api/batch/jobs/{id}/outputs``: files named by the results, a page at a time."""

    #: Items whose outputs one page holds unless ``?limit=`` says otherwise.
    default_limit = 1000

    def compute_etag(self) -> str | None:
        """No ETag: hashing a big page would hold the IOLoop."""
        return None

    @web.authenticated
    @authorized
    async def get(self, job_id: str) -> None:
        """Answer ``{"outputs": [...], "total": n, "next_after": index or null}``.

        A page holds the outputs of up to ``?limit=`` items (1000; at most 10000)
        after the item index ``?after=``; ``next_after`` is the ``after`` of the next
        page. The whole answer (the store read, the paths made relative to the root,
        the JSON) is built off the IOLoop, so a job of many outputs stalls nothing.
        """
        manager = self.manager  # a server that does not own the store answers 503 first
        after = self.int_argument("after", -1)
        limit = self.int_argument("limit", self.default_limit)
        root = os.path.expanduser(str(self.settings.get("server_root_dir") or os.getcwd()))
        body = await self.run_blocking(self.answer, manager, job_id, after, limit, root)
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.finish(body)

    @staticmethod
    def answer(manager: JobManager, job_id: str, after: int, limit: int, root: str) -> bytes:
        """The JSON body (blocking: the handler runs it off the IOLoop)."""
        page = manager.outputs(job_id, after=after, limit=limit)
        paths = [relative_to_root(path, root) for path in page.paths]
        answer = {"outputs": paths, "total": page.total, "next_after": page.next_after}
        return json.dumps(answer).encode()


class CancelHandler(BatchHandler):
    """``api/batch/jobs/{id}/cancel``."""

    @web.authenticated
    @authorized
    async def post(self, job_id: str) -> None:
        """Stop starting items; answer the snapshot (409 when already terminal)."""
        self.write_json(await self.run_blocking(self.manager.cancel, job_id))


class RetryHandler(BatchHandler):
    """``api/batch/jobs/{id}/retry``."""

    @web.authenticated
    @authorized
    async def post(self, job_id: str) -> None:
        """Re-run every item not done; answer the snapshot (409 unless terminal)."""
        await self.require_execute_permission()
        self.write_json(await self.run_blocking(self.manager.retry, job_id))


class EventsHandler(BatchHandler):
    """``api/batch/events``: the SSE stream of job events and heartbeats."""

    _subscriber: Subscriber | None = None
    _hub: Broadcaster | None = None

    @property
    def hub(self) -> Broadcaster:
        """The broadcaster this stream subscribed to (the same one until the stream ends)."""
        assert self._hub is not None, "get() subscribes first"
        return self._hub

    @web.authenticated
    @authorized
    async def get(self) -> None:
        """Catch the client up, then stream events until it leaves or stalls."""
        job_ids = frozenset(self.get_arguments("job")) or None
        last_id = self.request.headers.get("Last-Event-ID") or self.get_argument(
            "last_event_id", None
        )
        self.set_header("Content-Type", "text/event-stream")
        self.set_header("Cache-Control", "no-cache")
        self.set_header("X-Accel-Buffering", "no")
        hub = self._hub = self.app.require_broadcaster()
        sub = self._subscriber = hub.subscribe(job_ids)
        try:
            self.write(format_retry(self.app.batch_settings.reconnect_delay))
            self.write("".join(self.catch_up(last_id, job_ids)))
            await self.send()
            await self.stream(sub)
        except StreamClosedError:
            pass
        except asyncio.TimeoutError:
            reason = f"a write took longer than {hub.sse_timeout:g} s"
            hub.drop(sub, reason)
            self.close_connection()
        finally:
            hub.unsubscribe(sub)
        self.end_stream()

    def catch_up(self, last_id: str | None, job_ids: frozenset[str] | None) -> list[str]:
        """Return the messages that bring a (re)connecting client up to date."""
        changed = self.hub.changed_since(last_id, job_ids)
        if changed is not None:
            return [format_event(e.id, e.name, e.snapshot) for e in changed]
        current = self.hub.current_id
        return [
            format_event(current, event_name(snapshot), snapshot)
            for snapshot in self.current_snapshots(job_ids)
        ]

    def current_snapshots(self, job_ids: frozenset[str] | None) -> list[Snapshot]:
        """Every active job (within the filter) plus every filtered job that exists."""
        snapshots = {
            s["id"]: s
            for s in self.manager.active_snapshots()
            if job_ids is None or s["id"] in job_ids
        }
        for job_id in sorted(job_ids or ()):
            if job_id not in snapshots:
                try:
                    snapshots[job_id] = self.manager.get(job_id)
                except BatchError:
                    continue
        return list(snapshots.values())

    async def stream(self, sub: Subscriber) -> None:
        """Write what the subscriber receives until it is closed."""
        while not sub.closed:
            await sub.wait(timeout=self.hub.heartbeat_interval)
            events, heartbeat = sub.take()
            if sub.closed:
                return
            self.write_events(events, heartbeat)
            if events or heartbeat:
                await self.send()

    def write_events(self, events: list[Event], heartbeat: bool) -> None:
        """Queue ``events`` (and a heartbeat) in the response buffer."""
        parts = [format_event(e.id, e.name, e.snapshot) for e in events]
        if heartbeat:
            parts.append(format_heartbeat(self.hub.epoch))
        if parts:
            self.write("".join(parts))

    async def send(self) -> None:
        """Flush, giving up after ``sse_timeout`` (a client that takes nothing)."""
        await asyncio.wait_for(self.flush(), timeout=self.hub.sse_timeout)

    def on_connection_close(self) -> None:
        """The client went away: unsubscribe now so the stream loop ends."""
        super().on_connection_close()
        if self._hub is not None and self._subscriber is not None:
            self._hub.unsubscribe(self._subscriber)

    def end_stream(self) -> None:
        """Finish the response unless the connection is already gone."""
        if self._finished or self.request.connection is None:
            return
        with contextlib.suppress(StreamClosedError):
            self.finish(set_content_type="text/event-stream")


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON; send null or a number")


def relative_to_root(path: str, root: str) -> str:
    """Return ``path`` relative to ``root`` (``/``-separated) when inside it, else absolute.

    A relative ``path`` is taken as relative to ``root``, the server's root dir.
    Both are normalised first, so a prefix test is exact (and cheap for a page
    of thousands of paths).
    """
    root = os.path.abspath(root)
    absolute = os.path.abspath(os.path.join(root, path))
    if absolute == root:
        return "."
    prefix = root if root.endswith(os.sep) else root + os.sep
    if os.path.normcase(absolute).startswith(os.path.normcase(prefix)):
        return absolute[len(prefix) :].replace(os.sep, "/")
    return absolute  # outside the root, or on another drive (Windows)


def route_table() -> list[tuple[str, type[BatchHandler]]]:
    """The routes, relative to the server's base_url (ExtensionApp prefixes it)."""
    jobs = "api/batch/jobs"
    job = url_path_join(jobs, _JOB_ID)
    return [
        (jobs, JobsHandler),
        (job, JobHandler),
        (url_path_join(job, "items"), ItemsHandler),
        (url_path_join(job, "results"), ResultsHandler),
        (url_path_join(job, "outputs"), OutputsHandler),
        (url_path_join(job, "cancel"), CancelHandler),
        (url_path_join(job, "retry"), RetryHandler),
        ("api/batch/events", EventsHandler),
    ]
