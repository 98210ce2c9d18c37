"""Kernel side, API: submit jobs, follow them, read their results (``bw.submit``, ``bw.map``, ...).

Nothing here imports the server side. The widgets are imported lazily, only when a job
is displayed or the jobs view asked for: they sit above this module (the view lists
jobs, the progress widget's feed follows one through :mod:`~batch_widget.kernel.follow`,
as :meth:`Job.wait` does) and never import it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Generator, Iterable, Iterator
from typing import TYPE_CHECKING, Any, cast

from batch_widget.kernel.client import Client, ServerUnreachable, connect, default_client
from batch_widget.kernel.encoding import json_items, json_params
from batch_widget.kernel.errors import BatchFailed, ResultsIncomplete, results_incomplete
from batch_widget.kernel.follow import POLL_INTERVAL, JobFollower, deadline_after
from batch_widget.kernel.functions import Processor, pickled, processor_fields
from batch_widget.kernel.listing import JobList, snapshot_html
from batch_widget.protocol import (
    BatchError,
    InvalidRequest,
    ItemError,
    ItemStatus,
    JobNotFound,
    JobStatus,
    Snapshot,
)

if TYPE_CHECKING:
    from batch_widget.kernel.jobsview import JobsView
    from batch_widget.kernel.widget import BatchProgress

__all__ = [
    "BatchFailed",
    "Job",
    "JobList",
    "Processor",
    "attach",
    "connect",
    "jobs",
    "map",
    "processor_fields",
    "submit",
]

#: Item states that will not change until a retry.
_ENDED = frozenset(s.value for s in (ItemStatus.DONE, ItemStatus.FAILED, ItemStatus.CANCELLED))


def _create(client: Client, processor: Processor, body: dict[str, Any]) -> Snapshot:
    """Create the job; a function the server cannot import by name is sent pickled instead."""
    fields = processor_fields(processor, body.get("params"))  # checks f(item, **params) too
    try:
        return client.create({**fields, **body})
    except InvalidRequest as refused:
        if isinstance(processor, str) or "processor" not in fields:
            raise
        by_value = {"callable": pickled(processor, by_value=True)}
        try:
            return client.create({**by_value, **body})
        except BatchError:
            raise refused from None


# --------------------------------------------------------------------------- Job


class Job:
    """A handle on one server-side job. Displaying it shows the live progress widget.

    Parameters
    ----------
    job_id : str
        The job's id.
    client : Client, optional
        The server it lives on; the default client when omitted.
    snapshot : Snapshot, optional
        A snapshot already in hand, used by ``repr`` until the next refresh.
    """

    def __init__(
        self, job_id: str, client: Client | None = None, snapshot: Snapshot | None = None
    ) -> None:
        self.id = job_id
        self.client = client if client is not None else default_client()
        self._snapshot = snapshot

    # -- state

    @property
    def last_snapshot(self) -> Snapshot | None:
        """The newest snapshot this handle has seen, without asking the server."""
        return self._snapshot

    def _keep(self, snapshot: Snapshot) -> None:
        self._snapshot = snapshot

    def snapshot(self) -> Snapshot:
        """Fetch and return the job's current snapshot."""
        self._snapshot = self.client.get(self.id)
        return self._snapshot

    @property
    def status(self) -> JobStatus:
        """The job's current state, fetched now."""
        return JobStatus(self.snapshot()["status"])

    def wait(self, timeout: float | None = None) -> Snapshot:
        """Block until the job reaches a terminal state and return that snapshot.

        Follows the job's SSE stream, reconnecting with the last event id when
        it drops; after repeated stream failures it polls the job every second.
        It never depends on a widget.

        Parameters
        ----------
        timeout : float, optional
            Seconds to wait at most; None waits for ever.

        Raises
        ------
        TimeoutError
            If the job is still active after ``timeout`` seconds (``.job`` is set).
        JobNotFound
            If the job is deleted (or was never on this server).
        """
        follower = JobFollower(self.client, self.id, self._keep)
        snap = follower.until_end(deadline_after(timeout))
        return snap if snap is not None else self._timed_out(timeout)

    def _timed_out(self, timeout: float | None) -> Snapshot:
        error = TimeoutError(f"job {self.id} is still {self._last_status()} after {timeout} s")
        error.job = self  # type: ignore[attr-defined]  # documented: exceptions carry .job
        raise error

    def _last_status(self) -> str:
        return self._snapshot["status"] if self._snapshot else "unknown"

    # -- items

    def results(self) -> list[Any]:
        """Return every item's result in item order, None where the item is not done.

        The results come as one stream from the server (``GET .../results``), a
        line for every item whatever its state, so a stream that stops early is
        seen.

        Raises
        ------
        ResultsIncomplete
            If the stream ends (or breaks off) before the last item's line, e.g.
            the job was deleted meanwhile: never a short or None-filled list.
        """
        total = self.snapshot()["total"]
        results: list[Any] = [None] * total
        with contextlib.closing(self._result_lines(0, total)) as lines:
            for line in lines:
                if line["status"] == ItemStatus.DONE:
                    results[line["index"]] = line["result"]
        return results

    def iter_results(self, poll_interval: float = POLL_INTERVAL) -> Iterator[Any]:
        """Yield each item's result in item order, as soon as it and every item before it ended.

        Like ``Executor.map``: the first result comes while the job still runs. A
        failed item yields None, as in :meth:`results`; so does every item a
        finished job did not run (cancelled or interrupted). Waits between reads
        grow up to ``poll_interval`` seconds while nothing new has ended.

        Raises
        ------
        ResultsIncomplete
            If a read of the results ends before the line of an item it needs
            (the job deleted meanwhile, the connection cut), as :meth:`results`.
        """
        snap = self.snapshot()
        total = snap["total"]
        position = 0
        pause = min(0.05, poll_interval)
        while position < total:
            terminal = JobStatus(snap["status"]).terminal  # read before the results
            before = position
            for result in self._ended_results(position, total):
                yield result
                position += 1
            if position >= total:
                return
            if terminal:  # nothing more will end: the rest did not run
                for _ in range(position, total):
                    yield None
                return
            if position == before:
                time.sleep(pause)
                pause = min(pause * 2, poll_interval)
            else:
                pause = min(0.05, poll_interval)
            snap = self.snapshot()

    def _ended_results(self, position: int, total: int) -> Iterator[Any]:
        """Results from item ``position`` on, in order, up to the first item still to end."""
        with contextlib.closing(self._result_lines(position, total)) as lines:
            for line in lines:
                if line["status"] not in _ENDED:
                    return
                yield line["result"] if line["status"] == ItemStatus.DONE else None

    def _result_lines(self, position: int, total: int) -> Generator[dict[str, Any], None, None]:
        """The results stream's line of every item from ``position`` to ``total``, in order.

        The ledger has a line for every item of a job from its creation on, so a
        stream that breaks off, skips an index or ends before ``total`` lies
        about the job (docs/security.md).

        Raises
        ------
        ResultsIncomplete
            Then, saying why (the job deleted meanwhile, the connection cut).
        """
        try:
            with contextlib.closing(self.client.results(self.id, after=position - 1)) as lines:
                for line in lines:
                    if position >= total:
                        return
                    if line["index"] != position:
                        raise self._incomplete(
                            position,
                            total,
                            f"the stream skipped item "
                            f"{position} (its next line was {line['index']})",
                        )
                    yield line
                    position += 1
        except ServerUnreachable as cut:
            words = cut.__cause__ or cut  # the socket's own words where there are some
            raise self._incomplete(
                position, total, f"the connection broke off ({words!r})"
            ) from cut
        if position < total:
            raise self._incomplete(position, total, "the stream ended")

    def _incomplete(self, received: int, total: int, how: str) -> ResultsIncomplete:
        """The error for results that stopped at item ``received`` (``how``): asks the
        server whether the job is still there, which says why."""
        try:
            self.client.get(self.id)
        except JobNotFound:
            return results_incomplete(
                self.id,
                received,
                total,
                f"the job was deleted on the server while they were read ({how})",
                "its results are gone with it",
            )
        except BatchError as exc:
            return results_incomplete(
                self.id,
                received,
                total,
                f"{how}, and the server does not answer now ({exc})",
                "call job.results() again once the server is back",
            )
        return results_incomplete(
            self.id, received, total, f"{how} before the last item", "call job.results() again"
        )

    def errors(self) -> list[ItemError]:
        """Return the failed items: ``[{"index", "input", "error", "traceback", "log",
        "attempts"}]``, in order; ``log`` is what the item printed and logged (None if
        nothing), ``attempts`` how many times it ran (more than 1 with ``retries``)."""
        failed = [
            ItemError(
                index=record["index"],
                input=record["input"],
                error=record["error"],
                traceback=record["traceback"],
                log=record.get("log"),
                attempts=int(record.get("attempts", 1)),
            )
            for record in self.client.all_items(self.id, status=ItemStatus.FAILED.value)
        ]
        return sorted(failed, key=lambda error: error["index"])

    def outputs(self) -> list[str]:
        """Return the files the job's results name under ``"outputs"``.

        Paths are relative to the server's root dir when inside it, absolute otherwise.
        The server answers a page at a time (it never builds one answer of every
        output); this reads every page, each after the last one's ``next_after``.
        """
        paths: list[str] = []
        after: int | None = None
        while True:
            page = self.client.outputs(self.id, after=after, limit=10_000)  # the server's most
            paths.extend(str(path) for path in page.get("outputs", []))
            following = page.get("next_after")
            if not isinstance(following, int) or (after is not None and following <= after):
                return paths  # the last page (or a server that does not page)
            after = following

    # -- actions

    def cancel(self) -> Snapshot:
        """Stop starting items; the items running now finish first.

        Returns
        -------
        Snapshot
            The job right after the request: usually still ``processing``, since
            running items finish first (a thread job's after at most the server's
            ``cancel_timeout``). ``job.wait()`` returns the ``cancelled`` snapshot.
        """
        self._snapshot = self.client.cancel(self.id)
        return self._snapshot

    def retry(self) -> Snapshot:
        """Re-run every item that is not done; return the new snapshot."""
        self._snapshot = self.client.retry(self.id)
        return self._snapshot

    def delete(self) -> None:
        """Forget this terminal job and its items on the server."""
        self.client.delete(self.id)

    # -- display

    def __repr__(self) -> str:
        snap = self._snapshot
        if snap is None:
            return f"Job(id={self.id!r})"
        return (
            f"Job(id={self.id!r}, name={snap['name']!r}, status={snap['status']!r}, "
            f"done={snap['done']}, failed={snap['failed']}, total={snap['total']})"
        )

    def widget(self) -> BatchProgress:
        """Return a new ``BatchProgress`` widget following this job."""
        from batch_widget.kernel.widget import BatchProgress  # keeps anywidget lazy

        return BatchProgress(job_id=self.id, client=self.client)

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        """Display as the live progress widget, with the job's state as HTML beside it for
        where no widget runs (a saved notebook on a code host), and plain ``repr``."""
        with contextlib.suppress(BatchError):  # the state known so far will do
            self.snapshot()
        fallback = {"text/plain": repr(self)}
        if self._snapshot is not None:
            fallback["text/html"] = snapshot_html(self._snapshot)
        try:
            widget = self.widget()
        except ImportError:
            return fallback
        bundle = widget._repr_mimebundle_(**kwargs)
        data = bundle[0] if isinstance(bundle, tuple) else bundle  # (data, metadata) or data
        if isinstance(data, dict):
            data.update(fallback)
        return bundle


