"""The heartbeat protocol: the bot touches a file every loop; the supervisor reads its mtime.

A file's mtime costs the bot one syscall per loop and works for any program in any language,
so a supervised program opts in to hang detection simply by touching $LOG_DIR/heartbeat.
"""
from __future__ import annotations

import os
import time

from core.atomic import private_opener
from core.ready_fd import notify_supervisor


def beat(path: str | os.PathLike) -> None:
    """Record that the loop turned just now; the first beat also tells the supervisor we are ready
    (core/ready_fd.py), so it need not find out by polling this file."""
    try:
        os.utime(path, follow_symlinks=False)
    except FileNotFoundError:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        os.close(private_opener(path, os.O_WRONLY | os.O_CREAT))
    notify_supervisor(ready=True)


def last_beat(path: str | os.PathLike) -> float | None:
    """Wall-clock time of the last beat, or None if the bot never beat."""
    try:
        return os.stat(path).st_mtime
    except FileNotFoundError:
        return None


def age(path: str | os.PathLike, since: float | None = None) -> float | None:
    """Seconds since the last beat; None if there was none (at or after `since`, if given)."""
    ts = last_beat(path)
    if ts is None or (since is not None and ts < since):
        return None
    return max(0.0, time.time() - ts)
