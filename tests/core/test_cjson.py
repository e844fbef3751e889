"""core/cjson.py must be json, byte for byte: what the supervisor writes (instance.json, events.jsonl
lines) and reads (its start spec, bot_status.json) is the same with either (issue 12, goal 3)."""
from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core import cjson

SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text()
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
                      max_leaves=30)
SEPARATORS = st.sampled_from([(",", ":"), (", ", ": "), (",", ": ")])


def same(a: object, b: object) -> bool:
    """Equal, NaN included (nan != nan), and of the same types all the way down (1 is not 1.0 or True)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    return a == b


@settings(max_examples=300, deadline=None)
@given(VALUES, st.booleans(), SEPARATORS)
def test_dumps_is_json_dumps(value, sort_keys, separators):
    assert cjson.dumps(value, sort_keys=sort_keys, separators=separators) == \
        json.dumps(value, sort_keys=sort_keys, separators=separators)


@settings(max_examples=300, deadline=None)
@given(VALUES, st.sampled_from(["", " ", "\n\t ", "\r\n"]))
def test_loads_is_json_loads(value, pad):
    text = pad + json.dumps(value) + pad
    assert same(cjson.loads(text), json.loads(text))
    raw = text.encode()
    assert same(cjson.loads(raw), json.loads(raw))


def outcome(fn, arg):
    try:
        return "ok", fn(arg)
    except ValueError as exc:
        return type(exc).__name__, str(exc)


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.sampled_from(list('{}[]",:0123456789.eE+-tnfalsNIy \\u\ufeff\x00')), max_size=20)
       | st.binary(max_size=12))
def test_bad_input_is_refused_as_json_refuses_it(text):
    """Arbitrary (mostly broken) input: the same value or the same ValueError with the same words."""
    mine, theirs = outcome(cjson.loads, text), outcome(json.loads, text)
    assert mine[0] == theirs[0]
    assert same(mine[1], theirs[1]) if mine[0] == "ok" else mine[1] == theirs[1]


def test_default_and_refusals_are_json_s():
    """default=str (events.jsonl) is used; without one, the TypeError json gives; NaN is written as json writes it."""
    event = {"at": object, "x": float("nan"), "y": float("-inf")}
    assert cjson.dumps(event, separators=(",", ":"), default=str) == json.dumps(event, separators=(",", ":"), default=str)
    with pytest.raises(TypeError, match="Object of type set is not JSON serializable"):
        cjson.dumps({"a": {1}})
    loop: list = []
    loop.append(loop)
    with pytest.raises(ValueError, match="Circular reference"):
        cjson.dumps(loop)
    with pytest.raises(TypeError):
        cjson.dumps({(1, 2): 3})  # json refuses tuple keys too
    assert cjson.loads('[NaN, Infinity, -Infinity]')[1] == math.inf
