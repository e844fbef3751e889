"""core/cjson.py must be json, byte for byte: what the supervisor writes (instance.json, events.jsonl
lines) and reads (its start spec, bot_status.json) is the same with either (issue 12, goal 3)."""
from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core import cjson
from tests.conftest import REPO

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


def test_bad_input_is_refused_in_a_process_that_never_imported_json():
    """The lean supervisor and `list` never import json. _json raises its syntax errors as
    json.decoder.JSONDecodeError, which it looks up in sys.modules only: without json loaded it
    failed with SystemError ("returned NULL without setting an exception"), which no reader
    catches, so a torn bot_status.json or instance.json crashed them instead of being skipped."""
    probe = ("import sys\n"
             "from core import cjson\n"
             "assert 'json' not in sys.modules\n"
             "for bad in (b'{\"a\": 1', '{not json', '[1, 2', '{\"a\" 1}', '[1] x'):\n"
             "    try:\n"
             "        cjson.loads(bad)\n"
             "    except ValueError as exc:\n"
             "        print(type(exc).__name__, exc)\n")
    out = subprocess.run([sys.executable, "-S", "-c", probe], cwd=str(REPO), capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    expected = [f"JSONDecodeError {outcome(json.loads, bad)[1]}" for bad in ('{"a": 1', "{not json", "[1, 2", '{"a" 1}', "[1] x")]
    assert out.stdout.splitlines() == expected
