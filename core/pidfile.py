"""Pid files that cannot lie: the daemon holds an flock on its pid file for its whole life.

A locked pid file is the truth about a running daemon; the content is only a hint (it may be
stale, empty or garbage after a crash, and must never crash a reader).
"""
from __future__ import annotations

import fcntl
import os
from pathlib import Path

from core.atomic import private_opener


class AlreadyLocked(Exception):
    """Another live process holds the pid file; .pid is what the file says (may be None)."""

    def __init__(self, path: Path, pid: int | None) -> None:
        self.path, self.pid = path, pid
        super().__init__(f"{path} is locked by pid {pid}")


def read_pid(path: Path) -> int | None:
    """The pid a file names, or None for a missing, empty or garbage file."""
    try:
        text = Path(path).read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None
    first = text.split()[0] if text else ""
    return int(first) if first.isdigit() and int(first) > 0 else None


def is_locked(path: Path) -> bool:
    """True if a live process holds the pid file's lock (checked with a shared, non-blocking try)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


class PidLock:
    """Open without truncating, lock, then truncate and write our pid; held until release()."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = private_opener(self.path, os.O_RDWR | os.O_CREAT)  # not through a planted symlink
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise AlreadyLocked(self.path, read_pid(self.path)) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        os.fsync(fd)
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
