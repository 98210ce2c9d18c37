"""Checks on what a client asks for: every rule a job request must pass.

Each failure raises a domain error whose message says what to change; a
request that fails any rule changes nothing.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import dataclasses
import difflib
import inspect
import json
import math
import pickletools
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, TypeVar

from batch_widget.engine import jsontext, ledger
from batch_widget.engine.cluster import dask_installed, missing_message
from batch_widget.engine.errors import ProcessorError, ProcessorRefused
from batch_widget.engine.processor_rules import ProcessorRules
from batch_widget.engine.retrying import MAX_RETRY_DELAY
from batch_widget.engine.settings import EXECUTORS, Settings
from batch_widget.protocol import InvalidRequest, ItemStatus, JobStatus, PermissionDenied

_MAX_WORKERS_CAP = 256
#: The most re-runs a job may ask for per item.
MAX_RETRIES = 100
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
    retries: int | None = None
    retry_delay: float | None = None
    retry_on: Sequence[str] | None = None

    def __post_init__(self) -> None:
        _check_items(self.items)
        _check_params(self.params)
        _check_max_workers(self.max_workers)
        _check_executor(self.executor)
        check_retries(self.retries)
        check_retry_delay(self.retry_delay)
        check_retry_on(self.retry_on)
        if (self.processor is None) == (self.callable_b64 is None):
            raise InvalidRequest(
                "give exactly one of 'processor' (an import path) "
                "and 'callable' (a pickled function)"
            )
        if self.processor is not None and not isinstance(self.processor, str):
            raise InvalidRequest("'processor' must be a string 'package.module:function'")
        if self.callable_b64 is not None and (
            not isinstance(self.callable_b64, str) or not self.callable_b64
        ):
            raise InvalidRequest("'callable' must be a base64 string of a cloudpickled function")
        if self.name is not None:
            _check_name(self.name)

    @classmethod
    def body_fields(cls) -> tuple[str, ...]:
        """The keys a job's body may carry: this class's fields, as the body spells them."""
        return tuple(_BODY_NAME.get(f.name, f.name) for f in dataclasses.fields(cls))

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> JobRequest:
        """The request a ``POST api/batch/jobs`` body makes (docs/http-api.md).

        A key that is none of :meth:`body_fields` is refused: a misspelt
        ``max_worker`` silently ignored would run the job otherwise than asked.
        """
        known = cls.body_fields()
        for key in body:
            if key not in known:
                raise InvalidRequest(_unknown_field(key, known))
        values = {f.name: body.get(_BODY_NAME.get(f.name, f.name)) for f in dataclasses.fields(cls)}
        return cls(**values)  # type: ignore[arg-type]  # each is checked in __post_init__


#: Fields whose body key differs from the attribute (``callable`` is a builtin).
_BODY_NAME = {"callable_b64": "callable"}


def _unknown_field(key: str, known: Sequence[str]) -> str:
    guess = difflib.get_close_matches(key, known, n=1)
    hint = f" (did you mean {guess[0]!r}?)" if guess else ""
    return (
        f"unknown field {key!r} in the job's body{hint}. The known fields are: "
        f"{', '.join(sorted(known))}; nothing was created"
    )


@dataclasses.dataclass(frozen=True)
class JobSpec:
    """A validated job request, ready to store."""

    name: str
    label: str
    pickled: bytes | None
    params_json: str
    max_workers: int | None
    executor: str
    retries: int = 0
    retry_delay: float = 1.0
    retry_on: tuple[str, ...] | None = None


@dataclasses.dataclass(frozen=True)
class Rules:
    """The server's limits on job requests: ``max_items``, the default executor,
    ``allowed_processors`` and ``allow_callables`` of its settings."""

    settings: Settings

    @property
    def processors(self) -> ProcessorRules:
        """Which processors may run: the one place that resolves and authorizes them."""
        return ProcessorRules.of(self.settings)

    def job_spec(self, request: JobRequest) -> JobSpec:
        """Check a request against the server's rules; return it ready to store or raise."""
        if len(request.items) > self.settings.max_items:
            raise InvalidRequest(
                f"too many items: {len(request.items)} is more than "
                f"BatchWidgetApp.max_items ({self.settings.max_items})"
            )
        params = dict(request.params or {})
        executor = request.executor or self.settings.executor
        if request.processor is not None:
            label, pickled = request.processor, None
            default_name = label.rpartition(":")[2]
            with _as_request_error():
                func = self.processors.grant(label).load()
            _check_signature(func, label, params)
        else:
            assert request.callable_b64 is not None  # JobRequest holds exactly one
            pickled = _decoded(request.callable_b64)
            default_name = self._admit_pickle(pickled, executor, params)
            label = f"<{default_name}>"
        if executor == "dask" and not dask_installed():
            raise InvalidRequest(missing_message())
        return JobSpec(
            name=request.name or default_name,
            label=label,
            pickled=pickled,
            params_json=json.dumps(params),
            max_workers=request.max_workers,
            executor=executor,
            retries=self.settings.retries if request.retries is None else request.retries,
            retry_delay=float(
                self.settings.retry_delay if request.retry_delay is None else request.retry_delay
            ),
            retry_on=self.settings.retry_on
            if request.retry_on is None
            else tuple(dict.fromkeys(request.retry_on)),
        )

    def _admit_pickle(self, pickled: bytes, executor: str, params: dict[str, Any]) -> str:
        """Check a pickled function; return its name.

        A thread job runs it in this process anyway, so it is loaded here and its
        signature checked. A process or Dask job's function is never loaded in the
        server (a crash while unpickling would end the server, a captured model or
        DataFrame would be allocated in it): the stream is only read for its shape
        and name, and the kernel checks the signature before it sends.
        """
        with _as_request_error():
            grant = self.processors.grant(pickled)
            if executor != "thread":
                return pickle_name(pickled)
            func = grant.load()
        name = callable_name(func)
        _check_signature(func, f"<{name}>", params)
        return name

    def check_stored_processor(self, label: str, pickled: bool) -> None:
        """Refuse re-running a stored job the current configuration no longer allows.

        ``pickled`` tells whether the job runs a stored pickled function. The run
        checks again, with the rules in force when it starts.
        """
        with _as_request_error():
            if pickled:
                self.processors.require_callables()
            else:
                self.processors.check(label)


