"""The live progress widget, ``bw.BatchProgress``, an ``anywidget.AnyWidget``.

The front end lives in ``js/`` and is bundled into ``static/``. This module is
kernel side: it never imports jupyter_server. No credential is ever held in a
trait, because widget state is saved in notebooks; the browser authenticates
with the page's own Jupyter session.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anywidget
import traitlets

from batch_widget.kernel.client import Client, default_client
from batch_widget.kernel.feed import KernelFeed

_STATIC = Path(__file__).resolve().parent.parent / "static"

#: The connection states the browser reports, in the order they usually occur;
#: ``kernel`` while the updates come through the kernel (docs/batch-server.md).
CONNECTION_STATES = ("connecting", "live", "reconnecting", "polling", "closed", "kernel")
#: Where the browser takes its updates from (docs/batch-server.md).
TRANSPORTS = ("auto", "server", "kernel")


class LiveTraits(traitlets.HasTraits):
    """The traits every live widget of batch_widget shares: how the browser keeps
    current (docs/jobs-view.md timings, ``debug``, ``transport``) and what it reports of
    its connection."""

    # Python → browser.
    reconnect_delay = traitlets.Int(
        5000, help="Milliseconds before a closed stream is rebuilt."
    ).tag(sync=True)
    watchdog_interval = traitlets.Int(15000, help="Milliseconds between watchdog checks.").tag(
        sync=True
    )
    watchdog_timeout = traitlets.Int(
        60000, help="Milliseconds without an update before the server is polled."
    ).tag(sync=True)
    debug = traitlets.Bool(False, help="Log connection diagnostics to the browser console.").tag(
        sync=True
    )
    transport = traitlets.Enum(
        TRANSPORTS, "auto", help="Where the browser takes its updates from."
    ).tag(sync=True)

    # Browser → Python.
    connection = traitlets.Enum(
        CONNECTION_STATES, "connecting", help="State of the browser's connection."
    ).tag(sync=True)
    reconnects = traitlets.Int(0, help="Streams rebuilt or reconnected.").tag(sync=True)
    polls = traitlets.Int(0, help="Polls of the server.").tag(sync=True)

    @traitlets.validate("reconnect_delay", "watchdog_interval", "watchdog_timeout")
    def _check_delay(self, proposal: dict[str, Any]) -> int:
        value: int = proposal["value"]
        if value <= 0:
            name = proposal["trait"].name
            raise traitlets.TraitError(
                f"{name} must be a positive number of milliseconds, got {value!r}"
            )
        return value


class BatchProgress(anywidget.AnyWidget, LiveTraits):
    """A live progress bar for one batch job.

    The browser follows the job over the page's shared Server-Sent Events
    stream, reconnects after ``reconnect_delay`` when it drops, and polls the
    job when no update arrived for ``watchdog_timeout``. What it shows is
    mirrored back into the browser → Python traits below.

    Parameters
    ----------
    job_id : str
        The job to follow.
    reconnect_delay : int, optional
        Milliseconds to wait before rebuilding a closed stream (5000).
    watchdog_interval : int, optional
        Milliseconds between watchdog checks (15000).
    watchdog_timeout : int, optional
        Milliseconds without an update before the job is polled (60000).
    debug : bool, optional
        Log every transition, poll and watchdog firing to the browser console
        and show the counters in the widget (False).
    transport : {"auto", "server", "kernel"}, optional
        Where the browser takes its updates from: the page's Jupyter server, or
        this kernel, which follows the job and sends each snapshot over the
        widget's own channel (for a server the page cannot reach: VS Code, Colab,
        a JupyterLab without the extension). ``"auto"`` (default) uses the page's
        server if it answers for the job within 2 s, else the kernel.
    client : Client, optional
        The server the kernel follows the job on (the default client otherwise).
    **kwargs : Any
        Passed on to ``anywidget.AnyWidget``.

    Attributes
    ----------
    status, total, done, failed, version
        Mirror of the last job snapshot the browser shows.
    connection : str
        One of ``connecting``, ``live``, ``reconnecting``, ``polling``, ``closed``.
    reconnects, polls : int
        Diagnostic counters.

    Examples
    --------
    >>> BatchProgress(job_id="3f2a")  # doctest: +SKIP
    """

    _esm = _STATIC / "widget.js"
    _css = _STATIC / "widget.css"

    # Python → browser.
    job_id = traitlets.Unicode(help="The job to follow.").tag(sync=True)
    kernel_snapshot = traitlets.Dict(
        help="The job's snapshot as the kernel follows it (the kernel transport)."
    ).tag(sync=True)
    kernel_extras = traitlets.Dict(
        help="A finished job's failed items and its first outputs with their total "
        "(outputs_total), for the kernel transport; saved in the notebook, so never all."
    ).tag(sync=True)

    # Browser → Python: a mirror of what the widget shows.
    status = traitlets.Unicode(
        "", help="The job status shown; 'deleted' once the job is gone from the server."
    ).tag(sync=True)
    total = traitlets.Int(0, help="Items in the job.").tag(sync=True)
    done = traitlets.Int(0, help="Items done.").tag(sync=True)
    failed = traitlets.Int(0, help="Items failed.").tag(sync=True)
    version = traitlets.Int(0, help="Version of the snapshot shown.").tag(sync=True)

    def __init__(self, job_id: str, *, client: Client | None = None, **kwargs: Any) -> None:
        super().__init__(job_id=job_id, **kwargs)
        self._client = client
        self._feed: KernelFeed | None = None
        self.on_msg(self._on_browser_message)

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        """Display the widget; unless ``transport="server"``, the kernel starts following
        the job then, so its updates are there when the browser needs them."""
        if self.transport != "server":
            self._follow()
        return super()._repr_mimebundle_(**kwargs)

    def _follow(self, *, resume: bool = False) -> KernelFeed:
        if self._feed is None:
            self._feed = KernelFeed(self, self._client or default_client())
        self._feed.start(resume=resume)
        return self._feed

    def _on_browser_message(self, _widget: Any, content: Any, _buffers: Any) -> None:
        """Cancel, Retry and refresh asked by the browser over the kernel transport
        (they arrive when the kernel is idle), and the transport it chose."""
        if not isinstance(content, dict):
            return
        kind = content.get("type")
        if kind == "transport" and content.get("value") == "server":
            if self._feed is not None:
                self._feed.close()
            return
        if kind not in {"cancel", "retry", "refresh"}:
            return
        feed = self._follow(resume=True)  # the browser takes its updates from the kernel now
        if kind == "refresh":
            feed.refresh()
        else:
            feed.act(kind)

    def close(self) -> None:
        """Close the widget and stop the kernel's updates for it."""
        if self._feed is not None:
            self._feed.close()
        super().close()

    @traitlets.validate("job_id")
    def _check_job_id(self, proposal: dict[str, Any]) -> str:
        value = proposal["value"]
        if not isinstance(value, str) or not value.strip():
            raise traitlets.TraitError(f"job_id must be a non-empty string, got {value!r}")
        return value

    def __repr__(self) -> str:
        return (
            f"BatchProgress(job_id={self.job_id!r}, status={self.status!r}, "
            f"done={self.done}, failed={self.failed}, total={self.total}, "
            f"connection={self.connection!r})"
        )