# --------------------------------------------------------------------------- functions


def submit(
    processor: Processor,
    items: Iterable[Any],
    *,
    name: str | None = None,
    params: dict[str, Any] | None = None,
    max_workers: int | None = None,
    executor: str | None = None,
    retries: int | None = None,
    retry_delay: float | None = None,
    retry_on: Iterable[str | type[BaseException]] | None = None,
) -> Job:
    """Create and queue a job on the server; return its :class:`Job` at once.

    Parameters
    ----------
    processor : str or callable
        ``"package.module:function"``, or a function (see :func:`processor_fields`).
    items : iterable
        The items, one call ``processor(item, **params)`` each: a list, a range, a
        generator... (not a str, bytes or dict). Each must be JSON: str, number,
        bool, None, or lists and dicts of those; a ``pathlib.Path`` is sent as its
        str, a tuple as a list, NumPy scalars and arrays as numbers and lists.
    name : str, optional
        A label; the server derives one from the processor otherwise.
    params : dict, optional
        Keyword arguments for every call, converted like items.
    max_workers : int, optional
        Workers for this job; the server's ``max_workers`` otherwise (for
        ``"dask"``: every thread of the cluster).
    executor : {"thread", "process", "dask"}, optional
        Where items run: threads of the server, worker processes (CPU-bound
        work), or a Dask cluster (the server's ``dask_address``, else a
        ``LocalCluster`` it starts; needs ``batch_widget[dask]`` on the server
        and the workers). The server's ``executor`` otherwise.
    retries : int, optional
        How many more times a failed item runs (0 to 100); the server's
        ``retries`` (0) otherwise. An item is failed only once its attempts are
        used up, with its last error; ``job.errors()`` says how many it had.
    retry_delay : float, optional
        Seconds before the first re-run, doubling with each (at most 60 s,
        randomised by ±25 %); the server's ``retry_delay`` (1.0) otherwise.
    retry_on : list of exception classes or names, optional
        Re-run only failures whose exception is (or derives from) one of these,
        e.g. ``[ConnectionError, TimeoutError]``; a worker process that died with
        the item counts as ``"WorkerDied"``. Any failure otherwise.

    Raises
    ------
    TypeError
        If ``items`` is a str, bytes or dict, or an item or param has no JSON form
        (the message names it and says what to pass instead). Nothing is sent.
    InvalidRequest, PermissionDenied
        If the server refuses the job (bad input, processor not allowed, token rejected).
    ServerNotFound
        If no server with batch_widget can be found (see :func:`connect`).
    ServerUnreachable
        If the server does not answer.
    """
    body: dict[str, Any] = {"items": json_items(items)}
    if params is not None:
        params = json_params(params)
    optional = {
        "name": name,
        "params": params,
        "max_workers": max_workers,
        "executor": executor,
        "retries": retries,
        "retry_delay": retry_delay,
        "retry_on": None if retry_on is None else _exception_names(retry_on),
    }
    body.update({key: value for key, value in optional.items() if value is not None})
    client = default_client()
    snap = _create(client, processor, body)
    return Job(snap["id"], client, snap)


