"""Every setting of batch_widget and its default, declared once.

``BatchWidgetApp``'s traits take their defaults from :data:`DEFAULTS`, and the
app builds one :class:`Settings` from its traits for the engine and the event
stream. Nothing else declares a default of its own.
"""

from __future__ import annotations

import dataclasses

#: The executors a job may run on.
EXECUTORS = ("thread", "process", "dask")


@dataclasses.dataclass(frozen=True)
class Settings:
    """The effective configuration (docs/configuration.md).

    See ``BatchWidgetApp`` for each one's help.
    """

    # -- jobs: the engine ----------------------------------------------------
    max_workers: int = 4
    max_concurrent_jobs: int = 2
    max_items: int = 1_000_000
    progress_interval: float = 0.1
    executor: str = "thread"
    allowed_processors: tuple[str, ...] = ("*",)
    allow_callables: bool = True
    resume_interrupted: bool = False
    cancel_timeout: float = 10.0
    store_write_timeout: float = 60.0
    max_result_bytes: int = 16 * 1024 * 1024
    process_idle_timeout: float = 60.0
    dask_address: str = ""
    dask_connect_timeout: float = 10.0
    #: Seconds without a finished chunk before a WARNING names the running items.
    stall_warning_after: float = 60.0
    #: Bytes of item logs the store keeps per job (64 MiB: a thousand items at the
    #: per-item 64 KiB cap, or a million items of 64 bytes); later items' logs are dropped.
    max_job_log_bytes: int = 64 * 1024 * 1024
    #: A job's item policy unless it asks for another (docs/configuration.md).
    retries: int = 0
    retry_delay: float = 1.0
    retry_on: tuple[str, ...] | None = None

    # -- publishing: from the engine to the event stream ---------------------
    completion_broadcast_retries: int = 3
    broadcast_retry_delay: float = 0.5

    # -- the event stream: the server ----------------------------------------
    heartbeat_interval: float = 15.0
    sse_timeout: float = 30.0
    reconnect_delay: int = 5000

    # -- the server process ----------------------------------------------------
    malloc_mmap_threshold: int = 1024 * 1024
    batch_server_idle_timeout: float = 3600.0

    def replace(self, **changes: object) -> Settings:
        """A copy with ``changes`` applied."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


#: The defaults, for trait declarations and for engines built without a server.
DEFAULTS = Settings()
