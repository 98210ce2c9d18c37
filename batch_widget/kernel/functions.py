"""Kernel side: how a processor travels to the server.

A function the server can import by name travels as its import path,
``"package.module:function"``; any other (defined in a notebook, a closure, a
lambda) travels cloudpickled.
"""

from __future__ import annotations

import base64
import importlib
import inspect
import sys
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import cloudpickle

from batch_widget.protocol import InvalidRequest

__all__ = ["LARGE_PICKLE_BYTES", "Processor", "check_call", "pickled", "processor_fields"]

Processor = str | Callable[..., Any]
#: A pickled function bigger than this draws a warning: it likely captured data.
LARGE_PICKLE_BYTES = 10 * 2**20


def _importable_path(func: Callable[..., Any]) -> str | None:
    """Return ``"module:qualname"`` if ``func`` can be imported by name, else None.

    A function qualifies when it lives at module level (no ``<locals>``) of a
    module other than ``__main__`` and the name resolves back to the same object.
    """
    module_name = getattr(func, "__module__", None)
    qualname = getattr(func, "__qualname__", "")
    if not module_name or module_name == "__main__" or "<" in qualname:
        return None
    try:
        target: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError):
        return None
    return f"{module_name}:{qualname}" if target is func else None


def pickled(func: Callable[..., Any], *, by_value: bool = False) -> str:
    """Return ``func`` cloudpickled, as base64.

    With ``by_value``, the function's module travels inside the pickle too: for a
    module the kernel can import (say, a file beside the notebook) but the server cannot.
    """
    module = sys.modules.get(getattr(func, "__module__", "") or "")
    by_value = by_value and module is not None and module.__name__ != "__main__"
    if by_value:
        cloudpickle.register_pickle_by_value(module)
    try:
        payload: bytes = cloudpickle.dumps(func)
    finally:
        if by_value:
            cloudpickle.unregister_pickle_by_value(module)
    if len(payload) > LARGE_PICKLE_BYTES:
        _warn_large_pickle(func, len(payload))
    return base64.b64encode(payload).decode("ascii")


def _warn_large_pickle(func: Callable[..., Any], size: int) -> None:
    name = getattr(func, "__qualname__", None) or repr(func)
    warnings.warn(
        f"the pickled function {name!r} is {size / 2**20:.1f} MiB: it carries data it refers "
        "to (globals, closure variables). It travels to the server with the job and is "
        "loaded again for every run. Pass the data as items (or params), or write it to "
        "files and pass their paths, and keep the function small.",
        UserWarning,
        stacklevel=5,  # the user's bw.submit/bw.map call, through _create and processor_fields
    )


def check_call(func: Callable[..., Any], params: Mapping[str, Any] | None) -> None:
    """Raise ``InvalidRequest`` unless ``func`` can be called as ``func(item, **params)``.

    Checked here, before anything is sent: the server loads a pickled function
    only where it runs (in a worker process for ``"process"`` and ``"dask"``
    jobs), so it cannot check the signature of one itself.
    """
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):  # some builtins have no signature: let items tell
        return
    names = sorted(params or {})
    try:
        signature.bind(None, **dict.fromkeys(names))
    except TypeError as exc:
        label = getattr(func, "__qualname__", None) or type(func).__qualname__
        raise InvalidRequest(
            f"processor {label} cannot be called as f(item, **params) with "
            f"params {names}: {exc}; nothing was sent"
        ) from None


def processor_fields(
    processor: Processor, params: Mapping[str, Any] | None = None
) -> dict[str, str]:
    """Return the body fields naming ``processor``: ``{"processor": ...}`` or ``{"callable": ...}``.

    Parameters
    ----------
    processor : str or callable
        An import path ``"package.module:function"``, or a function. A function
        importable by name travels as its import path; any other (defined in a
        notebook, a closure, a lambda) travels cloudpickled.
    params : mapping, optional
        The job's params: a function is checked to take ``(item, **params)``.

    Raises
    ------
    InvalidRequest
        If the function cannot be called as ``f(item, **params)``.
    """
    if isinstance(processor, str):
        return {"processor": processor}
    if not callable(processor):
        raise TypeError(f"processor must be an import path or a callable, not {processor!r}")
    check_call(processor, params)
    path = _importable_path(processor)
    return {"processor": path} if path else {"callable": pickled(processor)}