def _exception_names(retry_on: Iterable[str | type[BaseException]]) -> list[str]:
    """``retry_on`` as the server takes it: exception class names."""
    if isinstance(retry_on, (str, type)):
        retry_on = [retry_on]
    names = []
    for entry in retry_on:
        if isinstance(entry, type) and issubclass(entry, BaseException):
            names.append(entry.__name__)
        elif isinstance(entry, str):
            names.append(entry)
        else:
            raise TypeError(
                f"retry_on takes exception classes or their names, e.g. [ConnectionError], "
                f"not {entry!r}"
            )
    return names


def attach(job_id: str) -> Job:
    """Return a :class:`Job` for an existing job id.

    Raises
    ------
    JobNotFound
        If the server has no such job.
    """
    client = default_client()
    return Job(job_id, client, client.get(job_id))


def jobs(status: str | None = None, limit: int = 100, **traits: Any) -> JobsView:
    """The server's jobs, newest first: a live ``JobsView`` widget in a notebook, and
    a sequence of job snapshots in code (``limit`` of them, optionally of one status).

    ``traits`` go to the widget (``watchdog_timeout``, ``debug``, ``transport``, ...)."""
    from batch_widget.kernel.jobsview import JobsView  # anywidget: only when asked for

    return JobsView(status=status, limit=limit, **traits)


