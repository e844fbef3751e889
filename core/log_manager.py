"""Per-instance dated logs: logs/{id}/YYYY-MM-DD/{daemon,bot_stdout,bot_stderr}.log.

Each file is bounded (rotated to .1 .. .N past a size) and dated directories older than
log_retention_days are removed, so a bot left alone for months cannot fill the disk. Dates are
ISO strings from time.strftime (datetime and shutil would cost the lean supervisor 1 MB), paths
are os.path strings (pathlib would cost it 0.7 MB), and a dated directory's name is checked
without `re` (its import is ~10 ms of each supervisor's boot CPU): `is_day`.
"""
from __future__ import annotations

import os
import time

from core.atomic import private_opener

DAY = 86400


def is_day(name: str) -> bool:
    r"""A dated directory's name, YYYY-MM-DD: what r"^\d{4}-\d{2}-\d{2}$" matched (decimal digits),
    but not with a trailing newline, which `$` let through."""
    return len(name) == 10 and name[4] == name[7] == "-" and (name[:4] + name[5:7] + name[8:]).isdecimal()


def today() -> str:
    """The local date as YYYY-MM-DD (ISO strings sort like dates)."""
    return time.strftime("%Y-%m-%d")


def stamp() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S")


class DatedLog:
    """An append-only text log that follows the date and rotates past max_bytes. `paths` is an
    InstancePaths or InstanceFiles: anything with dated_dir(day)."""

    def __init__(self, paths: object, name: str, max_bytes: int, backups: int = 3) -> None:
        self.paths, self.name, self.max_bytes, self.backups = paths, name, max_bytes, backups
        self._day: str | None = None
        self._fh = None

    def _open(self, day: str) -> None:
        self.close()
        d = self.paths.dated_dir(day)
        os.makedirs(d, exist_ok=True)
        self._fh = open(os.path.join(d, self.name), "a", encoding="utf-8", errors="replace", opener=private_opener)
        self._day = day

    def ensure_open(self) -> None:
        """Open (create) today's file, so `tail -f` works before the first line arrives."""
        day = today()
        if day != self._day or self._fh is None:  # a new day, or reopen after a write the disk refused
            self._open(day)

    def write_line(self, line: str) -> None:
        self.ensure_open()
        self._fh.write(line if line.endswith("\n") else line + "\n")
        self._fh.flush()
        if self._fh.tell() >= self.max_bytes:
            self._rotate()

    def _rotate(self) -> None:
        path = self._fh.name
        self.close()
        for i in range(self.backups, 0, -1):
            src = path if i == 1 else f"{path}.{i - 1}"
            if os.path.exists(src):
                os.replace(src, f"{path}.{i}")
        self._open(self._day or today())

    def close(self) -> None:
        """Close the file; what a full disk refused to flush is dropped (the caller counted it)."""
        if self._fh is not None:
            fh, self._fh = self._fh, None
            try:
                fh.close()
            except OSError:
                pass


def remove_old_dirs(log_dir: str | os.PathLike, retention_days: int) -> list[str]:
    """Delete dated dirs older than retention_days (today counts as day 1); returns the days that went."""
    cutoff = time.strftime("%Y-%m-%d", time.localtime(time.time() - (retention_days - 1) * DAY))
    try:
        with os.scandir(log_dir) as entries:
            old = sorted(e.name for e in entries
                         if is_day(e.name) and e.name < cutoff and e.is_dir(follow_symlinks=False))
    except OSError:
        return []
    if old:
        import shutil

        for day in old:
            shutil.rmtree(os.path.join(log_dir, day), ignore_errors=True)
    return old
