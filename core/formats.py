"""How the CLI shows an uptime, a path inside the home and a missing value.

Its own module, importing only pathlib: `list` needs these three on every `watch -n 1` run, and taking
them from core/commands.py would load argparse and every other command with them.
"""
from __future__ import annotations

from pathlib import Path


def fmt_uptime(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(seconds)
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def rel(home: Path, path: str | None) -> str:
    if not path:
        return "-"
    try:
        return str(Path(path).relative_to(home))
    except ValueError:
        return path


def dash(value: object) -> str:
    return "-" if value is None else str(value)
