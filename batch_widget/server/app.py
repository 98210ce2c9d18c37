"""BatchWidgetApp: the server extension's configuration, wiring and lifecycle.

See docs/configuration.md.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import os
from collections.abc import Callable
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from jupyter_core.paths import jupyter_data_dir
from jupyter_server.extension.application import ExtensionApp
from tornado.ioloop import IOLoop, PeriodicCallback
from traitlets import (
    Bool,
    Enum,
    Float,
    Int,
    List,
    TraitError,
    TraitType,
    Type,
    Unicode,
    default,
    validate,
)

from batch_widget.engine import validation
from batch_widget.engine.lock import StoreLock
from batch_widget.engine.manager import JobManager
from batch_widget.engine.memory import fix_mmap_threshold
from batch_widget.engine.settings import DEFAULTS, EXECUTORS, Settings
from batch_widget.engine.store import Store, path_from_url
from batch_widget.protocol import InvalidRequest, StoreInUse, StoreUnavailable
from batch_widget.server.events import Broadcaster
from batch_widget.server.handlers import route_table
from batch_widget.server.service import BatchService

__all__ = ["BatchWidgetApp"]

#: How often a server that found the store owned by another one tries to take it over.
TAKEOVER_INTERVAL = 5.0
_MAX_MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc refuses more on 64-bit (HEAP_MAX_SIZE / 2)


def _setting(kind: type[TraitType[Any, Any]], name: str, help: str) -> Any:
    """A configurable trait whose default is the setting ``name`` of :data:`DEFAULTS`."""
    return kind(getattr(DEFAULTS, name), help=help).tag(config=True)


class BatchWidgetApp(ExtensionApp):
    """Run batch jobs inside the Jupyter server and stream their progress over SSE."""

    name = "batch_widget"
    load_other_extensions = True

    db_url = Unicode(
        help="The job store: an sqlite:/// URL with an absolute path. Two servers need "
        "two stores to run jobs at once.",
    ).tag(config=True)
    max_workers = _setting(
        Int, "max_workers", "Workers per job unless the job asks for another number (max_workers=)."
    )
    max_concurrent_jobs = _setting(
        Int, "max_concurrent_jobs", "Jobs processing at once; the rest wait, queued."
    )
    max_items = _setting(Int, "max_items", "The most items one job may have.")
    progress_interval = _setting(
        Float,
        "progress_interval",
        "Seconds between coalesced progress events (and batched store commits) per job.",
    )
    heartbeat_interval = _setting(Float, "heartbeat_interval", "Seconds between SSE heartbeats.")
    sse_timeout = _setting(
        Float,
        "sse_timeout",
        "Seconds a stalled SSE subscriber (one that takes no data) is kept before it is dropped.",
    )
    reconnect_delay = _setting(
        Int,
        "reconnect_delay",
        "Milliseconds a browser waits before reconnecting (sent as the SSE retry: field).",
    )
    completion_broadcast_retries = _setting(
        Int,
        "completion_broadcast_retries",
        "How many times a failed broadcast of a job's complete event is retried.",
    )
    broadcast_retry_delay = _setting(
        Float, "broadcast_retry_delay", "Seconds between retries of a failed complete broadcast."
    )
    resume_interrupted = _setting(
        Bool,
        "resume_interrupted",
        "Re-queue, at start, the jobs a previous server left interrupted.",
    )
    executor = Enum(
        list(EXECUTORS),
        default_value=DEFAULTS.executor,
        help="Default worker pool: thread; process for CPU-bound processors; dask to run "
        "items on a Dask cluster (see dask_address; needs batch_widget[dask]).",
    ).tag(config=True)
    allowed_processors = List(
        Unicode(),
        default_value=list(DEFAULTS.allowed_processors),
        help="Glob patterns over the import paths a job may name. A path is "
        "package.module:function with one public name after the colon; it runs only a "
        "function defined in that module, or a callable other than a class that the module "
        "lists in its __all__. Names the module merely imports (os, system), classes (in "
        "__all__ or not), functools.partial objects it does not export, dotted or dunder "
        "paths, and every module of batch_widget itself but batch_widget.processors "
        "(whatever the patterns say) are refused: at creation, when a stored job runs, and "
        "in each worker process.",
    ).tag(config=True)
    allow_callables = _setting(
        Bool, "allow_callables", "Accept notebook-defined functions (cloudpickled) as processors."
    )
    cancel_timeout = _setting(
        Float,
        "cancel_timeout",
        "Seconds running items get to finish after a cancel or at shutdown. Then a "
        "process job's workers are terminated and a thread job's threads abandoned (they "
        "cannot be stopped; their results are discarded), and those items count as cancelled.",
    )
    store_write_timeout = _setting(
        Float,
        "store_write_timeout",
        "Seconds a running job keeps its progress in memory and retries while the "
        "store cannot be written (disk full, file locked or read-only) before it fails.",
    )
    max_result_bytes = _setting(
        Int,
        "max_result_bytes",
        "The most bytes of JSON one item's result may take; a bigger result fails its "
        "item with an error that says to write big results to files and return their paths "
        'under "outputs". Results live in the job store and are read back whole.',
    )
    max_job_log_bytes = _setting(
        Int,
        "max_job_log_bytes",
        "The most bytes of item logs (what items print and log) the store keeps for one job, "
        "its retries included; once reached, later items' logs are dropped (each says so) and "
        "the job's snapshot has logs_cut: true. Each item's log keeps its first 64 KiB.",
    )
    retries = _setting(
        Int,
        "retries",
        "How many more times a failed item runs, unless the job asks for another number "
        "(retries=). An item waiting for its next attempt is pending; it is failed only once "
        "its attempts are used up, with its last error. Items run at least once and may run "
        "again: make side effects idempotent (docs/http-api.md, Retries).",
    )
    retry_delay = _setting(
        Float,
        "retry_delay",
        "Seconds before a failed item's first re-run (retry_delay=); the wait doubles with "
        "each attempt, at most 60 s, and is randomised by ±25 %.",
    )
    retry_on = List(
        Unicode(),
        default_value=None,
        allow_none=True,
        help="Exception class names whose failures are re-run, matched against the raised "
        "exception's class and its bases (e.g. ['ConnectionError', 'TimeoutError']); a "
        "worker process that died with the item counts as WorkerDied. None: any failure.",
    ).tag(config=True)
    process_idle_timeout = _setting(
        Float,
        "process_idle_timeout",
        'Seconds the worker processes of executor="process" jobs are kept after a job, '
        "so the next process job starts at once instead of paying for starting Python. "
        "0 ends them with each job.",
    )
    dask_address = _setting(
        Unicode,
        "dask_address",
        'The Dask scheduler executor="dask" jobs run on, e.g. tls://10.0.0.5:8786. Empty: '
        "the server starts a LocalCluster of worker processes on the first Dask job, on "
        "127.0.0.1 only, speaking TLS with credentials only the server holds, without a "
        "dashboard, and stops it when it stops. For a cluster of your own, use tls:// and "
        "give the server its TLS files in Dask's config: distributed.comm.tls.ca-file, "
        "distributed.comm.tls.client.cert and distributed.comm.tls.client.key (or their "
        "environment variables, e.g. DASK_DISTRIBUTED__COMM__TLS__CA_FILE). Name only a "
        "cluster you trust: whoever can reach its scheduler "
        "runs code as its workers' user, and the server unpickles what the workers send "
        "back. The workers need this server's batch_widget (and, for notebook-defined "
        "functions, its Python and cloudpickle versions).",
    )
    dask_connect_timeout = _setting(
        Float,
        "dask_connect_timeout",
        "Seconds a Dask job waits to reach the scheduler at dask_address before it fails "
        "with an error naming the address (retry it once the scheduler is up).",
    )
    malloc_mmap_threshold = _setting(
        Int,
        "malloc_mmap_threshold",
        "Bytes from which glibc's malloc gives each block its own mapping, unmapped "
        "when freed, so big transient buffers (pickled functions, pages of results) do not "
        "stay in the server's memory after use. 0 leaves the allocator alone; the "
        "MALLOC_MMAP_THRESHOLD_ environment variable, when set, wins. No effect off glibc.",
    )
    batch_server_idle_timeout = _setting(
        Float,
        "batch_server_idle_timeout",
        "Seconds the batch server (python -m batch_widget serve, which kernels start where "
        "no Jupyter server has the extension) stays up with no job queued or running, no "
        "event-stream subscriber and no request; then it exits. A Jupyter server running "
        "the extension ignores it.",
    )
    broadcaster_class = Type(
        default_value=Broadcaster,
        klass=Broadcaster,
        help="The broadcaster class; swap in a subclass (tests inject faults this way).",
    ).tag(config=True)
    manager_class = Type(
        default_value=JobManager,
        klass=JobManager,
        help="The job manager class; swap in a subclass (tests inject faults this way).",
    ).tag(config=True)

    store: Store | None = None
    broadcaster: Broadcaster | None = None
    manager: JobManager | None = None
    store_lock: StoreLock | None = None
    _started = False
    _takeover: PeriodicCallback | None = None

    @default("db_url")
    def _default_db_url(self) -> str:
        path = os.path.join(jupyter_data_dir(), "batch_widget", "jobs.sqlite")
        return f"sqlite:///{os.path.abspath(path)}"

    @validate(
        "max_workers",
        "max_concurrent_jobs",
        "max_items",
        "reconnect_delay",
        "max_result_bytes",
        "max_job_log_bytes",
    )
    def _validate_positive_int(self, proposal: dict[str, Any]) -> int:
        return int(_positive(proposal))

    @validate(
        "progress_interval",
        "heartbeat_interval",
        "sse_timeout",
        "broadcast_retry_delay",
        "cancel_timeout",
        "store_write_timeout",
        "dask_connect_timeout",
        "batch_server_idle_timeout",
    )
    def _validate_positive_float(self, proposal: dict[str, Any]) -> float:
        return float(_positive(proposal))

    @validate("completion_broadcast_retries")
    def _validate_retries(self, proposal: dict[str, Any]) -> int:
        value = int(proposal["value"])
        if value < 0:
            raise TraitError(f"completion_broadcast_retries must be >= 0, not {value}")
        return value

    @validate("retries")
    def _validate_job_retries(self, proposal: dict[str, Any]) -> int:
        value = proposal["value"]
        _as_trait_error(validation.check_retries, value)
        return int(value)

    @validate("retry_delay")
    def _validate_retry_delay(self, proposal: dict[str, Any]) -> float:
        value = proposal["value"]
        _as_trait_error(validation.check_retry_delay, value)
        return float(value)

    @validate("retry_on")
    def _validate_retry_on(self, proposal: dict[str, Any]) -> list[str] | None:
        value = proposal["value"]
        _as_trait_error(validation.check_retry_on, value)
        return None if value is None else list(value)

    @validate("process_idle_timeout")
    def _validate_idle_timeout(self, proposal: dict[str, Any]) -> float:
        value = float(proposal["value"])
        if not value >= 0:  # also refuses NaN
            raise TraitError(f"process_idle_timeout must be >= 0 seconds, not {value}")
        return value

    @validate("malloc_mmap_threshold")
    def _validate_mmap_threshold(self, proposal: dict[str, Any]) -> int:
        value = int(proposal["value"])
        if not 0 <= value <= _MAX_MMAP_THRESHOLD:
            raise TraitError(
                f"malloc_mmap_threshold must be from 0 to {_MAX_MMAP_THRESHOLD} "
                f"(glibc's limit), not {value}"
            )
        return value

    @validate("db_url")
    def _validate_db_url(self, proposal: dict[str, Any]) -> str:
        value = str(proposal["value"])
        try:
            path_from_url(value)
        except ValueError as exc:
            raise TraitError(str(exc)) from None
        return value

    # -- wiring --------------------------------------------------------------

    @functools.cached_property
    def batch_settings(self) -> Settings:
        """The one settings object the engine and the event stream read, built from the
        traits on first use (configuration is read once, at start)."""
        values = {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(Settings)
            if self.has_trait(f.name)
        }
        values["allowed_processors"] = tuple(values["allowed_processors"])
        retry_on = values["retry_on"]
        values["retry_on"] = None if retry_on is None else tuple(retry_on)
        return Settings(**values)

    def config_summary(self) -> dict[str, Any]:
        """Return the effective configuration: every configurable trait (docs/configuration.md)."""
        summary: dict[str, Any] = {}
        for name, trait in sorted(self.class_own_traits(config=True).items()):
            value = getattr(self, name)
            summary[name] = _class_path(value) if isinstance(trait, Type) else value
        return summary

    @property
    def server_log(self) -> logging.Logger:
        """A child of the Jupyter server's logger (docs/troubleshooting.md).

        ``--debug`` shows our DEBUG lines, and Jupyter's formatter names it
        (``[I ... ServerApp.batch_widget] ...``), so no message carries a hand-written
        prefix. Its records propagate to the server's logger.
        """
        log = self.serverapp.log if self.serverapp is not None else self.log
        if not isinstance(log, logging.Logger):
            return logging.getLogger("batch_widget")
        return log.getChild("batch_widget")

    def initialize_settings(self) -> None:
        """Build the broadcaster, and the store and manager if this server owns the store."""
        settings = self.batch_settings
        self.server_log.debug(
            "malloc mmap threshold %s", fix_mmap_threshold(settings.malloc_mmap_threshold)
        )
        self.broadcaster = self.broadcaster_class(
            heartbeat_interval=settings.heartbeat_interval,
            sse_timeout=settings.sse_timeout,
            log=self.server_log,
        )
        self.store_lock = StoreLock(path_from_url(self.db_url), log=self.server_log)
        try:
            taken = self._take_store()
        except StoreUnavailable:  # a store refused (a symbolic link): the extension fails
            self.broadcaster = None  # to load, and nothing starts or retries it every 5 s
            raise
        if not taken:
            self.server_log.warning("%s", self._in_use_message())

    def _take_store(self) -> bool:
        """Own the store if no other server does, then build the store and the manager."""
        if self.manager is not None:
            return True
        if self.store_lock is None or not self.store_lock.acquire(self._owner_record()):
            return False
        self.store = Store.from_url(
            self.db_url,
            log=self.server_log,
            max_job_log_bytes=self.batch_settings.max_job_log_bytes,
        )
        self.manager = self.manager_class(
            self.store, self.broadcaster, self.batch_settings, log=self.server_log
        )
        return True

    def _owner_record(self) -> dict[str, Any]:
        url = ""
        if self.serverapp is not None:
            try:
                url = str(self.serverapp.connection_url)
            except Exception:  # only a label for another server's message
                url = ""
        return {
            "pid": os.getpid(),
            "url": url,
            "since": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }

    def _in_use_message(self) -> str:
        owner = self.store_lock.owner() if self.store_lock is not None else {}
        who = ", ".join(f"{k} {owner[k]}" for k in ("pid", "url", "since") if owner.get(k))
        return (
            f"the job store {path_from_url(self.db_url)} is in use by another Jupyter server"
            f"{f' ({who})' if who else ''}. This server does not run or change its jobs: "
            "its batch API answers 503 until that server stops, and then takes the store "
            "over. To run jobs from both at once, give this server a store of its own "
            "(--BatchWidgetApp.db_url=sqlite:////path/to/other.sqlite)."
        )

    def require_manager(self) -> JobManager:
        """The manager a request uses, taking the store over if its owner has gone.

        Raises ``StoreInUse`` (503) while another server owns the store. Call on the
        IOLoop thread: it starts the background work on first use (see
        :meth:`ensure_started`).
        """
        self.ensure_started()
        self._try_takeover()
        if self.manager is None:
            raise StoreInUse(self._in_use_message())
        return self.manager

    def require_broadcaster(self) -> Broadcaster:
        """The broadcaster a request streams from, started on first use (IOLoop thread)."""
        self.ensure_started()
        if self.broadcaster is None:
            raise StoreUnavailable("the server is shutting down; try again once it restarted")
        return self.broadcaster

    def current_activity(self) -> list[str]:
        """What keeps the server busy: jobs queued or processing, event-stream subscribers.

        jupyter_server's idle shutdown (``ServerApp.shutdown_no_activity_timeout``)
        and the batch server's asks every extension this. Once idle, both count from
        ``web_app.last_activity()``, the last request: so the moment last seen busy is
        recorded there too (a ``*_last_activity`` setting, jupyter_server's hook),
        and a long job with no request ends with the full timeout still to run.
        """
        jobs = len(self.manager.active_snapshots()) if self.manager is not None else 0
        streams = self.broadcaster.subscriber_count if self.broadcaster is not None else 0
        activity = [
            f"{count} {what}"
            for count, what in (
                (jobs, "job(s) queued or processing"),
                (streams, "event-stream subscriber(s)"),
            )
            if count
        ]
        if activity and self.serverapp is not None:
            self.serverapp.web_app.settings["batch_widget_last_activity"] = datetime.now(
                timezone.utc
            )
        return activity

    def _on_takeover(self) -> None:
        self.server_log.warning(
            "took over the job store %s: the server that owned it has stopped",
            path_from_url(self.db_url),
        )
        if self._started and self.manager is not None:
            self.manager.start(IOLoop.current())
        if self._takeover is not None:
            self._takeover.stop()
            self._takeover = None

    def _try_takeover(self) -> None:
        if self.manager is None and self._take_store():
            self._on_takeover()

    def initialize_handlers(self) -> None:
        """Register the routes; ExtensionApp prefixes each with the server's base_url."""
        self.handlers.extend(route_table())

    # -- lifecycle -----------------------------------------------------------

    async def _start_jupyter_server_extension(self, serverapp: Any) -> None:
        """Start the background work once the server's IOLoop runs."""
        self.ensure_started()

    def ensure_started(self) -> None:
        """Start the broadcaster and the manager once (call on the IOLoop thread).

        The server starts them through ``_start_jupyter_server_extension``. An
        embedding that never calls that hook (e.g. pytest-jupyter) gets them
        started by the first request that asks for them (:meth:`require_manager`,
        :meth:`require_broadcaster`).
        """
        if self._started or self.broadcaster is None:
            return
        self._started = True
        self.server_log.info("starting with %s", self.config_summary())
        self.broadcaster.start()
        if self.manager is not None:
            self.manager.start(IOLoop.current())
        else:
            self._takeover = PeriodicCallback(self._try_takeover, TAKEOVER_INTERVAL * 1000)
            self._takeover.start()

    async def stop_extension(self) -> None:
        """Stop the manager (joining its threads), the broadcaster, and close the store."""
        manager, broadcaster, store = self.manager, self.broadcaster, self.store
        self.manager = self.broadcaster = self.store = None
        if self._takeover is not None:
            self._takeover.stop()
            self._takeover = None
        if manager is not None and self._started:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, manager.stop)
        if broadcaster is not None:
            broadcaster.stop()
        if store is not None:
            store.close()
        if self.store_lock is not None:
            self.store_lock.release()
        self._started = False
        self.server_log.info("stopped")


def _positive(proposal: dict[str, Any]) -> Any:
    value = proposal["value"]
    if value <= 0:
        raise TraitError(f"{proposal['trait'].name} must be positive, not {value!r}")
    return value


def _as_trait_error(check: Callable[[Any], None], value: Any) -> None:
    """Run a job field's check on a server-wide default, its refusal as a ``TraitError``."""
    try:
        check(value)
    except InvalidRequest as exc:
        raise TraitError(f"BatchWidgetApp.{exc}") from None


def _class_path(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


if TYPE_CHECKING:
    # The handlers use the app through BatchService: mypy checks here that it is one.
    _SERVES_THE_HANDLERS: type[BatchService] = BatchWidgetApp
