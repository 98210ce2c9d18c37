"""Kernel side: what an HTTP answer means, and the error a user gets for it.

An answer of batch_widget is JSON (an error is ``{"message": ...}``); Jupyter
refusing a token, a page that is not Jupyter, or a proxy whose server is down
each get an error that says so and what to do.
"""

from __future__ import annotations

import json
from typing import Any

from batch_widget.protocol import BatchError, PermissionDenied

__all__ = [
    "GATEWAY_STATUSES",
    "NOT_JSON",
    "BatchFailed",
    "BatchServerUnavailable",
    "RedirectRefused",
    "ResultsIncomplete",
    "ServerNotFound",
    "ServerUnreachable",
    "error_message",
    "gateway_error",
    "is_auth_refusal",
    "is_ours",
    "json_payload",
    "not_batch_widget",
    "redirect_refused",
    "results_incomplete",
    "token_rejected",
]


class ServerNotFound(BatchError):  # public name fixed by the API brief
    """No batch_widget server could be found from this kernel."""


class BatchServerUnavailable(BatchError):
    """The batch server could not be started; the message says why."""


class BatchFailed(BatchError):  # public name fixed by the API brief
    """A job run by :func:`batch_widget.map` did not produce every result.

    Attributes
    ----------
    job : batch_widget.Job
        The job, to inspect ``errors()``, ``results()`` or ``retry()`` it. Typed
        ``Any`` here: errors sit below the job module in the kernel's layers.
    """

    def __init__(self, message: str, job: Any) -> None:
        super().__init__(message)
        self.job = job


class ServerUnreachable(BatchError, ConnectionError):  # reads like its siblings
    """The server was found but did not answer (refused, reset, timed out)."""


class RedirectRefused(ServerNotFound):
    """The URL answered with a redirect the kernel does not follow (docs/security.md).

    A :class:`ServerNotFound`: the URL in use is not the server's API. The
    message names the status and the ``Location``.
    """


class ResultsIncomplete(BatchError):
    """A job's results stream ended before it gave a line for every item (docs/security.md).

    Nothing partial is returned: the message says how many lines came and why
    the stream ended (the job was deleted, the connection broke off).

    Attributes
    ----------
    job_id : str
        The job whose results were read.
    received, expected : int
        Result lines read, and lines the job's items called for.
    """

    def __init__(self, message: str, job_id: str, received: int, expected: int) -> None:
        super().__init__(message)
        self.job_id = job_id
        self.received = received
        self.expected = expected


def json_payload(body: bytes) -> Any:
    """The JSON ``body`` holds, or ``NOT_JSON`` (an HTML page, a proxy's text)."""
    try:
        return json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return NOT_JSON


NOT_JSON = object()

#: Statuses a gateway (a proxy, JupyterHub) answers with when the server behind it
#: does not: the server is unreachable, the URL may well be right.
GATEWAY_STATUSES = frozenset({502, 503, 504})


def is_ours(payload: Any) -> bool:
    """Whether a decoded body is an error of a Jupyter API handler: ``{"message": ...}``."""
    return isinstance(payload, dict) and isinstance(payload.get("message"), str)


def is_auth_refusal(message: str) -> bool:
    """Jupyter's own 403 message when it does not take the token.

    A GET answers ``Forbidden``; a write without a token (and without the XSRF
    cookie a browser has) answers ``'_xsrf' argument missing from POST``. Our
    own 403s (processor not allowed, callables off) always say more.
    """
    return message == "Forbidden" or "_xsrf" in message


def error_message(status: int, reason: str, body: bytes, payload: Any) -> str:
    """The server's ``message`` when ``payload`` (``body`` decoded) has one, else the status."""
    if is_ours(payload) and payload["message"]:
        return str(payload["message"])
    text = body.decode("utf-8", errors="replace").strip()
    return f"HTTP {status} {reason}" + (f": {text[:200]}" if text else "")


def not_batch_widget(
    url: str, endpoint: str, status: int, content_type: str, redirected_to: str = ""
) -> ServerNotFound:
    kind = content_type.split(";", maxsplit=1)[0].strip() or "no content type"
    redirect = f" (after a redirect to {redirected_to}, a login page?)" if redirected_to else ""
    return ServerNotFound(
        f"{url} is not a Jupyter server with batch_widget: {endpoint} answered {status} "
        f"with {kind}{redirect}, not the JSON of the batch_widget API. Check the URL (it "
        "should be the server's base URL, e.g. http://127.0.0.1:8888/, or the URL Jupyter "
        "printed at start) and that the extension is enabled on that server "
        "(`jupyter server extension list` shows batch_widget enabled)."
    )


def gateway_error(url: str, endpoint: str, status: int, reason: str) -> ServerUnreachable:
    error = ServerUnreachable(
        f"cannot reach the Jupyter server at {url}: {endpoint} answered {status} {reason} "
        "from a proxy in front of it (is the server running?)"
    )
    error._received_status = status  # built from an answer: it keeps the status received
    return error


def token_rejected(url: str, token: str, message: str) -> PermissionDenied:
    """The 403 of a server that did not take the token: what to pass, without its jargon.

    Jupyter's own texts (``Forbidden``, ``'_xsrf' argument missing from POST``:
    a write without a valid token is checked as a browser's would be) say
    nothing a user can act on, so only another 403's text (a proxy's) is quoted.
    """
    sent = "the token sent was rejected" if token else "no token was sent"
    quoted = "" if is_auth_refusal(message) else f": {message}"
    return PermissionDenied(
        f"the Jupyter server at {url} refused the request: {sent} (HTTP 403{quoted}). "
        "Use the token Jupyter printed at start (the ?token=... part of its URL; "
        "`jupyter server list` shows it again): bw.connect(url, token=...), or set "
        "BATCH_WIDGET_TOKEN (or pass the printed URL, token included, as BATCH_WIDGET_URL)."
    )


def redirect_refused(
    url: str, endpoint: str, status: int, location: str, *, method: str, same_origin: bool
) -> RedirectRefused:
    """The error for a 3xx that was not followed: what answered, and how to go there on purpose.

    ``location`` is the absolute URL the answer named ("" if none); ``same_origin``
    whether it is on the server of ``url`` (then only a write or a loop stops it).
    """
    if method.upper() not in {"GET", "HEAD"}:
        why = f"a {method.upper()} is never re-sent nor turned into a GET by a redirect"
    elif same_origin:
        why = "the server kept redirecting (a loop?)"
    else:
        why = (
            "it leads to another server (scheme, host or port), and the token is only "
            "sent to the server it was given for"
        )
    base = location.split("api/batch/", 1)[0] if "api/batch/" in location else location
    return RedirectRefused(
        f"{url}: {endpoint} answered {status}, a redirect to {location or '(no Location)'}. "
        f"It was not followed ({why}); nothing was sent there. If {base or 'that URL'} is "
        f"your Jupyter server and you trust it, connect to it explicitly: "
        f"bw.connect({base!r}, token=...); otherwise check the URL you connected to."
    )


def results_incomplete(
    job_id: str, received: int, expected: int, why: str, advice: str
) -> ResultsIncomplete:
    """The error for a results stream that ended early: ``why`` it ended, and what to do."""
    return ResultsIncomplete(
        f"the results of job {job_id} ended early: {received} of {expected} lines came, "
        f"because {why}. Nothing partial is returned; {advice}.",
        job_id,
        received,
        expected,
    )
