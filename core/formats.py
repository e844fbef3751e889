"""How the CLI shows an uptime, a path inside the home and a missing value.

Its own module, importing nothing: `list` needs these three on every `watch -n 1` run, and taking
them from core/commands.py would load argparse and every other command with them (and pathlib
would load re, enum and urllib.parse: rel() compares the parts itself).
"""
from __future__ import annotations

import os


def fmt_uptime(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(seconds)
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def _parts(path: str) -> list[str]:
    """PurePosixPath(path).parts: the root ('/', or '//', which POSIX keeps apart), then every name
    that is neither empty nor '.'."""
    names = path.lstrip("/")
    slashes = len(path) - len(names)
    root = [] if not slashes else ["//"] if slashes == 2 else ["/"]
    return root + [n for n in names.split("/") if n not in ("", ".")]


def rel(home: str | os.PathLike, path: str | None) -> str:
    """path inside the home as Path(path).relative_to(home) writes it, else path as it is."""
    if not path:
        return "-"
    parts, base = _parts(path), _parts(os.fspath(home))
    if parts[:len(base)] != base:
        return path
    return "/".join(parts[len(base):]) or "."


def dash(value: object) -> str:
    return "-" if value is None else str(value)
