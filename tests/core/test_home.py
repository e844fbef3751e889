"""core/home.py: the home and the runtime paths in it as strings, for `list`; core/paths.py builds
its Paths on them, so both name the same files as pathlib did (issue 12 goal 6)."""
from __future__ import annotations

import os
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from core.home import HOME_ENV, REPO_DIR, home_dir, runtime_path
from core.paths import REPO_ROOT, project_home, resolve_runtime

VALUES = st.builds(lambda lead, names: lead + "/".join(names), st.sampled_from(["", "/", "//", "~", "~/", "./", "~root"]),
                   st.lists(st.sampled_from(["", ".", "..", "logs", "a", "b c", "~", "~root", "~nobody_here"]), max_size=4))


def outcome(fn, *args) -> object:
    try:
        return Path(fn(*args))
    except RuntimeError as exc:  # pathlib's answer to a ~user that does not exist
        return f"RuntimeError: {exc}"


def pathlib_runtime(home: Path, value: str) -> Path:
    """What resolve_runtime did with pathlib."""
    p = Path(value).expanduser()
    return p if p.is_absolute() else home / p


@given(VALUES)
def test_runtime_path_names_what_pathlib_named(value):
    home = Path("/srv/fleet")
    assert outcome(runtime_path, home, value) == outcome(pathlib_runtime, home, value)
    assert outcome(resolve_runtime, home, value) == outcome(pathlib_runtime, home, value)


def test_home_dir_is_explicit_then_the_environment_then_the_repository(tmp_path, monkeypatch):
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(HOME_ENV, raising=False)
    assert home_dir() == REPO_DIR == str(REPO_ROOT) == str(Path(__file__).resolve().parent.parent.parent)
    monkeypatch.setenv(HOME_ENV, "link")
    for explicit, expected in ((None, real), ("~/link/", real), (tmp_path / "link", real), ("new/./x", tmp_path / "new/x"),
                               ("~", tmp_path)):
        assert home_dir(explicit) == str(expected) == str(Path(explicit or "link").expanduser().resolve())
        assert project_home(explicit) == Path(expected)
    assert os.path.isabs(home_dir("relative"))
