"""The batch server's proof that it knows its token (docs/batch-server.md, docs/security.md).

A kernel that finds ``batch_widget-server.json`` must not send the token in it
to whatever now listens at its URL: after a crash or a reboot, another local
user may serve that port. So before anything else the kernel asks
``GET api/batch/proof?nonce=<64 hex digits>`` with no credentials, and this
route answers ``{"proof": HMAC-SHA256(token, nonce + url)}`` (``url`` the
server's own, as its runtime file names it). Only a server that holds the
token can answer; one that relays the question to the real server gets a proof
bound to the real server's URL, which the kernel refuses.

It is the one route that needs no token, so it answers nothing but the keyed
hash, and only the batch server registers it (never the Jupyter extension).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from jupyter_server.utils import url_path_join
from tornado.web import RequestHandler

from batch_widget.runtime import NONCE_PATTERN, PROOF_ROUTE, runtime_proof

__all__ = ["ProofHandler", "proof_route"]


class ProofHandler(RequestHandler):
    """``GET api/batch/proof?nonce=``: the keyed hash of the nonce and this server's URL."""

    def initialize(self, token: str, url: Callable[[], str]) -> None:
        """Take the server's token and (read at request time) its URL."""
        self._token = token
        self._url = url

    def set_default_headers(self) -> None:
        """Say nothing about the server (no ``Server`` header) and let no one cache it."""
        self.clear_header("Server")
        self.set_header("Cache-Control", "no-store")
        self.set_header("Content-Type", "application/json")

    def get(self) -> None:
        """Answer the nonce's proof, or 400 for a nonce that is not 64 hex digits."""
        nonce = self.get_query_argument("nonce", "")
        if not NONCE_PATTERN.fullmatch(nonce):
            self.set_status(400)
            self.finish(json.dumps({"message": "nonce must be 64 lowercase hex digits"}))
            return
        self.finish(json.dumps({"proof": runtime_proof(self._token, nonce, self._url())}))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Errors say no more than their status."""
        self.finish(json.dumps({"message": self._reason}))


def proof_route(
    base_url: str, token: str, url: Callable[[], str]
) -> tuple[str, type[ProofHandler], dict[str, Any]]:
    """The route for ``web_app.add_handlers``: the proof under ``base_url``."""
    return url_path_join(base_url, PROOF_ROUTE), ProofHandler, {"token": token, "url": url}
