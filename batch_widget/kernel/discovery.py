"""Kernel side: find the Jupyter server running batch_widget.

Standard library plus ``jupyter_core`` only: a kernel must not load the server.
"""

from __future__ import annotations

import json
import logging
import os
import urllib.parse
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jupyter_core.paths import jupyter_runtime_dir

from batch_widget.kernel.errors import BatchServerUnavailable, ServerNotFound
from batch_widget.kernel.launcher import (
    batch_api_status,
    batch_server,
    pid_alive,
)

__all__ = ["ServerInfo", "discover", "server_url", "with_slash"]

#: The first path segment of a page of Jupyter's own front ends: a URL Jupyter
#: prints (``.../lab?token=...``) or a browser shows ends there; the server's
#: base URL is what comes before it.
_UI_SEGMENTS = frozenset(
    {"lab", "tree", "notebooks", "doc", "edit", "consoles", "terminals", "view", "voila"}
)

_HOW_TO_FIX = (
    "Call bw.connect(url, token) with the Jupyter server's URL (including its base_url) "
    "and token, or set the BATCH_WIDGET_URL and BATCH_WIDGET_TOKEN environment variables, "
    "or run this code in a kernel started by a Jupyter server that has the batch_widget "
    "extension enabled."
)
#: Seconds a found Jupyter server gets to say whether it has the batch API.
_PROBE_TIMEOUT = 5.0
_log = logging.getLogger("batch_widget")


@dataclass(frozen=True)
class ServerInfo:
    """Where a server lives and how to authenticate.

    Attributes
    ----------
    url : str
        Base URL including the server's ``base_url``, always ending in ``/``.
    token : str
        The API token; empty for none.
    source : str
        How it was found, for error messages and ``repr``.
    """

    url: str
    token: str = ""
    source: str = "explicit"


def with_slash(url: str) -> str:
    return url if url.endswith("/") else url + "/"


def server_url(url: str) -> tuple[str, str | None]:
    """Split a URL a user pastes into the server's base URL and the token in it.

    ``http://127.0.0.1:8888/lab?token=abc`` (what Jupyter prints) gives
    ``("http://127.0.0.1:8888/", "abc")``; a page's URL such as
    ``http://host/user/me/lab/tree/a.ipynb`` gives ``("http://host/user/me/", None)``:
    the path is cut at the first segment of a Jupyter front end (``lab``, ``tree``,
    ``notebooks``, ``doc``, ...), the query and fragment are dropped, and a
    ``token`` query parameter is returned. A base URL is returned as it is (with a
    trailing slash), and so is any URL that ends in ``/`` without a query: a base
    URL may itself hold a segment named like a front end (a JupyterHub user ``lab``).
    """
    parts = urllib.parse.urlsplit(url.strip())
    if parts.path.endswith("/") and not parts.query and not parts.fragment:
        return url.strip(), None
    tokens = urllib.parse.parse_qs(parts.query).get("token")
    segments = parts.path.split("/")
    if len(segments) > 1 and segments[-1] in _UI_SEGMENTS:
        segments = segments[:-1]  # the printed form, ".../lab?token=...": the base is before it
    else:
        for index, segment in enumerate(segments):
            if index > 0 and segment in _UI_SEGMENTS:  # a page: ".../lab/tree/a.ipynb"
                segments = segments[:index]
                break
    path = with_slash("/".join(segments) or "/")
    base = urllib.parse.urlunsplit((parts.scheme, parts.netloc, path, "", ""))
    return base, (tokens[0] if tokens else None)


def _runtime_dir() -> Path:
    env = os.environ.get("JUPYTER_RUNTIME_DIR")
    if env:
        return Path(env)
    return Path(jupyter_runtime_dir())


def _read_server_files(runtime_dir: Path) -> Iterator[dict[str, Any]]:
    """Yield the contents of live ``jpserver-*.json`` files (format of ``server_info()``)."""
    if not runtime_dir.is_dir():
        return
    for path in sorted(runtime_dir.glob("jpserver-*.json")):
        try:
            info = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):  # being written, or unreadable: skip it
            continue
        if isinstance(info, dict) and pid_alive(int(info.get("pid", 0))):
            yield info


def _url_from_server_file(info: Mapping[str, Any]) -> str:
    url = info.get("url")
    if isinstance(url, str) and url:
        return with_slash(url)
    scheme = "https" if info.get("secure") else "http"
    host = info.get("hostname") or "localhost"
    base_url = str(info.get("base_url") or "/")
    return with_slash(f"{scheme}://{host}:{info['port']}{base_url}")


