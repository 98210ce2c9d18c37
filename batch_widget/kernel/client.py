"""Kernel side, transport: the REST API (``api/batch/...``) and event stream of the server.

A kernel must not load the server, so this module uses only the standard
library: ``urllib.request`` for the REST API and ``http.client`` for the SSE
stream. Finding the server is :mod:`batch_widget.kernel.discovery`; parsing the
stream is :mod:`batch_widget.kernel.sse`. Neither follows a redirect that would
carry the token to another server, nor any redirect of a write
(:mod:`batch_widget.kernel.redirects`).
"""

from __future__ import annotations

import builtins
import contextlib
import http.client
import json
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Generator, Iterable, Iterator, Mapping
from typing import Any, cast

from batch_widget.kernel.discovery import (
    ServerInfo,
    discover,
    server_url,
    with_slash,
)
from batch_widget.kernel.errors import (
    GATEWAY_STATUSES,
    NOT_JSON,
    RedirectRefused,
    ResultsIncomplete,
    ServerNotFound,
    ServerUnreachable,
    error_message,
    gateway_error,
    is_auth_refusal,
    is_ours,
    json_payload,
    not_batch_widget,
    redirect_refused,
    token_rejected,
)
from batch_widget.kernel.redirects import REDIRECT_STATUSES, may_follow, open_url, target_of
from batch_widget.kernel.sse import SSEEvent, SSEParser
from batch_widget.kernel.streams import ndjson_records, open_stream, read_events
from batch_widget.protocol import (
    BatchError,
    ItemRecord,
    Snapshot,
    error_from_status,
)

__all__ = [
    "Client",
    "RedirectRefused",
    "ResultsIncomplete",
    "SSEEvent",
    "SSEParser",
    "ServerInfo",
    "ServerNotFound",
    "ServerUnreachable",
    "connect",
    "default_client",
    "discover",
    "error_for",
]

API = "api/batch/"
ITEMS_PAGE = 1000  # the server's default and largest sensible page of items


