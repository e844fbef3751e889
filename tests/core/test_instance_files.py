"""core/instance_files.py: the rule for an instance id, checked without `re` (a plain `list` loads no
regex engine, issue 12 goal 6), accepts exactly what the pattern the schema and ID_RULE state does."""
from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from core.instance_files import is_instance_id

ID_PATTERN = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")  # ID_RULE in core/config_manager.py
ALPHABET = st.sampled_from(list("aZ09_.-/ \n\t\\") + ["é", "٣", "ı", "K", "\x00"])  # (K: the Kelvin sign)


@given(st.text(ALPHABET, max_size=70) | st.text(max_size=70))
def test_is_instance_id_accepts_what_the_pattern_accepts(name):
    assert is_instance_id(name) == bool(ID_PATTERN.match(name))


def test_is_instance_id_at_its_edges():
    assert is_instance_id("a") and is_instance_id("a" * 64) and is_instance_id("0.b-c_d")
    for bad in ("", "a" * 65, ".a", "-a", "_a", "a/b", "..", "bot\n", "é"):
        assert not is_instance_id(bad), bad
