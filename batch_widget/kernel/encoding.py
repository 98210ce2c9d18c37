"""Kernel side: turn what a user passes as items and params into JSON values.

Items and params travel to the server as JSON. Values with one obvious JSON
form are converted (a path to its ``str``, a tuple to a list, NumPy scalars and
arrays to numbers and lists); anything else is refused before a request is
sent, with an error that names the item, its type and what to pass instead.
NumPy is never imported here: its values are recognised by their type's module.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from itertools import islice
from typing import Any, cast

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

    One pass, one new list: an item that is already JSON (a str, a number, or a
    list or dict of JSON values) is put in it as it is, not copied.

    Raises
    ------
    TypeError
        If ``items`` is a str, bytes or a mapping (iterating it would make an item
        per character or key), is not iterable, or holds a value with no JSON form;
        the message names the item's index (and where inside it, e.g.
        ``item 2["meta"]["when"]``), the type, and what to pass instead.
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
            raise TypeError(
                f"params keys are argument names and must be str, not {_type_name(key)} ({key!r})"
            )
        converted[key] = _convert(value, f"params{_step(key)}")
    return converted


def _check_collection(items: Any) -> None:
    if isinstance(items, (str, bytes, bytearray)):
        text = isinstance(items, str)
        example = repr([items[:40]] if text else ["/data/file.bin"])
        raise TypeError(
            f"items is a {_type_name(items)}: batch_widget would run one item per "
            f"{'character' if text else 'byte'}. Pass a list of items, e.g. {example}"
        )
    if isinstance(items, Mapping):
        raise TypeError(
            f"items is a {_type_name(items)}: batch_widget would run one item per key. "
            "Pass a list: list(d.values()), list(d.items()), or [d] for one item"
        )
    try:
        iter(items)
    except TypeError:
        raise TypeError(
            f"items must be a list (or another iterable) of items, not {_type_name(items)}"
        ) from None


def _convert(value: Any, where: str) -> Any:
    """``value`` as JSON; ``where`` names it in errors (``item 3["when"]``).

    A list or dict whose values are all JSON already is returned as it is: only
    what changes is copied.
    """
    if type(value) in _PLAIN:
        return value
    if type(value) is dict:  # the common containers first: a million items stay cheap
        return _convert_mapping(value, where)
    if type(value) is list:
        return _convert_list(value, where)
    if isinstance(value, bool):  # subclasses of the plain types (an IntEnum, a str Enum)
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):  # NumPy's float64 is one
        return float(value)
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, Mapping):
        return _convert_mapping(value, where)
    if isinstance(value, list):
        return _convert_list(value, where)
    if isinstance(value, tuple):
        return [_convert(inner, f"{where}[{i}]") for i, inner in enumerate(value)]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    numpy_value = _from_numpy(value)
    if numpy_value is not _NOT_NUMPY:
        return _convert(numpy_value, where)
    name = _type_name(value)
    advice = _ADVICE.get(name, _DEFAULT_ADVICE)
    raise TypeError(f"{where} is of type {name}, which has no JSON form: {advice}")


def _convert_list(value: list[Any], where: str) -> list[Any]:
    copy: list[Any] | None = None
    for index, inner in enumerate(value):
        if type(inner) in _PLAIN:
            if copy is not None:
                copy.append(inner)
            continue
        converted = _convert(inner, f"{where}[{index}]")
        if copy is None and converted is not inner:
            copy = value[:index]  # the first change: copy what came before it
        if copy is not None:
            copy.append(converted)
    return value if copy is None else copy


def _convert_mapping(value: Mapping[Any, Any], where: str) -> dict[Any, Any]:
    # None while nothing changed; a MappingProxy or custom Mapping is sent as a dict.
    copy: dict[Any, Any] | None = None if type(value) is dict else {}
    for position, (key, inner) in enumerate(value.items()):
        json_key = key if type(key) is str else _json_key(key, where)
        converted = inner if type(inner) in _PLAIN else _convert(inner, f"{where}{_step(key)}")
        if copy is None and (converted is not inner or json_key is not key):
            copy = dict(islice(value.items(), position))  # first change: copy what came before
        if copy is not None:
            copy[json_key] = converted
    return cast(dict[Any, Any], value) if copy is None else copy


def _json_key(key: Any, where: str) -> Any:
    """A dict key json accepts: a str, or a number, bool or None (json writes those as str).

    A NumPy number is taken as the Python number, and a path as its str.
    """
    if key is None or isinstance(key, str | int | float):  # bool is an int
        return _convert(key, where)  # a str Enum, an IntEnum: the plain value
    numpy_key = _from_numpy(key)  # np.int64(3) as a key: 3
    if numpy_key is not _NOT_NUMPY and type(numpy_key) in _PLAIN:
        return numpy_key
    if isinstance(key, os.PathLike):
        return os.fspath(key)
    raise TypeError(
        f"{where} has a key {key!r} of type {_type_name(key)}, which JSON cannot use as "
        "an object key: use str keys (or numbers), or a list of [key, value] pairs"
    )


def _step(key: Any) -> str:
    """How a key reads in a path to a value: ``["when"]``, ``[3]``."""
    return f"[{json.dumps(key, ensure_ascii=False)}]" if isinstance(key, str) else f"[{key!r}]"


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
    return (
        cls.__qualname__
        if cls.__module__ == "builtins"
        else (f"{cls.__module__}.{cls.__qualname__}")
    )
