"""The engine's own errors, in one place: what a job request or a run can fail with.

The errors every part shares (``BatchError`` and its kin) live in
:mod:`batch_widget.protocol`; these are the engine's, which the manager turns
into those before they leave it.
"""

from __future__ import annotations

__all__ = ["ClusterError", "ProcessorError", "ProcessorRefused"]


class ClusterError(Exception):
    """The job cannot run on the Dask cluster; the message says why and names the address."""


class ProcessorError(Exception):
    """The processor cannot be resolved to a callable (a request error: 400)."""


class ProcessorRefused(ProcessorError):
    """The server's rules do not let this processor run (a permission error: 403)."""
