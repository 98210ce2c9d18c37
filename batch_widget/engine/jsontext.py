"""JSON text of one value, fast for the values items and results usually are.

``json.dumps`` pays for its keyword handling and a fresh encoder on every call:
several microseconds, which is most of what a no-op item costs. :func:`dumps`
writes plain strings, ints, None and bools directly (through the same C string
encoder ``json`` uses) and gives everything else to one shared encoder. Its text
is exactly ``json.dumps(value, allow_nan=False)``'s.
"""

from __future__ import annotations

import json
import math
from json.encoder import encode_basestring_ascii
from typing import Any

__all__ = ["OUT_OF_RANGE", "dumps", "loads_many"]

#: The start of the message ``json`` raises for NaN and the infinities.
OUT_OF_RANGE = "Out of range float values are not JSON compliant"

_ENCODER = json.JSONEncoder(allow_nan=False)
_int_repr = int.__repr__
_float_repr = float.__repr__


def dumps(value: Any) -> str:
    """``json.dumps(value, allow_nan=False)``, with fast paths for scalars.

    Raises
    ------
    ValueError
        For NaN and the infinities (message starting with :data:`OUT_OF_RANGE`).
    TypeError
        For a value with no JSON form.
    """
    kind = type(value)
    if kind is str:
        return encode_basestring_ascii(value)
    if kind is int:
        return _int_repr(value)
    if value is None:
        return "null"
    if kind is bool:
        return "true" if value else "false"
    if kind is float:
        if not math.isfinite(value):
            raise ValueError(f"{OUT_OF_RANGE}: {_float_repr(value)}")
        return _float_repr(value)
    return _ENCODER.encode(value)


def loads_many(texts: list[str]) -> list[Any]:
    """Decode many JSON texts in one call of the C parser (one call each costs far more)."""
    if not texts:
        return []
    decoded: list[Any] = json.loads("[" + ",".join(texts) + "]")
    return decoded
