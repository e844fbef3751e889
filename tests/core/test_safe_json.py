"""core/safe_json.py: strict enough to refuse what json.loads silently accepts, never stricter than
JSON itself for what a config or a request body really holds."""
from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.safe_json import MAX_DEPTH, JSONRefused, loads

scalars = st.none() | st.booleans() | st.integers(-10**30, 10**30) | st.floats(allow_nan=False, allow_infinity=False) \
    | st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=20)
documents = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                             max_size=4), max_leaves=25)


@settings(max_examples=150, deadline=None)
@given(documents)
def test_every_plain_document_reads_back_as_json_would(doc):
    text = json.dumps(doc)
    assert loads(text) == json.loads(text)
    assert loads(text.encode()) == json.loads(text)


@pytest.mark.parametrize("text,why", [
    ('{"a": 1, "a": 2}', "duplicate key 'a'"),
    ('{"a": NaN}', "NaN is not a JSON number"),
    ('[Infinity]', "Infinity"),
    ("1" * 41, "41 characters"),
    ("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1), f"{MAX_DEPTH + 1} levels deep"),
    (b'{"a": "\xff"}', "not UTF-8"),
    ('{"a": 1,}', "invalid JSON at line 1"),
])
def test_refused_with_the_reason(text, why):
    with pytest.raises(JSONRefused) as caught:
        loads(text)
    assert why in str(caught.value)


def test_brackets_inside_strings_are_not_nesting():
    deep_looking = {"note": "[[[[{{{{" * 20 + '\\"]]]'}
    assert loads(json.dumps(deep_looking)) == deep_looking
    assert loads("[" * MAX_DEPTH + "]" * MAX_DEPTH) is not None
