"""The project home and the runtime paths inside it, as plain os.path strings.

--home beats GRIDBOT_HOME beats the repository root, and a runtime path (log_dir, db_path, a config
named relative) is taken against the home unless it is absolute (after ~). core/paths.py hands the
same to everyone else as pathlib Paths. `list`, which `watch -n 1` runs, uses these strings:
importing pathlib loads fnmatch, re, enum, urllib.parse and ipaddress, about 20 ms of a `list`
whatever the fleet's size (issue 12 goal 6).
"""
from __future__ import annotations

import os

HOME_ENV = "GRIDBOT_HOME"
REPO_DIR = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))


def expand_user(path: str | os.PathLike) -> str:
    """Path(path).expanduser() as a string: a first name ~ or ~user (pathlib skips a leading './'
    to find it) becomes that home; a ~user that does not exist is refused with pathlib's
    RuntimeError rather than taken for a directory of that name."""
    text = os.fspath(path)
    names = [] if text.startswith("/") else [n for n in text.split("/") if n not in ("", ".")]
    if not names or not names[0].startswith("~"):
        return text
    home = os.path.expanduser(names[0])
    if home.startswith("~"):
        raise RuntimeError("Could not determine home directory.")
    return os.path.join(home, *names[1:])


def home_dir(explicit: str | os.PathLike | None = None) -> str:
    """The home, absolute with its symlinks resolved: --home beats GRIDBOT_HOME beats the repository."""
    chosen = explicit or os.environ.get(HOME_ENV) or REPO_DIR
    return os.path.realpath(expand_user(chosen))


def runtime_path(home: str | os.PathLike, value: str | os.PathLike) -> str:
    """A runtime path against the home (an absolute one, or one starting with ~, stays itself)."""
    return os.path.join(home, expand_user(value))
