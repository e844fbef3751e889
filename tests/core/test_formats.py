"""core/formats.py: rel() shows a path inside the home exactly as pathlib's relative_to would, without
loading pathlib (issue 12 goal 6: `list` calls it for every row)."""
from __future__ import annotations

from pathlib import Path, PurePosixPath

from hypothesis import given
from hypothesis import strategies as st

from core.formats import _parts, rel

NAMES = st.sampled_from(["", ".", "..", "a", "b", "config", "x.json", " ", "a b", "~"])
PATHS = st.builds(lambda lead, names, tail: lead + "/".join(names) + tail,
                  st.sampled_from(["", "/", "//", "///", "./"]), st.lists(NAMES, max_size=5), st.sampled_from(["", "/", "/."]))
HOMES = st.builds(lambda lead, names: lead + "/".join(names), st.sampled_from(["/", "//", "///"]),
                  st.lists(NAMES, max_size=4))


def pathlib_rel(home: str, path: str | None) -> str:
    """What rel() did with pathlib."""
    if not path:
        return "-"
    try:
        return str(Path(path).relative_to(home))
    except ValueError:
        return path


@given(PATHS)
def test_parts_are_purepath_parts(path):
    assert _parts(path) == list(PurePosixPath(path).parts)


@given(HOMES, PATHS)
def test_rel_is_relative_to_or_the_path_itself(home, path):
    assert rel(home, path) == pathlib_rel(home, path)
    assert rel(Path(home), path) == pathlib_rel(home, path)


def test_rel_of_the_usual_cases():
    assert rel("/h", "/h/config/active/a.json") == "config/active/a.json"
    assert rel(Path("/h"), "/h") == "."
    assert rel("/h", "/hx/a.json") == "/hx/a.json"  # a sibling that shares a prefix is not inside
    assert rel("/h", "config/a.json") == "config/a.json"
    assert rel("/h", None) == rel("/h", "") == "-"
