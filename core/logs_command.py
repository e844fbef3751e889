"""`logs [ID ...] [-f] [-n N] [--stderr | --daemon | --all-streams]`: an instance's output, read
from logs/{id}/YYYY-MM-DD/{bot_stdout,bot_stderr,daemon}.log.

A plain `tail -f` of today's file loses the stream twice: at rotation (the file is renamed to .1
and a new one opened) and at midnight (the supervisor moves to a new dated directory). Here the
last lines are gathered across rotated files and earlier days, and following always drains the
file it has open before moving to the newest file of the newest day, so no line is lost or shown
twice. Several sources are merged line by line with an `id |` prefix (coloured on a terminal).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from core.exit_codes import EXIT_OK, EXIT_UNKNOWN
from core.instance_manager import InstanceRegistry
from core.log_manager import is_day
from core.paths import InstancePaths

STREAMS = {"stdout": "bot_stdout.log", "stderr": "bot_stderr.log", "daemon": "daemon.log"}
POLL_S = 0.2
BLOCK = 64 * 1024
PREFIX_COLOURS = ("\x1b[36m", "\x1b[35m", "\x1b[34m", "\x1b[33m", "\x1b[32m", "\x1b[31m")
RESET = "\x1b[0m"


def dated_dirs(log_dir: Path) -> list[Path]:
    """logs/{id}/YYYY-MM-DD directories, oldest first (ISO dates sort as text)."""
    try:
        names = sorted(n for n in os.listdir(log_dir) if is_day(n))
    except OSError:
        return []
    return [log_dir / n for n in names]


def files_in_order(log_dir: Path, name: str) -> list[Path]:
    """Every file of one stream, oldest line first: each day's name.N .. name.1, then name."""
    out = []
    for day in dated_dirs(log_dir):
        rotated = sorted((p for p in day.glob(f"{name}.*") if p.suffix[1:].isdigit()),
                         key=lambda p: int(p.suffix[1:]), reverse=True)
        out += rotated + ([day / name] if (day / name).is_file() else [])
    return out


def newest_file(log_dir: Path, name: str) -> Path | None:
    """The file the supervisor writes now: the stream's file in the newest day that has one."""
    for day in reversed(dated_dirs(log_dir)):
        if (day / name).is_file():
            return day / name
    return None


def tail_lines(path: Path, n: int, end: int | None = None) -> list[str]:
    """The last n lines of a file (of its first `end` bytes), read from the end in blocks."""
    try:
        with open(path, "rb") as fh:
            pos = fh.seek(0, os.SEEK_END) if end is None else end
            data = b""
            while pos > 0 and data.count(b"\n") <= n:
                step = min(BLOCK, pos)
                pos -= step
                fh.seek(pos)
                data = fh.read(step) + data
    except OSError:
        return []
    lines = data.decode("utf-8", "replace").splitlines()
    return lines[-n:] if n else []


def last_lines(log_dir: Path, name: str, n: int, current_end: int | None = None) -> list[str]:
    """The stream's last n lines across rotated files and earlier days, newest file cut at current_end."""
    out: list[str] = []
    files = files_in_order(log_dir, name)
    for i, path in enumerate(reversed(files)):
        if len(out) >= n:
            break
        out = tail_lines(path, n - len(out), current_end if i == 0 else None) + out
    return out


class Follower:
    """One stream of one instance, followed across rotation and across days."""

    def __init__(self, log_dir: Path, name: str) -> None:
        self.log_dir, self.name = log_dir, name
        self.path = newest_file(log_dir, name)
        self.fh = open(self.path, "rb") if self.path else None
        self.end = self.fh.seek(0, os.SEEK_END) if self.fh else None  # where the shown tail stops
        self.partial = b""

    def poll(self) -> list[str]:
        """Complete lines written since the last poll, through every file rotated or begun since."""
        lines = self._drain()
        newest = newest_file(self.log_dir, self.name)
        if newest is None or (self.fh is not None and newest == self.path and self._same_inode(newest)):
            return lines
        lines += self._drain()  # what was written before the rename or the new day
        for path in self._after_mine():
            if self.fh:
                self.fh.close()
            try:
                self.path, self.fh = path, open(path, "rb")
            except OSError:  # rotated away between listing and opening: the next poll catches up
                continue
            lines += self._drain()
        return lines

    def _after_mine(self) -> list[Path]:
        """The files written after the one held open, oldest first; just the newest when it is gone."""
        order = files_in_order(self.log_dir, self.name)
        if self.fh is not None:
            mine = os.fstat(self.fh.fileno()).st_ino
            for i, path in enumerate(order):
                if self._same_inode(path, mine):
                    return order[i + 1:]
        return order[-1:]

    def _same_inode(self, path: Path, ino: int | None = None) -> bool:
        try:
            return os.stat(path).st_ino == (ino if ino is not None else os.fstat(self.fh.fileno()).st_ino)
        except OSError:
            return False

    def _drain(self) -> list[str]:
        if self.fh is None:
            return []
        if os.fstat(self.fh.fileno()).st_size < self.fh.tell():  # truncated in place: start again
            self.fh.seek(0)
        data = self.partial + self.fh.read()
        *complete, self.partial = data.split(b"\n")
        return [line.decode("utf-8", "replace") for line in complete]


def _log_dir(home: Path, registry: InstanceRegistry, iid: str) -> Path | None:
    rec = registry.load().get(iid) or {}
    log_dir = InstancePaths.for_instance(home, iid, rec.get("log_dir")).log_dir
    return log_dir if rec or log_dir.is_dir() else None


def _ids(home: Path, args: argparse.Namespace, registry: InstanceRegistry) -> list[str]:
    ids = list(args.ids) + list(args.instance_id or [])
    if args.config:
        from core.config_manager import ConfigManager

        ids.append(ConfigManager(home).instance_id_of(args.config))
    return list(dict.fromkeys(ids)) or [r["instance_id"] for r in registry.list_instances()]


def cmd_logs(home: Path, args: argparse.Namespace) -> int:
    registry = InstanceRegistry(home)
    streams = list(STREAMS) if args.all_streams else ["stderr" if args.stderr else "daemon" if args.daemon else "stdout"]
    sources: list[tuple[str, Path, str]] = []
    for iid in _ids(home, args, registry):
        log_dir = _log_dir(home, registry, iid)
        if log_dir is None:
            print(f"{iid}: unknown instance (no record, no {home / 'logs' / iid})", file=sys.stderr)
            return EXIT_UNKNOWN
        sources += [(iid if len(streams) == 1 else f"{iid} {s}", log_dir, STREAMS[s]) for s in streams]
    if not sources:
        print("no live instances (name one: logs ID)", file=sys.stderr)
        return EXIT_OK
    colour = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
    prefixes = [("" if len(sources) == 1 else
                 f"{PREFIX_COLOURS[i % len(PREFIX_COLOURS)]}{label} |{RESET} " if colour else f"{label} | ")
                for i, (label, _, _) in enumerate(sources)]
    followers = [Follower(log_dir, name) if args.follow else None for _, log_dir, name in sources]
    for prefix, (_, log_dir, name), follower in zip(prefixes, sources, followers):
        for line in last_lines(log_dir, name, args.lines, follower.end if follower else None):
            print(prefix + line)
    sys.stdout.flush()
    if not args.follow:
        return EXIT_OK
    try:
        while True:
            for prefix, follower in zip(prefixes, followers):
                for line in follower.poll():
                    print(prefix + line)
            sys.stdout.flush()
            time.sleep(POLL_S)
    except KeyboardInterrupt:
        return EXIT_OK
