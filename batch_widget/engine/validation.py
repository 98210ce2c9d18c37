"""Checks on what a client asks for: every rule a job request must pass.

Each failure raises a domain error whose message says what to change; a
request that fails any rule changes nothing.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import fnmatch
import inspect
import json
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from batch_widget.engine import ledger
from batch_widget.engine.cluster import dask_installed, missing_message
from batch_widget.engine.settings import EXECUTORS, Settings
from batch_widget.engine.worker import ProcessorError, check_import_path, resolve
from batch_widget.protocol import InvalidRequest, ItemStatus, JobStatus, PermissionDenied

_MAX_WORKERS_CAP = 256
_MAX_NAME = 200
_MAX_PAGE = 10_000
_MAX_OFFSET = 2**63 - 1  # SQLite's integers are 64-bit


@dataclasses.dataclass(frozen=True)
class JobRequest:
    """What a client asks for, parsed once: every field has its shape checked here.

    Build one from a request body with :meth:`from_json`, or directly. Whether
    the server allows it (item limit, processor allowlist, callables) is the
    business of :class:`Rules`.
    """

    items: Sequence[Any]
    processor: str | None = None
    callable_b64: str | None = None
    name: str | None = None
    params: Mapping[str, Any] | None = None
    max_workers: int | None = None
    executor: str | None = None

    def __post_init__(self) -> None:
        _check_items(self.items)
        _check_params(self.params)
        _check_max_workers(self.max_workers)
        _check_executor(self.executor)
        if (self.processor is None) == (self.callable_b64 is None):
            raise InvalidRequest("give exactly one of 'processor' (an import path) "
                                 "and 'callable' (a pickled function)")
        if self.processor is not None and not isinstance(self.processor, str):
            raise InvalidRequest("'processor' must be a string 'package.module:function'")
        if self.callable_b64 is not None and (
                not isinstance(self.callable_b64, str) or not self.callable_b64):
            raise InvalidRequest("'callable' must be a base64 string of a cloudpickled function")
        if self.name is not None:
            _check_name(self.name)

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> JobRequest:
        """The request a ``POST api/batch/jobs`` body makes (SPEC §3); unknown keys are ignored."""
        return cls(items=body.get("items"),  # type: ignore[arg-type]  # checked in __post_init__
                   processor=body.get("processor"), callable_b64=body.get("callable"),
                   name=body.get("name"), params=body.get("params"),
                   max_workers=body.get("max_workers"), executor=body.get("executor"))


@dataclasses.dataclass(frozen=True)
class JobSpec:
    """A validated job request, ready to store."""

    name: str
    label: str
    pickled: bytes | None
    params_json: str
    max_workers: int | None
    executor: str


@dataclasses.dataclass(frozen=True)
class Rules:
    """The server's limits on job requests: ``max_items``, the default executor,
    ``allowed_processors`` and ``allow_callables`` of its settings."""

    settings: Settings

    def job_spec(self, request: JobRequest) -> JobSpec:
        """Check a request against the server's rules; return it ready to store or raise."""
        if len(request.items) > self.settings.max_items:
            raise InvalidRequest(f"too many items: {len(request.items)} is more than "
                                 f"BatchWidgetApp.max_items ({self.settings.max_items})")
        params = dict(request.params or {})
        if request.processor is not None:
            processor = request.processor
            func = self._processor(processor)
            label, pickled, default_name = processor, None, processor.rpartition(":")[2]
        else:
            assert request.callable_b64 is not None  # JobRequest holds exactly one
            pickled, func = self._callable(request.callable_b64)
            default_name = callable_name(func)
            label = f"<{default_name}>"
        _check_signature(func, label, params)
        executor = request.executor or self.settings.executor
        if executor == "dask" and not dask_installed():
            raise InvalidRequest(missing_message())
        return JobSpec(name=request.name or default_name, label=label, pickled=pickled,
                       params_json=json.dumps(params), max_workers=request.max_workers,
                       executor=executor)

    def check_stored_processor(self, label: str, pickled: bool) -> None:
        """Refuse re-running a stored job the current configuration no longer allows.

        ``pickled`` tells whether the job runs a stored pickled function.
        """
        if pickled:
            self._require_callables()
        else:
            self._require_allowed(label)

    def _processor(self, processor: str) -> Any:
        try:
            check_import_path(processor)
        except ProcessorError as exc:
            raise InvalidRequest(str(exc)) from exc
        self._require_allowed(processor)
        try:
            return resolve(processor)
        except ProcessorError as exc:
            raise InvalidRequest(str(exc)) from exc

    def _callable(self, callable_b64: str) -> tuple[bytes, Any]:
        self._require_callables()
        try:
            pickled = base64.b64decode(callable_b64, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise InvalidRequest(f"'callable' is not valid base64: {exc}") from exc
        try:
            return pickled, resolve(pickled)
        except ProcessorError as exc:
            raise InvalidRequest(str(exc)) from exc

    def _require_allowed(self, processor: str) -> None:
        if not any(fnmatch.fnmatchcase(processor, p) for p in self.settings.allowed_processors):
            raise PermissionDenied(
                f"processor {processor!r} is not allowed: it matches none of "
                f"BatchWidgetApp.allowed_processors {list(self.settings.allowed_processors)}")

    def _require_callables(self) -> None:
        if not self.settings.allow_callables:
            raise PermissionDenied("notebook-defined functions are disabled on this server "
                                   "(BatchWidgetApp.allow_callables is False); use an "
                                   "importable processor 'package.module:function'")


def _check_items(items: Any) -> None:
    if not isinstance(items, (list, tuple)):
        raise InvalidRequest(f"'items' must be a list, not {type(items).__name__}")
    if not items:
        raise InvalidRequest("'items' must not be empty")


def _check_params(params: Any) -> None:
    if params is None:
        return
    if not isinstance(params, dict) or not all(isinstance(k, str) for k in params):
        raise InvalidRequest("'params' must be an object of keyword arguments")
    try:
        json.dumps(params)
    except (TypeError, ValueError) as exc:
        raise InvalidRequest(f"'params' must be JSON-serialisable: {exc}") from exc


def _check_max_workers(max_workers: Any) -> None:
    if max_workers is None:
        return
    if isinstance(max_workers, bool) or not isinstance(max_workers, int) or not (
        0 < max_workers <= _MAX_WORKERS_CAP
    ):
        raise InvalidRequest(f"'max_workers' must be an integer from 1 to {_MAX_WORKERS_CAP}, "
                             f"not {max_workers!r}")


def _check_executor(executor: Any) -> None:
    if executor is not None and executor not in EXECUTORS:
        raise InvalidRequest(f"'executor' must be one of {list(EXECUTORS)}, not {executor!r}")


def _check_name(name: Any) -> None:
    if not isinstance(name, str) or not name.strip() or len(name) > _MAX_NAME:
        raise InvalidRequest(f"'name' must be a non-empty string of at most {_MAX_NAME} "
                             "characters")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError as exc:  # a lone surrogate, e.g. "a\ud800b"
        raise InvalidRequest(f"'name' is not valid Unicode text: {exc.reason} at "
                             f"position {exc.start}") from None


def _check_signature(func: Any, label: str, params: dict[str, Any]) -> None:
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):  # some builtins have no signature: let items tell
        return
    try:
        signature.bind(None, **params)
    except TypeError as exc:
        raise InvalidRequest(f"processor {label} cannot be called as f(item, **params) with "
                             f"params {sorted(params)}: {exc}") from exc


