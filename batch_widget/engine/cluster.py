"""Run chunks of items on a Dask cluster (``executor="dask"``).

The server keeps one :class:`DaskCluster`: one ``distributed.Client``, made on
the first Dask job and closed when the server stops. An empty ``dask_address``
starts a ``LocalCluster`` of worker processes that the server owns and stops.
A job run gets a :class:`DaskPool`, a ``concurrent.futures.Executor`` over that
client, so chunks go out and outcomes come back exactly as with the other
pools, through the run's batched commits: the SQLite ledger stays the one
source of truth, and the cluster holds nothing that must survive.

What a Dask fault means to a run:

- a worker lost mid-chunk: the scheduler runs the chunk again elsewhere
  (at-least-once, docs/internals.md); a chunk that keeps killing workers comes back as
  :class:`WorkerLost` and its items are isolated, as for a dead process worker;
- the scheduler unreachable or lost: :class:`ClusterError` naming the address;
  the job fails, its unfinished items stay pending, and ``retry`` reconnects.

Cancel is cooperative: ``Client.run`` puts the run's token in a set in every
worker process (:func:`batch_widget.engine.worker.cancel_remote`), which each
chunk checks before each item (:class:`~batch_widget.engine.worker.RemoteStop`).

Who may use the cluster (docs/security.md): the ``LocalCluster`` the server starts binds
every socket (scheduler, nannies, workers, their HTTP servers) to 127.0.0.1, and
speaks only mutual TLS with credentials made for it in memory
(``Security.temporary()``), which only the server's own client holds: a Dask
scheduler runs whatever code its clients send, and another local user must not
be one of them. It serves no dashboard and no HTTP routes (Dask's HTTP servers
answer anyone who reaches the port). A cluster named by ``dask_address`` is the
user's own: the client takes its TLS settings from Dask's configuration, and the
server unpickles what those workers send back, so only a trusted cluster may be
named (docs/dask.md).

``distributed`` is imported only here, and only when a Dask job runs.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import logging
import platform
import secrets
import threading
from collections.abc import Callable
from concurrent.futures import BrokenExecutor, Executor, Future
from typing import Any

from batch_widget.engine import worker as _worker
from batch_widget.engine.errors import ClusterError

#: What to install when ``distributed`` is missing.
INSTALL_HINT = "pip install 'batch_widget[dask]'"
_MISSING = (
    f"executor 'dask' needs Dask's distributed scheduler, which is not installed in "
    f"the server's environment: {INSTALL_HINT}"
)
#: Where every socket of the server's own cluster listens, and nowhere else.
LOOPBACK = "127.0.0.1"
#: Dask's HTTP routes (health, Prometheus metrics, the cluster's state as JSON and
#: HTML, a proxy to other ports) answer anyone who reaches the port, without
#: authentication, and the HTTP servers cannot be turned off: they serve nothing.
_NO_HTTP_ROUTES: dict[str, list[str]] = {
    "distributed.scheduler.http.routes": [],
    "distributed.worker.http.routes": [],
}


class WorkerLost(BrokenExecutor):
    """The Dask workers running a chunk died again and again (Dask's ``KilledWorker``)."""


def dask_installed() -> bool:
    """True if ``distributed`` can be imported (the ``batch_widget[dask]`` extra)."""
    try:
        return importlib.util.find_spec("distributed") is not None
    except (ImportError, ValueError):  # a broken or None entry in sys.modules
        return False


def missing_message() -> str:
    """The error a Dask job gets where ``distributed`` is not installed."""
    return _MISSING


class DaskCluster:
    """The server's one Dask client, and the ``LocalCluster`` it owns when it has one.

    Thread-safe: job threads call :meth:`pool` concurrently; the first call connects
    (or starts the local cluster), later calls reuse the client while it is
    connected and make a new one after the scheduler was lost.
    """

    def __init__(self, address: str, connect_timeout: float, log: logging.Logger) -> None:
        self.address = address
        self.connect_timeout = connect_timeout
        self.log = log
        self._lock = threading.Lock()
        self._client: Any = None
        self._cluster: Any = None
        self._closed = False

    @property
    def where(self) -> str:
        """The cluster as error messages name it."""
        if self.address:
            return f"the Dask scheduler at {self.address}"
        return "the server's Dask LocalCluster"

    def pool(self, pickled: bool, log_job: str) -> DaskPool:
        """A pool for one run; raise ``ClusterError`` if the cluster cannot run it.

        ``pickled`` says whether the job's function travels cloudpickled, which
        needs the workers to run the server's Python and cloudpickle versions.
        """
        client = self._connected()
        check_versions(client, pickled, self.where)
        pool = DaskPool(client, self.where)
        self.log.info(
            "job %s runs on %s (%s) with %d worker(s), %d thread(s)",
            log_job,
            self.where,
            client.scheduler.address,
            pool.workers(),
            pool.threads(),
        )
        return pool

    def close(self) -> None:
        """Close the client and stop the cluster the server started; later pools are refused."""
        with self._lock:
            self._closed = True
            self._drop()

    def _connected(self) -> Any:
        with self._lock:
            if self._closed:
                raise ClusterError("the server is shutting down; retry the job once it restarted")
            client = self._client
            if client is not None and client.status == "running":
                return client
            if client is not None:
                self.log.warning(
                    "the Dask client lost %s (status %s); connecting again",
                    self.where,
                    client.status,
                )
                self._drop()
            self._client = self._connect()
            return self._client

    def _connect(self) -> Any:
        if not dask_installed():
            raise ClusterError(_MISSING)
        if not self.address:
            return self._start_local()
        from distributed import Client  # optional extra

        if not self.address.startswith("tls://"):
            self.log.warning(
                "dask_address %s is not a tls:// address: whoever can reach "
                "that scheduler runs code as its workers' user, and this server unpickles "
                "what the workers send back. Name only a cluster you trust",
                self.address,
            )
        try:  # the Security comes from Dask's config (distributed.comm.tls.*)
            client = Client(  # type: ignore[no-untyped-call]
                self.address, timeout=self.connect_timeout, set_as_default=False
            )
        except Exception as exc:  # OSError and TimeoutError mostly; a bad address ValueError
            raise ClusterError(
                f"cannot reach the Dask scheduler at {self.address} within "
                f"{self.connect_timeout:g} s ({_worker.describe(exc)}). Start it (or correct "
                f"BatchWidgetApp.dask_address{self._tls_hint()}), then retry the job"
            ) from exc
        self.log.info("connected to the Dask scheduler at %s", self.address)
        return client

    def _tls_hint(self) -> str:
        if not self.address.startswith("tls://"):
            return ""
        return (
            ", and give the server the cluster's TLS files in Dask's config: "
            "distributed.comm.tls.ca-file, distributed.comm.tls.client.cert and "
            "distributed.comm.tls.client.key"
        )

    def _start_local(self) -> Any:
        """Start the server's own cluster, on loopback and mutual TLS, and a client of it."""
        from distributed import Client  # optional extra

        self.log.info(
            "starting a Dask LocalCluster on %s, TLS only, for "
            "executor='dask' jobs (set BatchWidgetApp.dask_address to use a "
            "cluster of your own)",
            LOOPBACK,
        )
        security = _temporary_security()
        try:
            self._cluster = _local_cluster(security)
            return Client(  # type: ignore[no-untyped-call]
                self._cluster, security=security, set_as_default=False
            )
        except Exception as exc:
            self._drop()
            raise ClusterError(
                f"the server could not start a Dask LocalCluster: {_worker.describe(exc)}"
            ) from exc

    def _drop(self) -> None:
        client, self._client = self._client, None
        cluster, self._cluster = self._cluster, None
        for closing in (client, cluster):
            if closing is None:
                continue
            try:
                closing.close()
            except Exception as exc:  # closing after a lost scheduler may complain
                self.log.debug("closing %r: %s", closing, exc)


def _temporary_security() -> Any:
    """Credentials for the server's own cluster: a key and a self-signed certificate made
    in memory, which every connection must present (Dask's TLS is mutual)."""
    from distributed.security import Security  # optional extra

    try:
        return Security.temporary()  # type: ignore[no-untyped-call]
    except ImportError as exc:  # cryptography makes the certificate
        raise ClusterError(
            f"the server's Dask LocalCluster runs on TLS, which needs the 'cryptography' "
            f"package in the server's environment: {INSTALL_HINT}"
        ) from exc


def _local_cluster(security: Any) -> Any:
    """Worker processes, their nannies and a scheduler, on loopback and TLS only.

    No dashboard (it has no authentication; a cluster of your own can have one), and
    the HTTP servers Dask always starts get no routes. The nannies copy the config
    they are made with, so a worker they start again serves no routes either.
    """
    import dask  # optional extra
    from distributed import LocalCluster

    with dask.config.set(_NO_HTTP_ROUTES):
        return LocalCluster(  # type: ignore[no-untyped-call]
            processes=True,
            host=LOOPBACK,
            protocol="tls://",
            security=security,
            dashboard_address=None,
            worker_dashboard_address=None,
            scheduler_kwargs={"dashboard": False, "dashboard_address": f"{LOOPBACK}:0"},
        )


def check_versions(client: Any, pickled: bool, where: str) -> None:
    """Raise ``ClusterError`` if a worker cannot run what this server sends it.

    Every worker needs this server's batch_widget (chunks run its code); a
    cloudpickled function also needs the same Python (major.minor) and
    cloudpickle. Asked of the workers with standard-library functions, so a
    worker without batch_widget answers too.

    Why not Dask's own ``Client.get_versions(check=True)``: it answers a different
    question. It only warns (``warnings.warn``; its error is never set), so a
    worker with another batch_widget would still get the job; it compares the whole
    Dask stack (dask, distributed, tornado, msgpack, toolz...) and Python to the
    patch release, which an import-path job does not need to match; and its
    broadcast ignores a worker that fails to answer, where this check names it.
    The rule here is what a chunk needs, and nothing more.
    """
    wanted: list[tuple[str, Callable[..., Any], tuple[Any, ...], str]] = [
        ("batch_widget", importlib.metadata.version, ("batch_widget",), _own("batch_widget"))
    ]
    if pickled:
        wanted += [
            ("Python", platform.python_version, (), platform.python_version()),
            ("cloudpickle", importlib.metadata.version, ("cloudpickle",), _own("cloudpickle")),
        ]
    problems = []
    for what, probe, args, ours in wanted:
        try:
            answers = client.run(probe, *args, on_error="return")
        except Exception as exc:
            raise ClusterError(
                f"{where} did not answer ({_worker.describe(exc)}); retry the job once it is back"
            ) from exc
        for address, theirs in sorted(answers.items()):
            if isinstance(theirs, BaseException):
                problems.append(f"worker {address} has no {what} ({_worker.describe(theirs)})")
            elif _comparable(what, theirs) != _comparable(what, ours):
                problems.append(f"worker {address} has {what} {theirs}, this server {ours}")
    if problems:
        shown = "; ".join(problems[:3]) + ("; ..." if len(problems) > 3 else "")
        raise ClusterError(
            f"the workers of {where} cannot run this job: {shown}. Install the server's "
            "versions in the workers' environment (pip install 'batch_widget[dask]' there), "
            "then retry the job"
        )


def _own(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "(not installed)"


def _comparable(what: str, version: str) -> str:
    """Python matters to pickles by major.minor; the packages by their exact version."""
    return ".".join(version.split(".")[:2]) if what == "Python" else version


#: A Dask future's states that are not an outcome: Dask runs the task (again).
_RUNS_AGAIN = frozenset({"lost", "pending"})


class DaskPool(Executor):
    """A ``concurrent.futures`` executor over the server's Dask client, for one run.

    Each chunk is a Dask task. Its future settles the ``concurrent.futures.Future``
    the run waits on: with the outcomes; with :class:`WorkerLost` when Dask gave up
    on it after it killed workers; with :class:`ClusterError` when the client lost
    the scheduler (Dask then cancels every future it holds).
    """

    def __init__(self, client: Any, where: str) -> None:
        self.client = client
        self.where = where
        self.token = secrets.token_hex(8)

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        """Run ``fn(*args, **kwargs)`` as one Dask task (never cached: ``pure=False``)."""
        settled: Future[Any] = Future()
        try:
            task = self.client.submit(fn, *args, pure=False, **kwargs)
        except Exception as exc:  # the client closed between two chunks
            settled.set_exception(ClusterError(f"lost {self.where}: {_worker.describe(exc)}"))
            return settled
        settled.add_done_callback(lambda f: task.cancel() if f.cancelled() else None)
        task.add_done_callback(lambda t: self._settle(t, settled))
        return settled

    def _settle(self, task: Any, settled: Future[Any]) -> None:
        """Pass a finished task's outcome on (on one of the client's callback threads).

        A task can be done no more by the time this runs: its result lived only on a
        worker that died since ("lost"), and Dask runs it again. Its next end settles it.
        """
        if settled.done():  # cancelled by the run
            return
        if task.status in _RUNS_AGAIN:
            task.add_done_callback(lambda t: self._settle(t, settled))
            return
        try:
            if task.status == "finished":
                settled.set_result(task.result())
            elif task.status == "cancelled":
                settled.set_exception(
                    ClusterError(
                        f"lost {self.where} while the job ran: the Dask client's connection to "
                        "the scheduler broke. Retry the job once the scheduler is back"
                    )
                )
            else:
                settled.set_exception(_translated(task.exception(), self.where))
        except BaseException as exc:  # fetching the result itself failed
            if not settled.done():
                settled.set_exception(_translated(exc, self.where))

    def cancel_remote(self) -> Any:
        """What the run's cancel flag sets: tells every worker to start no more of its items."""
        return _RemoteCancel(self.client, self.token)

    def stop_flag(self) -> _worker.RemoteStop:
        """What each chunk checks before each item."""
        return _worker.RemoteStop(self.token)

    def workers(self) -> int:
        """How many workers the cluster has (the client's copy, refreshed every 2 s)."""
        return int(_identity(self.client).get("n_workers", 0))

    def threads(self) -> int:
        """How many threads the cluster's workers have in all: the chunks run at once."""
        return int(_identity(self.client).get("total_threads", 0))

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Nothing to shut down: the client and the cluster outlive the run."""


def _identity(client: Any) -> dict[str, Any]:
    identity = getattr(client, "_scheduler_identity", None)  # cached; scheduler_info() asks
    return identity if isinstance(identity, dict) else {}


def _translated(exc: BaseException | None, where: str) -> BaseException:
    if exc is None:
        return ClusterError(f"{where} reported a chunk as failed without an error")
    from distributed.scheduler import KilledWorker  # the task came from Dask

    if isinstance(exc, KilledWorker):
        return WorkerLost(f"the chunk killed its Dask workers again and again: {exc}")
    return exc


class _RemoteCancel:
    """An event whose ``set()`` tells every Dask worker that a run is cancelled."""

    def __init__(self, client: Any, token: str) -> None:
        self.client = client
        self.token = token

    def set(self) -> None:
        """Broadcast in the background: the caller (an HTTP handler's thread) must not wait."""
        threading.Thread(
            target=self._broadcast, daemon=True, name=f"batch-dask-cancel-{self.token}"
        ).start()

    def _broadcast(self) -> None:
        try:
            self.client.run(_worker.cancel_remote, self.token, on_error="ignore")
        except Exception as exc:  # the scheduler is gone: nothing runs there any more anyway
            logging.getLogger("batch_widget").warning(
                "could not tell the Dask workers to cancel run %s: %s", self.token, exc
            )