class _Default:
    """The module's default client, shared by every thread of the kernel."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.client: Client | None = None


_default = _Default()


def connect(url: str | None = None, token: str | None = None) -> Client:
    """Pick the server every later call talks to, and return its client.

    Parameters
    ----------
    url : str, optional
        The server's base URL, e.g. ``http://localhost:8888/user/me/``, or the URL
        Jupyter printed at start (``http://127.0.0.1:8888/lab?token=...``): the
        token is taken from it and the page's path dropped. ``None`` discovers the
        server again from the environment (see :func:`discover`).
    token : str, optional
        The server's token; it wins over a token in ``url``. With neither, none is sent.

    Returns
    -------
    Client
        The new default client.

    Raises
    ------
    ServerNotFound
        If ``url`` is None and discovery finds nothing.
    """
    if url is None:
        info = discover()
    else:
        base, token_in_url = server_url(url)
        info = ServerInfo(base, token or token_in_url or "", "explicit")
    client = Client(info.url, info.token, source=info.source)
    with _default.lock:
        _default.client = client
    return client


def default_client() -> Client:
    """Return the client set by :func:`connect`, discovering one on first use."""
    with _default.lock:
        if _default.client is None:
            info = discover()
            _default.client = Client(info.url, info.token, source=info.source)
        return _default.client


# --------------------------------------------------------------------------- HTTP


def error_for(status: int, message: str, job_id: str | None = None) -> BatchError:
    """Build the :class:`BatchError` subclass matching an HTTP error status.

    It inverts the server's table (:data:`batch_widget.protocol.HTTP_STATUS`).

    Parameters
    ----------
    status : int
        The HTTP status code.
    message : str
        The server's ``message``; it becomes the exception's text.
    job_id : str, optional
        The job the request was about, kept on :class:`JobNotFound`.
    """
    return error_from_status(status, message, job_id)


class Client:
    """A thin HTTP client of the batch_widget REST API and its event stream.

    ``bw.connect()`` returns one; the routes are listed in docs/http-api.md.

    Parameters
    ----------
    url : str
        The server's base URL, including its ``base_url``.
    token : str
        Sent as ``Authorization: token <token>`` when not empty.
    timeout : float
        Seconds to wait for a REST answer.
    source : str
        How the server was found (shown in ``repr``).
    """

    def __init__(
        self, url: str, token: str = "", *, timeout: float = 30.0, source: str = "explicit"
    ) -> None:
        self.url = with_slash(url)
        self.token = token
        self.timeout = timeout
        self.source = source

    def __repr__(self) -> str:
        return f"Client(url={self.url!r}, source={self.source!r})"

    # -- plumbing

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"token {self.token}"
        return headers

    def _endpoint(self, path: str, query: Iterable[tuple[str, Any]] = ()) -> str:
        pairs = [(k, str(v)) for k, v in query if v is not None]
        suffix = "?" + urllib.parse.urlencode(pairs) if pairs else ""
        return f"{self.url}{API}{path}{suffix}"

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Iterable[tuple[str, Any]] = (),
        body: Any = None,
        job_id: str | None = None,
    ) -> Any:
        """Send one request under ``api/batch/`` and return its decoded JSON (None if empty).

        Raises
        ------
        BatchError
            The subclass matching the error status, with the server's message.
        RedirectRefused
            If the answer is a redirect to another server, or any redirect of a write.
        ServerUnreachable
            If the server cannot be reached.
        """
        headers = self._headers()
        data = None
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(
            self._endpoint(path, query), data=data, headers=headers, method=method
        )
        endpoint = f"{method} {API}{path}"
        try:
            with open_url(req, timeout=self.timeout) as resp:
                raw = resp.read()
                content_type = resp.headers.get("Content-Type", "")
                status = resp.status
                final_url = resp.geturl()
        except urllib.error.HTTPError as exc:
            if exc.code in REDIRECT_STATUSES:
                exc.close()
                raise self._redirect_error(
                    exc.code,
                    exc.url or req.full_url,
                    exc.headers.get("Location") if exc.headers else None,
                    method=method,
                    endpoint=endpoint,
                ) from None
            content_type = exc.headers.get("Content-Type", "") if exc.headers else ""
            raise self._error_from(
                exc.code,
                str(exc.reason),
                content_type,
                exc.read(),
                endpoint=endpoint,
                job_id=job_id,
            ) from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            reason = getattr(exc, "reason", exc)
            raise ServerUnreachable(f"cannot reach {self.url}: {reason}") from exc
        redirected_to = "" if final_url == req.full_url else final_url
        if not raw.strip():
            if status == 204 or method == "DELETE":  # DELETE answers 204, no body
                return None
            raise not_batch_widget(self.url, endpoint, status, "an empty body", redirected_to)
        payload = json_payload(raw)
        if payload is NOT_JSON:
            raise not_batch_widget(self.url, endpoint, status, content_type, redirected_to)
        return payload

    def _error_from(
        self,
        status: int,
        reason: str,
        content_type: str,
        body: bytes,
        *,
        endpoint: str,
        job_id: str | None = None,
    ) -> BatchError:
        """The error for an error answer: ours (JSON with a message), Jupyter's, or another's.

        A 403 that is Jupyter refusing the token (or that is not a JSON error at all)
        says how to pass the token; any other answer that is not JSON with a
        ``message`` did not come from batch_widget (an HTML 404 page, another
        application), except a gateway's 502/503/504, which means the server
        behind it is down.
        """
        payload = json_payload(body)
        ours = is_ours(payload)
        message = error_message(status, reason, body, payload)
        if status == 403 and (not ours or is_auth_refusal(message)):
            return token_rejected(self.url, self.token, message)
        if not ours:
            if status in GATEWAY_STATUSES:
                return gateway_error(self.url, endpoint, status, reason)
            return not_batch_widget(self.url, endpoint, status, content_type)
        return error_for(status, message, job_id)

    def _redirect_error(
        self,
        status: int,
        answered_url: str,
        location: str | None,
        *,
        method: str,
        endpoint: str,
    ) -> RedirectRefused:
        """The error for a 3xx the kernel did not follow, naming where it pointed."""
        target = target_of(answered_url, location) if location else ""
        same_origin = bool(target) and may_follow("GET", answered_url, target)
        return redirect_refused(
            self.url, endpoint, status, target, method=method, same_origin=same_origin
        )

    @staticmethod
    def _job_path(job_id: str, action: str = "") -> str:
        quoted = urllib.parse.quote(job_id, safe="")
        return f"jobs/{quoted}/{action}" if action else f"jobs/{quoted}"

    # -- REST API

    def create(self, body: Mapping[str, Any]) -> Snapshot:
        """``POST api/batch/jobs``: create and queue a job; return its snapshot."""
        return cast(Snapshot, self.request("POST", "jobs", body=dict(body)))

    def get(self, job_id: str) -> Snapshot:
        """``GET api/batch/jobs/{id}``: one job's snapshot."""
        return cast(Snapshot, self.request("GET", self._job_path(job_id), job_id=job_id))

    def list(
        self, status: str | None = None, limit: int | None = None, offset: int | None = None
    ) -> dict[str, Any]:
        """``GET api/batch/jobs``: ``{"jobs": [snapshot, ...], "total": int}``, newest first."""
        query = [("status", status), ("limit", limit), ("offset", offset)]
        return cast(dict[str, Any], self.request("GET", "jobs", query=query))

    def items(
        self,
        job_id: str,
        status: str | None = None,
        offset: int | None = None,
        limit: int | None = None,
        after: int | None = None,
    ) -> dict[str, Any]:
        """``GET api/batch/jobs/{id}/items``: one page, ``{"items": [...], "total": int}``.

        ``after`` pages by index (the items after it); ``offset`` skips items.
        """
        query = [("status", status), ("offset", offset), ("limit", limit), ("after", after)]
        path = self._job_path(job_id, "items")
        return cast(dict[str, Any], self.request("GET", path, query=query, job_id=job_id))

    def all_items(
        self, job_id: str, status: str | None = None, page: int = ITEMS_PAGE
    ) -> Iterator[ItemRecord]:
        """Yield every item record of a job (optionally of one status), page by page.

        Pages follow each other by index (``?after=``), so the last page costs
        what the first does.
        """
        after = -1
        received = 0
        while True:
            answer = self.items(job_id, status=status, after=after, limit=page)
            records = cast(builtins.list[ItemRecord], answer.get("items", []))
            yield from records
            received += len(records)
            if not records or received >= int(answer.get("total", 0)):
                return
            after = records[-1]["index"]

    def results(
        self,
        job_id: str,
        status: str | None = None,
        after: int | None = None,
        timeout: float | None = None,
    ) -> Generator[dict[str, Any], None, None]:
        """``GET api/batch/jobs/{id}/results``: yield ``{"index", "status", "result", "error"}``.

        The server streams the ledger in index order (items after ``after`` only,
        of one ``status`` only); lines are decoded as they arrive, so a million
        results never sit in memory as one answer.

        Raises
        ------
        BatchError
            The subclass matching an error answer (``JobNotFound`` for an unknown job).
        ServerUnreachable
            If the server cannot be reached, or the stream breaks off.
        """
        query = [("status", status), ("after", after)]
        url = self._endpoint(self._job_path(job_id, "results"), query)
        with self._stream(
            url,
            self._headers(),
            self.timeout if timeout is None else timeout,
            endpoint=f"GET {API}jobs/…/results",
            job_id=job_id,
        ) as resp:
            try:
                yield from ndjson_records(resp)
            except (OSError, http.client.HTTPException) as exc:
                raise ServerUnreachable(
                    f"the results stream of job {job_id} broke off: {exc!r}"
                ) from exc

    @contextlib.contextmanager
    def _stream(
        self,
        url: str,
        headers: Mapping[str, str],
        timeout: float,
        *,
        endpoint: str,
        job_id: str | None = None,
    ) -> Iterator[http.client.HTTPResponse]:
        """An open streamed answer of ``GET url`` (the error it means unless 200); closed after.

        A redirect is followed only to the same server, as :meth:`request` does.
        """
        conn, resp, answered_url = open_stream(url, headers, timeout)
        try:
            if resp.status in REDIRECT_STATUSES:
                raise self._redirect_error(
                    resp.status,
                    answered_url,
                    resp.getheader("Location"),
                    method="GET",
                    endpoint=endpoint,
                )
            if resp.status != 200:
                raise self._error_from(
                    resp.status,
                    resp.reason,
                    resp.getheader("Content-Type") or "",
                    resp.read(),
                    endpoint=endpoint,
                    job_id=job_id,
                )
            yield resp
        finally:
            conn.close()

    def outputs(
        self, job_id: str, after: int | None = None, limit: int | None = None
    ) -> dict[str, Any]:
        """``GET api/batch/jobs/{id}/outputs``: one page of the files the results name.

        ``{"outputs": [path, ...], "total": int, "next_after": int | None}``: the
        outputs of up to ``limit`` items after index ``after``; ``next_after`` is
        where the next page starts (None on the last page).
        """
        query = [("after", after), ("limit", limit)]
        path = self._job_path(job_id, "outputs")
        return cast(dict[str, Any], self.request("GET", path, query=query, job_id=job_id))

    def cancel(self, job_id: str) -> Snapshot:
        """``POST api/batch/jobs/{id}/cancel``: stop starting items; 409 if terminal."""
        path = self._job_path(job_id, "cancel")
        return cast(Snapshot, self.request("POST", path, body={}, job_id=job_id))

    def retry(self, job_id: str) -> Snapshot:
        """``POST api/batch/jobs/{id}/retry``: re-run every item not done; 409 if active."""
        path = self._job_path(job_id, "retry")
        return cast(Snapshot, self.request("POST", path, body={}, job_id=job_id))

    def delete(self, job_id: str) -> None:
        """``DELETE api/batch/jobs/{id}``: forget a terminal job; 409 if active."""
        self.request("DELETE", self._job_path(job_id), job_id=job_id)

    # -- SSE

    def events(
        self,
        job_ids: Iterable[str] = (),
        last_event_id: str | None = None,
        timeout: float = 60.0,
    ) -> Generator[SSEEvent, None, None]:
        """Yield the events of ``GET api/batch/events`` (heartbeats included) as they arrive.

        Parameters
        ----------
        job_ids : iterable of str
            Filter the stream to these jobs (none: every job).
        last_event_id : str, optional
            Resume after this event id (sent as ``Last-Event-ID``).
        timeout : float
            Seconds without any byte (heartbeats count) before giving up.

        Yields
        ------
        SSEEvent
            Each dispatched event; the caller reads ``event`` and ``json()``.

        Raises
        ------
        TimeoutError
            If the stream is silent for ``timeout`` seconds.
        BatchError
            If the server answers with an error status.
        ServerUnreachable
            If the connection cannot be opened.

        Notes
        -----
        The generator simply ends when the server closes the stream or the
        connection drops: reconnecting (with the last event id) is the caller's call.
        """
        url = self._endpoint("events", [("job", job_id) for job_id in job_ids])
        headers = self._headers() | {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
        if last_event_id:
            headers["Last-Event-ID"] = last_event_id
        endpoint = f"GET {API}events"
        with self._stream(url, headers, timeout, endpoint=endpoint) as resp:
            content_type = resp.getheader("Content-Type") or ""
            if not content_type.startswith("text/event-stream"):
                raise not_batch_widget(self.url, endpoint, resp.status, content_type)
            yield from read_events(resp)
