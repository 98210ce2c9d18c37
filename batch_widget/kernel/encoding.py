"""Kernel side: turn what a user passes as items and params into JSON values.

Items and params travel to the server as JSON. Values with one obvious JSON
form are converted (a path to its ``str``, a tuple to a list, NumPy scalars and
arrays to numbers and lists); anything else is refused before a request is
sent, with an error that names the item, its type and what to pass instead.
NumPy is never imported here: its values are recognised by their type's module.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["json_items", "json_params"]

#: Values that are JSON as they are (the fast path: most items are one of these).
_PLAIN = (str, int, float, bool, type(None))

#: What to pass instead, for the types users most often try.
_ADVICE = {
    "datetime.date": "pass a str (value.isoformat()) or a number",
    "datetime.datetime": "pass a str (value.isoformat()) or a timestamp",
    "datetime.time": "pass a str (value.isoformat())",
    "datetime.timedelta": "pass a number of seconds (value.total_seconds())",
    "set": "pass a list (sorted(value))",
    "frozenset": "pass a list (sorted(value))",
    "bytes": "pass a str (value.decode()), or write the data to a file and pass its path",
    "bytearray": "pass a str (value.decode()), or write the data to a file and pass its path",
    "complex": "pass [value.real, value.imag]",
    "decimal.Decimal": "pass a str (str(value)) or a float",
    "uuid.UUID": "pass a str (str(value))",
}
_DEFAULT_ADVICE = "pass a str, a number, a bool, None, or a list or dict of those"


def json_items(items: Iterable[Any]) -> list[Any]:
    """Return ``items`` as a list of JSON values, converting those with an obvious JSON form.

    Raises
    ------
    TypeError
        If ``items`` is a str, bytes or a mapping (iterating it would make an item
        per character or key), is not iterable, or holds a value with no JSON form;
        the message names the item's index (and where inside it), the type, and what
        to pass instead.
    """
    _check_collection(items)
    converted: list[Any] = []
    append = converted.append
    for index, item in enumerate(items):
        if type(item) in _PLAIN:
            append(item)
        else:
            append(_convert(item, f"item {index}"))
    return converted


def json_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``params`` (keyword arguments of every call) as a JSON object.

    Raises
    ------
    TypeError
        If ``params`` is not a mapping with str keys, or holds a value with no JSON
        form (the message names the key, e.g. ``params["dest_dir"]``).
    """
    if not isinstance(params, Mapping):
        raise TypeError(f"params must be a dict of keyword arguments, not {_type_name(params)}")
    converted: dict[str, Any] = {}
    for key, value in params.items():
        if not isinstance(key, str):
            raise TypeError(f"params keys are argument names and must be str, not "
                            f"{_type_name(key)} ({key!r})")
        converted[key] = _convert(value, f"params[{key!r}]")
    return converted


def _check_collection(items: Any) -> None:
    if isinstance(items, (str, bytes, bytearray)):
        text = isinstance(items, str)
        example = repr([items[:40]] if text else ["/data/file.bin"])
        raise TypeError(
            f"items is a {_type_name(items)}: batch_widget would run one item per "
            f"{'character' if text else 'byte'}. Pass a list of items, e.g. {example}")
    if isinstance(items, Mapping):
        raise TypeError(
            f"items is a {_type_name(items)}: batch_widget would run one item per key. "
            "Pass a list: list(d.values()), list(d.items()), or [d] for one item")
    try:
        iter(items)
    except TypeError:
        raise TypeError(f"items must be a list (or another iterable) of items, not "
                        f"{_type_name(items)}") from None


def _convert(value: Any, where: str) -> Any:
    """``value`` as JSON; ``where`` names it in errors (``item 3["when"]``)."""
    if type(value) in _PLAIN:
        return value
    if isinstance(value, bool):  # subclasses of the plain types (an IntEnum, a str Enum)
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):  # NumPy's float64 is one
        return float(value)
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, Mapping):
        result: dict[str, Any] = {}
        for key, inner in value.items():
            if not isinstance(key, str):
                raise TypeError(f"{where} has a key {key!r} of type {_type_name(key)}: JSON "
                                "object keys are str. Use str keys, or a list of pairs")
            result[key] = _convert(inner, f"{where}[{key!r}]")
        return result
    if isinstance(value, list | tuple):
        return [_convert(inner, f"{where}[{i}]") for i, inner in enumerate(value)]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    numpy_value = _from_numpy(value)
    if numpy_value is not _NOT_NUMPY:
        return _convert(numpy_value, where)
    name = _type_name(value)
    advice = _ADVICE.get(name, _DEFAULT_ADVICE)
    raise TypeError(f"{where} is of type {name}, which has no JSON form: {advice}")


_NOT_NUMPY = object()


def _from_numpy(value: Any) -> Any:
    """A NumPy scalar or array as Python numbers and lists; ``_NOT_NUMPY`` otherwise."""
    module = type(value).__module__ or ""
    if module != "numpy" and not module.startswith("numpy."):
        return _NOT_NUMPY
    # Arrays and scalars alike; NaN and infinities stay floats, and the server
    # refuses them with its own message.
    return value.tolist() if hasattr(value, "tolist") else _NOT_NUMPY


def _type_name(value: Any) -> str:
    cls = type(value)
    return cls.__qualname__ if cls.__module__ == "builtins" else (
        f"{cls.__module__}.{cls.__qualname__}")
