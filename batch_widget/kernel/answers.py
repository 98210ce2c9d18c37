"""Kernel side: what an HTTP answer means, and the error a user gets for it.

An answer of batch_widget is JSON (an error is ``{"message": ...}``); Jupyter
refusing a token, a page that is not Jupyter, or a proxy whose server is down
each get an error that says so and what to do.
"""

from __future__ import annotations

import json
from typing import Any

from batch_widget.kernel.discovery import ServerNotFound
from batch_widget.protocol import BatchError, PermissionDenied

__all__ = [
    "GATEWAY_STATUSES", "NOT_JSON", "ServerUnreachable", "error_message", "gateway_error",
    "is_auth_refusal", "is_ours", "json_payload", "not_batch_widget", "token_rejected",
]


class ServerUnreachable(BatchError, ConnectionError):  # reads like its siblings
    """The server was found but did not answer (refused, reset, timed out)."""


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
    sent = "the token sent was rejected" if token else "no token was sent"
    return PermissionDenied(
        f"the Jupyter server at {url} refused the request: {sent} (HTTP 403: {message}). "
        "Use the token Jupyter printed at start (the ?token=... part of its URL; "
        "`jupyter server list` shows it again): bw.connect(url, token=...), or set "
        "BATCH_WIDGET_TOKEN (or pass the printed URL, token included, as BATCH_WIDGET_URL)."
    )
