"""Kernel side: a token goes only to the server it belongs to (docs/security.md).

``urllib`` follows a 3xx answer with every header of the request, the
``Authorization: token ...`` one included, whatever the new URL, and turns a
POST answered 301/302/303 into a GET. The rule here, the same for
``urllib`` (REST) and ``http.client`` (the streams):

- a GET or HEAD follows a redirect that keeps the scheme, host and port: it
  stays on the server the token was given for (the browser's same-origin
  rule), and following it keeps the useful diagnosis of a JupyterHub or proxy
  login page on that server;
- a redirect to another scheme, host or port is never followed, and a write
  (POST, DELETE, ...) follows no redirect at all, so it is never re-sent nor
  turned into a GET. The 3xx then comes back to the caller as the answer, and
  :func:`batch_widget.kernel.errors.redirect_refused` names it.

Standard library only: the discovery probe (:mod:`~batch_widget.kernel.launcher`)
uses it before anything else of the package is loaded.
"""

from __future__ import annotations

import urllib.parse
import urllib.request
from http.client import HTTPMessage
from typing import IO, Any

__all__ = ["MAX_REDIRECTS", "REDIRECT_STATUSES", "may_follow", "open_url", "origin", "target_of"]

#: The statuses that send a client elsewhere with a ``Location``.
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
#: Hops of same-origin redirects followed at most (urllib's own limit).
MAX_REDIRECTS = 10
_FOLLOWED_METHODS = frozenset({"GET", "HEAD"})
_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin(url: str) -> tuple[str, str, int | None]:
    """``(scheme, host, port)`` of ``url``, the default port filled in, case folded."""
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:  # a malformed port is no origin a token may follow
        port = -1
    return scheme, (parts.hostname or "").lower(), port or _DEFAULT_PORTS.get(scheme)


def may_follow(method: str, from_url: str, to_url: str) -> bool:
    """Whether a ``method`` request to ``from_url`` may follow a redirect to ``to_url``."""
    return method.upper() in _FOLLOWED_METHODS and origin(from_url) == origin(to_url)


def target_of(url: str, location: str | None) -> str:
    """The absolute URL a ``Location`` (maybe relative) of an answer from ``url`` names."""
    return urllib.parse.urljoin(url, location or "")


class _SameOriginRedirects(urllib.request.HTTPRedirectHandler):
    """Follow a redirect only where :func:`may_follow` says so; else hand the 3xx back."""

    max_redirections = MAX_REDIRECTS

    def redirect_request(  # noqa: PLR0917  # urllib's signature
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: HTTPMessage,
        newurl: str,
    ) -> urllib.request.Request | None:
        if not may_follow(req.get_method(), req.full_url, newurl):
            return None  # urllib raises the 3xx as an HTTPError: the caller names it
        return super().redirect_request(req, fp, code, msg, headers, newurl)


_OPENER = urllib.request.build_opener(_SameOriginRedirects)


def open_url(request: urllib.request.Request, timeout: float) -> Any:
    """``urllib.request.urlopen`` that follows only the redirects :func:`may_follow` allows.

    Raises
    ------
    urllib.error.HTTPError
        For an error status, and for a 3xx that was not followed (its
        ``headers`` hold the ``Location``).
    """
    return _OPENER.open(request, timeout=timeout)
