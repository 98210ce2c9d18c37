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
from typing import Any

from batch_widget._errors import InvalidRequest, PermissionDenied
from batch_widget._types import ItemStatus, JobStatus
from batch_widget._worker import ProcessorError, check_import_path, resolve

EXECUTORS = ("thread", "process")
_MAX_WORKERS_CAP = 256
_MAX_NAME = 200
_MAX_PAGE = 10_000
_MAX_OFFSET = 2**63 - 1  # SQLite's integers are 64-bit


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
    """The server's limits on job requests."""

    max_items: int
    executor: str
    allowed_processors: tuple[str, ...]
    allow_callables: bool

    def job_spec(
        self, items: Any, *, processor: Any, callable_b64: Any, name: Any, params: Any,
        max_workers: Any, executor: Any,
    ) -> JobSpec:
        """Check a whole request; return it normalised or raise."""
        _check_items(items, self.max_items)
        params_dict = _check_params(params)
        workers = _check_max_workers(max_workers)
        chosen = _check_executor(executor, self.executor)
        if (processor is None) == (callable_b64 is None):
            raise InvalidRequest("give exactly one of 'processor' (an import path) "
                                 "and 'callable' (a pickled function)")
        if processor is not None:
            func = self._processor(processor)
            label, pickled, default_name = processor, None, processor.rpartition(":")[2]
        else:
            pickled, func = self._callable(callable_b64)
            default_name = str(getattr(func, "__name__", "function")).encode(
                "utf-8", "backslashreplace").decode("utf-8")
            label = f"<{default_name}>"
        _check_signature(func, label, params_dict)
        return JobSpec(name=_check_name(name, default_name), label=label, pickled=pickled,
                       params_json=json.dumps(params_dict), max_workers=workers,
                       executor=chosen)

    def check_stored_processor(self, label: str, pickled: bool) -> None:
        """Refuse re-running a stored job the current configuration no longer allows.

        ``pickled`` tells whether the job runs a stored pickled function.
        """
        if pickled:
            self._require_callables()
        else:
            self._require_allowed(label)

    def _processor(self, processor: Any) -> Any:
        if not isinstance(processor, str):
            raise InvalidRequest("'processor' must be a string 'package.module:function'")
        try:
            check_import_path(processor)
        except ProcessorError as exc:
            raise InvalidRequest(str(exc)) from exc
        self._require_allowed(processor)
        try:
            return resolve(processor)
        except ProcessorError as exc:
            raise InvalidRequest(str(exc)) from exc

    def _callable(self, callable_b64: Any) -> tuple[bytes, Any]:
        self._require_callables()
        if not isinstance(callable_b64, str) or not callable_b64:
            raise InvalidRequest("'callable' must be a base64 string of a cloudpickled function")
        try:
            pickled = base64.b64decode(callable_b64, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise InvalidRequest(f"'callable' is not valid base64: {exc}") from exc
        try:
            return pickled, resolve(pickled)
        except ProcessorError as exc:
            raise InvalidRequest(str(exc)) from exc

    def _require_allowed(self, processor: str) -> None:
        if not any(fnmatch.fnmatchcase(processor, p) for p in self.allowed_processors):
            raise PermissionDenied(
                f"processor {processor!r} is not allowed: it matches none of "
                f"BatchWidgetApp.allowed_processors {list(self.allowed_processors)}")

    def _require_callables(self) -> None:
        if not self.allow_callables:
            raise PermissionDenied("notebook-defined functions are disabled on this server "
                                   "(BatchWidgetApp.allow_callables is False); use an "
                                   "importable processor 'package.module:function'")


def _check_items(items: Any, max_items: int) -> None:
    if not isinstance(items, (list, tuple)):
        raise InvalidRequest(f"'items' must be a list, not {type(items).__name__}")
    if not items:
        raise InvalidRequest("'items' must not be empty")
    if len(items) > max_items:
        raise InvalidRequest(f"too many items: {len(items)} is more than "
                             f"BatchWidgetApp.max_items ({max_items})")


def _check_params(params: Any) -> dict[str, Any]:
    if params is None:
        return {}
    if not isinstance(params, dict) or not all(isinstance(k, str) for k in params):
        raise InvalidRequest("'params' must be an object of keyword arguments")
    try:
        json.dumps(params)
    except (TypeError, ValueError) as exc:
        raise InvalidRequest(f"'params' must be JSON-serialisable: {exc}") from exc
    return params


def _check_max_workers(max_workers: Any) -> int | None:
    if max_workers is None:
        return None
    if isinstance(max_workers, bool) or not isinstance(max_workers, int) or not (
        0 < max_workers <= _MAX_WORKERS_CAP
    ):
        raise InvalidRequest(f"'max_workers' must be an integer from 1 to {_MAX_WORKERS_CAP}, "
                             f"not {max_workers!r}")
    return max_workers


def _check_executor(executor: Any, default: str) -> str:
    if executor is None:
        return default
    if executor not in EXECUTORS:
        raise InvalidRequest(f"'executor' must be one of {list(EXECUTORS)}, not {executor!r}")
    return str(executor)


def _check_name(name: Any, default: str) -> str:
    if name is None:
        return default
    if not isinstance(name, str) or not name.strip() or len(name) > _MAX_NAME:
        raise InvalidRequest(f"'name' must be a non-empty string of at most {_MAX_NAME} "
                             "characters")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError as exc:  # a lone surrogate, e.g. "a\ud800b"
        raise InvalidRequest(f"'name' is not valid Unicode text: {exc.reason} at "
                             f"position {exc.start}") from None
    return name


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
    if status is None:
        return None
    try:
        return JobStatus(status)
    except ValueError:
        raise InvalidRequest(f"unknown job status {status!r}; use one of "
                             f"{[s.value for s in JobStatus]}") from None


def item_status(status: str | None) -> ItemStatus | None:
    """Parse a ``?status=`` filter for items."""
    if status is None:
        return None
    try:
        return ItemStatus(status)
    except ValueError:
        raise InvalidRequest(f"unknown item status {status!r}; use one of "
                             f"{[s.value for s in ItemStatus]}") from None


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