def _from_env() -> ServerInfo | None:
    pasted = os.environ.get("BATCH_WIDGET_URL")
    if not pasted:
        return None
    url, token_in_url = server_url(pasted)
    token = os.environ.get("BATCH_WIDGET_TOKEN") or token_in_url or ""
    return ServerInfo(url, token, "env")


def _from_parent_server() -> ServerInfo | None:
    parent = os.environ.get("JPY_PARENT_PID", "")
    if not parent.isdigit():
        return None
    for info in _read_server_files(_runtime_dir()):
        if int(info.get("pid", 0)) == int(parent):
            token = str(info.get("token") or "")
            return ServerInfo(_url_from_server_file(info), token, "jpserver file")
    return None


def _from_jupyterhub() -> ServerInfo | None:
    """The single-user server JupyterHub started, at ``JUPYTERHUB_SERVICE_URL``.

    Without that URL nothing is guessed: a server at a default port such as
    ``127.0.0.1:8888`` may be another user's, and would get the Hub token.
    """
    prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX")
    token = os.environ.get("JUPYTERHUB_API_TOKEN")
    if not prefix or not token:
        return None
    service_url = os.environ.get("JUPYTERHUB_SERVICE_URL", "")
    service = urllib.parse.urlsplit(service_url)
    try:
        port = service.port or {"http": 80, "https": 443}.get(service.scheme)
    except ValueError:
        port = None
    if not service.hostname or not port:
        _log.info(
            "JUPYTERHUB_SERVICE_URL is %s, so the JupyterHub server is not "
            "used: its token goes to no guessed address. Set BATCH_WIDGET_URL (and "
            "BATCH_WIDGET_TOKEN) or call bw.connect(url, token) to use it",
            repr(service_url) if service_url else "not set",
        )
        return None
    scheme = service.scheme
    host = service.hostname
    if not host or host in {"0.0.0.0", "::", "*"}:  # a bind-all address: talk to loopback
        host = "127.0.0.1"
    netloc = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    path = "/" + prefix.strip("/") + "/"
    return ServerInfo(f"{scheme}://{netloc}{path}", token, "jupyterhub")


def has_batch_api(info: ServerInfo, timeout: float = _PROBE_TIMEOUT) -> bool:
    """False only when the server answers that it has no batch API (a 404): a Jupyter
    server without the extension. A server that cannot be reached right now is kept:
    the error comes with the first request, and names it."""
    return batch_api_status(info.url, info.token, timeout) != 404


def _from_batch_server() -> ServerInfo:
    runtime_dir = _runtime_dir()
    try:
        info = batch_server(runtime_dir)
    except BatchServerUnavailable as exc:
        raise ServerNotFound(f"No batch_widget server found, and {exc}. {_HOW_TO_FIX}") from exc
    return ServerInfo(with_slash(info["url"]), str(info.get("token") or ""), "batch server")


def discover() -> ServerInfo:
    """Find the server from the environment, first match wins.

    The order is ``BATCH_WIDGET_URL`` (+ ``BATCH_WIDGET_TOKEN``), the Jupyter
    server that launched this kernel (``JPY_PARENT_PID`` against the runtime
    ``jpserver-*.json`` files), JupyterHub's ``JUPYTERHUB_SERVICE_URL``,
    ``JUPYTERHUB_SERVICE_PREFIX`` and ``JUPYTERHUB_API_TOKEN`` (all three: no address is
    guessed), then this user's batch server, started if none runs
    (VS Code, Colab, a plain ``python``). A Jupyter server that answers 404 for the
    batch API (the extension is not enabled there) is skipped. An explicit
    :func:`connect` overrides all of them.

    Returns
    -------
    ServerInfo
        The server's base URL and token.

    Raises
    ------
    ServerNotFound
        If the batch server cannot start either; the message says why and how to fix it.
    """
    found = _from_env()
    if found is not None:
        return found
    for finder in (_from_parent_server, _from_jupyterhub):
        found = finder()
        if found is None:
            continue
        if has_batch_api(found):
            return found
        _log.info(
            "the Jupyter server at %s (%s) does not have the batch_widget "
            "extension enabled; using the batch server",
            found.url,
            found.source,
        )
    return _from_batch_server()