def job_status(status: str | None) -> JobStatus | None:
    """Parse a ``?status=`` filter for jobs."""
    return _status_filter(JobStatus, status, "job")


def item_status(status: str | None) -> ItemStatus | None:
    """Parse a ``?status=`` filter for items."""
    return _status_filter(ItemStatus, status, "item")


_State = TypeVar("_State", JobStatus, ItemStatus)


def _status_filter(states: type[_State], status: str | None, what: str) -> _State | None:
    if status is None:
        return None
    try:
        return states(status)
    except ValueError:
        raise InvalidRequest(f"unknown {what} status {status!r}; use one of "
                             f"{[s.value for s in states]}") from None


def callable_name(func: Any) -> str:
    """A readable name for a pickled function: ``lambda``, ``double``, ``outer.inner``.

    Its ``__qualname__`` without what Python adds in angle brackets (``<lambda>``,
    ``<locals>``); any lambda is ``lambda``. A callable object with no
    ``__qualname__`` (a ``functools.partial``) is named by its type.
    """
    if getattr(func, "__name__", None) == "<lambda>":
        return "lambda"
    qualname = getattr(func, "__qualname__", None)
    if not isinstance(qualname, str) or not qualname:
        qualname = type(func).__qualname__
    parts = [part for part in qualname.split(".") if not part.startswith("<")]
    name = ".".join(parts).replace("<", "").replace(">", "") or "function"
    # Storable text, and well inside the 200 characters a name may have.
    return name.encode("utf-8", "backslashreplace").decode("utf-8")[:100]


def after_index(after: int) -> int:
    """Check an ``after`` position: an item index, or -1 for the start."""
    if isinstance(after, bool) or not isinstance(after, int) or not -1 <= after <= _MAX_OFFSET:
        raise InvalidRequest(f"'after' must be an item index: an integer from -1 to {_MAX_OFFSET}")
    return after


def position(offset: int, after: int | None) -> ledger.Position:
    """Where a page starts: ``after`` an index (keyset paging, from -1) or at ``offset``."""
    if after is None:
        return ledger.Position(offset=offset)
    after_index(after)
    if offset:
        raise InvalidRequest("give 'after' or 'offset', not both")
    return ledger.Position(after=after)


def page(limit: int, offset: int) -> None:
    """Check paging arguments."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 0 < limit <= _MAX_PAGE:
        raise InvalidRequest(f"'limit' must be an integer from 1 to {_MAX_PAGE}")
    if isinstance(offset, bool) or not isinstance(offset, int) or not 0 <= offset <= _MAX_OFFSET:
        raise InvalidRequest(f"'offset' must be an integer from 0 to {_MAX_OFFSET}")


def load_params(params_json: str) -> dict[str, Any]:
    """The stored params of a job."""
    params: dict[str, Any] = json.loads(params_json)
    return params