@contextlib.contextmanager
def _as_request_error() -> Iterator[None]:
    """Raise the processor rules' errors as the request errors they are: 403 or 400.

    A refused processor is a 403 (``PermissionDenied``), as ``allowed_processors``
    has always been: the request is well formed and names something that exists,
    but the server's rules do not let it run; sending it again unchanged cannot help.
    """
    try:
        yield
    except ProcessorRefused as exc:
        raise PermissionDenied(str(exc)) from None
    except ProcessorError as exc:
        raise InvalidRequest(str(exc)) from None


def _decoded(callable_b64: str) -> bytes:
    try:
        return base64.b64decode(callable_b64, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidRequest(f"'callable' is not valid base64: {exc}") from exc


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
    for key, value in params.items():
        try:
            jsontext.dumps(value)  # strict: NaN and the infinities have no JSON text
        except ValueError as exc:
            if not str(exc).startswith(jsontext.OUT_OF_RANGE):
                raise InvalidRequest(f"param {key!r} must be JSON-serialisable: {exc}") from exc
            raise InvalidRequest(
                f"param {key!r} holds a number out of a float's range (NaN or infinity: a "
                "literal such as 1e999 reads as infinity); send a finite number"
            ) from None
        except (TypeError, RecursionError) as exc:
            raise InvalidRequest(f"param {key!r} must be JSON-serialisable: {exc}") from exc


def _check_whole(name: str, value: Any, low: int, high: int, meaning: str = "") -> None:
    """Refuse ``value`` (a field called ``name``) unless it is None or an int in low..high."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidRequest(
            f"'{name}' must be an integer from {low} to {high}{meaning}, not {value!r}"
        )


def _check_max_workers(max_workers: Any) -> None:
    _check_whole("max_workers", max_workers, 1, _MAX_WORKERS_CAP)


def check_retries(retries: Any) -> None:
    """Refuse a ``retries`` that is not a whole number from 0 to :data:`MAX_RETRIES`."""
    _check_whole("retries", retries, 0, MAX_RETRIES, " (re-runs of a failed item)")


def check_retry_delay(delay: Any) -> None:
    """Refuse a ``retry_delay`` that is not a finite number of seconds from 0 to 60."""
    if delay is None:
        return
    if (
        isinstance(delay, bool)
        or not isinstance(delay, (int, float))
        or not math.isfinite(delay)
        or not 0 <= delay <= MAX_RETRY_DELAY
    ):
        raise InvalidRequest(
            f"'retry_delay' must be a number of seconds from 0 to {MAX_RETRY_DELAY:g}, "
            f"not {delay!r}"
        )


def check_retry_on(names: Any) -> None:
    """Refuse a ``retry_on`` that is not a list of exception class names."""
    if names is None:
        return
    if (
        isinstance(names, (str, bytes))
        or not isinstance(names, Sequence)
        or not all(isinstance(name, str) and name.isidentifier() for name in names)
    ):
        raise InvalidRequest(
            "'retry_on' must be a list of exception class names such as "
            f'["ConnectionError", "TimeoutError"] (null: any), not {names!r}'
        )


def _check_executor(executor: Any) -> None:
    if executor is not None and executor not in EXECUTORS:
        raise InvalidRequest(f"'executor' must be one of {list(EXECUTORS)}, not {executor!r}")


def _check_name(name: Any) -> None:
    if not isinstance(name, str) or not name.strip() or len(name) > _MAX_NAME:
        raise InvalidRequest(f"'name' must be a non-empty string of at most {_MAX_NAME} characters")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError as exc:  # a lone surrogate, e.g. "a\ud800b"
        raise InvalidRequest(
            f"'name' is not valid Unicode text: {exc.reason} at position {exc.start}"
        ) from None


def _check_signature(func: Any, label: str, params: dict[str, Any]) -> None:
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):  # some builtins have no signature: let items tell
        return
    try:
        signature.bind(None, **params)
    except TypeError as exc:
        raise InvalidRequest(
            f"processor {label} cannot be called as f(item, **params) with "
            f"params {sorted(params)}: {exc}"
        ) from exc


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
        raise InvalidRequest(
            f"unknown {what} status {status!r}; use one of {[s.value for s in states]}"
        ) from None


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
    return _readable(qualname)


def _readable(qualname: str) -> str:
    if qualname.rpartition(".")[2] == "<lambda>":
        return "lambda"
    parts = [part for part in qualname.split(".") if not part.startswith("<")]
    name = ".".join(parts).replace("<", "").replace(">", "") or "function"
    # Storable text, and well inside the 200 characters a name may have.
    return name.encode("utf-8", "backslashreplace").decode("utf-8")[:100]


#: The first global of a function cloudpickle wrote from its code (not by reference).
_MAKE_FUNCTION = "_make_function"
_GETS = frozenset({"GET", "BINGET", "LONG_BINGET"})
_PUTS = frozenset({"PUT", "BINPUT", "LONG_BINPUT"})


def pickle_name(pickled: bytes) -> str:
    """The name of a pickled function, read from the pickle's opcodes: nothing runs.

    ``pickletools.genops`` decodes the stream without executing any of it, so a
    stream that is not one whole pickle is refused here. The name is the
    ``__qualname__`` cloudpickle wrote for a function it pickled from its code,
    else the name the stream first imports (``partial``, a function pickled by
    reference), else ``function`` (an instance of a notebook-defined class, say);
    shaped as :func:`callable_name` shapes names.

    Raises
    ------
    ProcessorError
        If ``pickled`` is not a complete pickle stream.
    """
    reader = _PickleNames()
    try:
        for opcode, arg, _ in pickletools.genops(pickled):
            reader.step(opcode.name, arg)
    except ValueError as exc:
        raise ProcessorError(f"'callable' is not a pickle of a function: {exc}") from None
    first, qualname = reader.first_global, reader.qualname
    if first is None or not first[1] or first[0] == "copyreg":
        return "function"
    if first[0].startswith("cloudpickle"):  # its own helpers: a function from its code...
        made_from_code = first[1] == _MAKE_FUNCTION and qualname is not None
        return _readable(qualname) if made_from_code and qualname else "function"  # or not
    return _readable(first[1])


class _PickleNames:
    """Follows the strings a pickle pushes (memo included): its first global, a ``__qualname__``.

    Only what sits on top of the stack is tracked: the two strings just pushed, or
    None where something else was.
    """

    def __init__(self) -> None:
        self.first_global: tuple[str, str] | None = None
        self.qualname: str | None = None
        self._last: tuple[str | None, str | None] = (None, None)
        self._memo: dict[int, str] = {}
        self._memoized = 0  # MEMOIZE numbers every object it stores, strings or not

    def step(self, opcode: str, arg: Any) -> None:
        """Take one opcode of ``pickletools.genops``."""
        if isinstance(arg, str) and ("UNICODE" in opcode or "STRING" in opcode):
            self._push(arg)
        elif opcode in _GETS and isinstance(arg, int):
            self._push(self._memo.get(arg))
        elif opcode == "MEMOIZE" or opcode in _PUTS:  # the stack stays as it is
            index = self._memoized if opcode == "MEMOIZE" else arg
            self._memoized += opcode == "MEMOIZE"
            if isinstance(index, int) and self._last[1] is not None:
                self._memo[index] = self._last[1]
        else:
            if self.first_global is None and opcode in ("STACK_GLOBAL", "GLOBAL"):
                module, name = (
                    self._last if opcode == "STACK_GLOBAL" else str(arg).partition(" ")[::2]
                )
                self.first_global = (module or "", name or "")
            self._last = (None, None)

    def _push(self, text: str | None) -> None:
        if self.qualname is None and text is not None and self._last[1] == "__qualname__":
            self.qualname = text
        self._last = (self._last[1], text)


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
