"""The engine's JSON writer gives exactly ``json.dumps``'s text, faster; one parse reads many."""

from __future__ import annotations

import enum
import json
from typing import Any

import pytest

from batch_widget.engine import jsontext
from batch_widget.engine.worker import encode_result


class Color(enum.IntEnum):
    RED = 1


VALUES: list[Any] = [
    "",
    "plain",
    "é ü 中文 \U0001f600",
    'quote " backslash \\ newline \n tab \t \x00',
    0,
    -1,
    2**70,
    -(2**63),
    1.5,
    -0.0,
    1e300,
    5e-324,
    0.1 + 0.2,
    True,
    False,
    None,
    [],
    {},
    [1, "two", None, [3.5]],
    {"a": {"b": [True, {"c": "é"}]}},
    (1, 2),
    Color.RED,
    {"k": 1.0, "n": None},
]


@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_dumps_is_json_dumps(value: Any) -> None:
    assert jsontext.dumps(value) == json.dumps(value, allow_nan=False)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf"), [float("nan")]])
def test_nan_and_infinities_are_refused_as_json_refuses_them(value: Any) -> None:
    with pytest.raises(ValueError, match=jsontext.OUT_OF_RANGE):
        jsontext.dumps(value)
    assert encode_result(value) in {"null", "[null]"}  # a result's NaN becomes null


def test_values_with_no_json_form_raise_type_error() -> None:
    with pytest.raises(TypeError):
        jsontext.dumps({1, 2})
    with pytest.raises(TypeError):
        jsontext.dumps(object())


def test_loads_many_reads_each_text() -> None:
    texts = [jsontext.dumps(value) for value in VALUES]
    assert jsontext.loads_many(texts) == json.loads(json.dumps([json.loads(t) for t in texts]))
    assert jsontext.loads_many([]) == []