def _display(job: Job) -> None:
    """Show the job's widget when running inside IPython; do nothing elsewhere."""
    try:
        from IPython import get_ipython  # optional, kernel only
        from IPython.display import display
    except ImportError:
        return
    if get_ipython() is not None:
        show = cast(Callable[[Any], None], display)  # IPython's display is untyped
        show(job)


def _first_failure(job: Job, snap: Snapshot) -> str:
    errors = job.errors()
    message = f"{snap['failed']} of {snap['total']} items failed in job {job.id}"
    if not errors:
        return message
    first = errors[0]
    return f"{message}; first: item {first['index']} (input {first['input']!r}): {first['error']}"


def map(  # bw.map mirrors the builtin on purpose
    processor: Processor,
    items: Iterable[Any],
    *,
    timeout: float | None = None,
    **options: Any,
) -> list[Any]:
    """Run ``processor`` over ``items`` on the server and return the results in order.

    Shows the progress widget when called in a notebook, waits for the end,
    and raises unless every item succeeded.

    Parameters
    ----------
    processor : str or callable
        As for :func:`submit`.
    items : iterable
        As for :func:`submit`.
    timeout : float, optional
        Seconds to wait at most.
    **options
        ``name``, ``params``, ``max_workers``, ``executor``, ``retries``,
        ``retry_delay``, ``retry_on``, as for :func:`submit`.

    Raises
    ------
    BatchFailed
        If items failed, their retries used up (the message counts them and shows
        the first), or the
        job ended ``cancelled``, ``interrupted`` or ``failed``. ``.job`` is set.
    TimeoutError
        If ``timeout`` passed first.
    TypeError, InvalidRequest, PermissionDenied, ServerNotFound, ServerUnreachable
        As for :func:`submit`.
    """
    job = submit(processor, items, **options)
    _display(job)
    snap = job.wait(timeout)
    if snap["status"] != JobStatus.COMPLETED:
        reason = f": {snap['error']}" if snap.get("error") else ""
        raise BatchFailed(
            f"job {job.id} ended {snap['status']} with {snap['done']} of {snap['total']} "
            f"items done{reason}",
            job,
        )
    if snap["failed"]:
        raise BatchFailed(_first_failure(job, snap), job)
    return job.results()
