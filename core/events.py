"""What the trader must hear about, typed once: kinds, the event record, and the per-instance log.

The supervisor and the bot append (one JSON line per event to `logs/{id}/events.jsonl`, fsync'd);
the supervisor also rotates that file past MAX_BYTES (rotate_if_over); the notifier (notify/)
reads it across rotations (read_rotating). Emitting is decoupled from delivery, as in
supervisor's events.py: the supervisor never waits on a network and never imports Apprise.

An event is {"id", "kind", "instance", "time", "payload"}. `id` is random and unique, so a
reader that sees a line twice (a crash between sending and saving its offset) de-duplicates.
Only the standard library, and no pathlib: this module is loaded by the lean supervisor daemon,
so JSON goes through core/cjson.py (json's text, without the `re` and `collections` json loads) and
deque and Callable come from the C modules collections takes them from.
"""
from __future__ import annotations

import os
import time
from _collections import deque
from _collections_abc import Callable

from core import cjson

# -- kinds: name -> (on by default, what it means) ---------------------------------------------
FATAL = "fatal"                    # reason, stderr_tail
EXITED = "exited"                  # state (exited|stopped), stop_reason
RESTART_LOOP = "restart_loop"      # restarts, window_s, last
MEMORY_RESTART = "memory_restart"  # reason
HANG_RESTART = "hang_restart"      # reason
UNRESPONSIVE = "unresponsive"      # reason (a supervisor that stopped checking in; core-a's state)
ORPHAN_ENDED = "orphan_ended"      # reason, bot_pid (an orphaned bot group ended; core-a's state)
WAITING = "waiting"                # since (unix s), waited_s, message
TRADING = "trading"                # back to trading after a WAITING alert: waited_s
RESUMED = "resumed"                # fleet event: started, failed ({id: reason}), skipped, digest (lines)
FILL = "fill"                      # side, price, qty (the bot's; off by default)
DAILY_SUMMARY = "daily_summary"    # the notifier's own, from bot_status.json (off by default)
TEST = "test"                      # notify-test
RELOADED = "reloaded"              # changes, message (`reload` applied a config live: core/reload.py)
RELOAD_FAILED = "reload_failed"    # reason, changes, message (refused, rolled back or no answer)

KINDS: dict[str, tuple[bool, str]] = {
    FATAL: (True, "the instance gave up (fatal)"),
    EXITED: (True, "the bot ended with a stop reason (stop-loss, take-profit, range exit, orders left)"),
    RESTART_LOOP: (True, "restart loop (3 restarts in 10 minutes)"),
    MEMORY_RESTART: (True, "restarted over memory_limit_mb"),
    HANG_RESTART: (True, "restarted because its loop hung"),
    UNRESPONSIVE: (True, "the supervisor stopped checking in"),
    ORPHAN_ENDED: (True, "an orphaned bot group was ended"),
    WAITING: (True, "waiting for the exchange for more than 5 minutes"),
    TRADING: (True, "back to trading after waiting"),
    RESUMED: (True, "the fleet resumed after a reboot"),
    FILL: (False, "each fill"),
    DAILY_SUMMARY: (False, "daily summary per instance and for the fleet"),
    TEST: (True, "a test message (notify-test)"),
    RELOADED: (False, "a config reload applied live"),
    RELOAD_FAILED: (True, "a config reload refused or not applied"),
}
DEFAULT_KINDS = frozenset(k for k, (on, _) in KINDS.items() if on)

FLEET = "(fleet)"  # the `instance` of fleet-wide events: not a valid instance id, so never one's name
MAX_LINE = 3500  # < PIPE_BUF: one O_APPEND write of a line is never interleaved with another's
TAIL_CHARS = 300  # per stderr line kept in an event
# Rotation: past MAX_BYTES a file becomes `NAME.1` (replacing the last one) and a fresh NAME starts,
# so an events file and its one predecessor take at most ~2 MiB, however often a bot fills.
# GRIDBOT_EVENTS_MAX_BYTES (read once, at import) lowers it for tests; the supervisor inherits it.
MAX_BYTES_ENV = "GRIDBOT_EVENTS_MAX_BYTES"
_SET_CAP = os.environ.get(MAX_BYTES_ENV, "")
MAX_BYTES = int(_SET_CAP) if _SET_CAP.isdigit() and int(_SET_CAP) > 0 else 1 << 20  # bad text: the default


def fleet_events_path(home: str | os.PathLike) -> Path:  # noqa: F821 (pathlib: not for the supervisor)
    """Fleet-wide events (resumed): a dot name beside the instance directories (ids start alphanumeric)."""
    from pathlib import Path

    return Path(home) / "logs" / ".fleet.events.jsonl"


def new_event(kind: str, instance: str, payload: dict) -> dict:
    return {"id": os.urandom(12).hex(), "kind": kind, "instance": instance, "time": round(time.time(), 3),
            "payload": payload}


def _line(event: dict) -> bytes:
    """One JSON line under MAX_LINE: long text fields are cut first, so the event is never lost."""
    raw = cjson.dumps(event, separators=(",", ":"), default=str)
    if len(raw) > MAX_LINE:
        payload = {k: (v[:TAIL_CHARS] if isinstance(v, str) else
                       [str(x)[:TAIL_CHARS] for x in v[-5:]] if isinstance(v, list) else v)
                   for k, v in event["payload"].items()}
        raw = cjson.dumps({**event, "payload": payload}, separators=(",", ":"), default=str)[:MAX_LINE]
        if not raw.endswith("}"):  # still too long: keep what identifies the event
            raw = cjson.dumps({**event, "payload": {"truncated": True}}, separators=(",", ":"))
    return (raw + "\n").encode()


def append_to(path: str | os.PathLike, event: dict, on_error: Callable[[str], object] | None = None) -> bool:
    """Append one event line, fsync'd; on failure tell on_error (a log) and return False, never raise."""
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        try:
            os.write(fd, _line(event))
            os.fsync(fd)
        finally:
            os.close(fd)
        return True
    except Exception as exc:  # noqa: BLE001 - an alert must never take the supervisor down
        if on_error is not None:
            try:
                on_error(f"cannot append {event.get('kind')} event to {path}: {exc!r}")
            except Exception:  # noqa: BLE001
                pass
        return False


def append_event(paths, kind: str, on_error: Callable[[str], object] | None = None, **payload: object) -> bool:
    """The supervisor's one call per transition: logs/{id}/events.jsonl gets one event of `kind`."""
    return append_to(paths.events, new_event(kind, paths.instance_id, payload), on_error)


def append_fleet_event(home: str | os.PathLike, kind: str, on_error: Callable[[str], object] | None = None,
                       **payload: object) -> bool:
    """A fleet-wide event (resume after a reboot), for the notifier like any instance's."""
    return append_to(fleet_events_path(home), new_event(kind, FLEET, payload), on_error)


def rotated_path(path: str | os.PathLike) -> str:
    """Where rotate_if_over moves a full events file: the one predecessor kept beside it."""
    return os.fspath(path) + ".1"


def rotate_if_over(path: str | os.PathLike, on_error: Callable[[str], object] | None = None,
                   max_bytes: int | None = None) -> bool:
    """Rename `path` to `path.1` (replacing it) once it holds more than max_bytes (MAX_BYTES).

    Only the file's ONE rotator may call this: two rotating at once could each rename a file over
    the `.1` the other just made, and the events in it would be gone. An instance's events.jsonl
    is rotated by its supervisor (it holds the instance lock, at each health check); the fleet's
    by the notifier (one per home, its pid file flock'd). Appenders need no lock: each event is one
    O_APPEND write on a freshly opened path, so a write racing the rename lands whole in the old
    file (now `.1`) or the new one, and read_rotating reads both. Never raises.
    """
    try:
        if os.stat(path).st_size <= (MAX_BYTES if max_bytes is None else max_bytes):
            return False
        os.replace(path, rotated_path(path))
        return True
    except FileNotFoundError:
        return False
    except Exception as exc:  # noqa: BLE001 - like append_to: a full disk must not take the caller down
        if on_error is not None:
            on_error(f"cannot rotate {path}: {exc!r}")
        return False


def read_events(path: str | os.PathLike, offset: int = 0, limit_bytes: int = 1 << 20) -> tuple[list[dict], int]:
    """Complete events after byte `offset`, and the offset after the last complete line read.

    A half-written last line is left for the next read; a line that is not an event is skipped
    (its bytes are consumed, so one bad line never blocks the file). A file shorter than the
    offset was replaced: read it from the start.
    """
    try:
        with open(path, "rb") as fh:
            return _read_open(fh, offset, limit_bytes)
    except OSError:
        return [], offset


def read_rotating(path: str | os.PathLike, cursor: dict | int | None,
                  limit_bytes: int = 1 << 20) -> tuple[list[dict], dict]:
    """New events of a file its rotator may have renamed to `.1` since the last call, and the new cursor.

    The cursor (JSON-able; keep what this returned) names the file its offset belongs to:
    {"inode", "offset", "rotated": [inode, offset] | None}. When `path` is another inode than the
    cursor's, the cursor's file was rotated: the rest of `.1` is read first from the old offset,
    then the new file from 0. `.1` stays followed while it is that inode, so an event a writer
    appends to it after the rename (it opened the path just before) is read too. A bare offset
    (an int, or a cursor without inode: saved before rotation existed) is taken to be the current
    file's. Only a file rotated twice between two calls loses what the replaced `.1` still held.
    """
    cur = dict(cursor) if isinstance(cursor, dict) else {"inode": None, "offset": int(cursor or 0)}
    events: list[dict] = []
    fh = _open(path)
    try:
        inode = os.fstat(fh.fileno()).st_ino if fh is not None else None
        if cur.get("inode") is not None and cur["inode"] != inode:
            cur = {"inode": inode, "offset": 0, "rotated": [cur["inode"], int(cur.get("offset") or 0)]}
        cur["inode"] = inode
        behind = False  # more than limit_bytes of `.1` left: read it all before the newer file
        if cur.get("rotated"):
            got, cur["rotated"], behind = _read_rotated(rotated_path(path), cur["rotated"], limit_bytes)
            events += got
        if fh is not None and not behind:
            got, cur["offset"] = _read_open(fh, int(cur.get("offset") or 0), limit_bytes)
            events += got
    finally:
        if fh is not None:
            fh.close()
    return events, cur


def _open(path: str | os.PathLike):
    try:
        return open(path, "rb")
    except OSError:
        return None


def _read_rotated(path: str, rotated: list, limit_bytes: int) -> tuple[list[dict], list | None, bool]:
    """The rest of the rotated file, if `.1` is still that inode: (events, its cursor or None, more left)."""
    fh = _open(path)
    if fh is None:
        return [], None, False
    with fh:
        st = os.fstat(fh.fileno())
        if st.st_ino != rotated[0]:
            return [], None, False  # a later rotation replaced it
        got, offset = _read_open(fh, int(rotated[1]), limit_bytes)
        return got, [rotated[0], offset], st.st_size - int(rotated[1]) > limit_bytes


def _read_open(fh, offset: int, limit_bytes: int) -> tuple[list[dict], int]:
    """read_events on an open file (so its inode and its bytes are the same file's)."""
    size = os.fstat(fh.fileno()).st_size
    if size < offset:
        offset = 0
    fh.seek(offset)
    raw = fh.read(limit_bytes)
    end = raw.rfind(b"\n")
    if end < 0:
        return [], offset
    out = []
    for line in raw[:end].split(b"\n"):
        try:
            ev = cjson.loads(line)
        except ValueError:
            continue
        if isinstance(ev, dict) and isinstance(ev.get("id"), str) and ev.get("kind") in KINDS:
            ev.setdefault("payload", {})
            out.append(ev)
    return out, offset + end + 1


class RestartWindow:
    """Restart loop detection: `count` restarts within `window_s` seconds fire once, then start over.

    Quick failures already end in `fatal` after max_restart_attempts (its own alert): a loop that
    will turn fatal within `count` more quick failures is left to that one alert, so a crash loop
    gives the trader one message, not two.
    """

    def __init__(self, count: int = 3, window_s: float = 600.0) -> None:
        self.count, self.window_s = count, window_s
        self.times: deque[float] = deque()

    def add(self, now: float, quick_failures_left: int | None = None) -> bool:
        """Note a restart; quick_failures_left: how many more quick failures fatal allows (None: the run was stable)."""
        self.times.append(now)
        while self.times and now - self.times[0] > self.window_s:
            self.times.popleft()
        if len(self.times) < self.count or (quick_failures_left is not None and quick_failures_left < self.count):
            return False
        self.times.clear()
        return True


class WaitingWatch:
    """From the bot's published state: one WAITING event after `after_s` of waiting, one TRADING back.

    Fed the bot_status dict on each health check; returns (kind, payload) when something is news.
    """

    def __init__(self, after_s: float = 300.0) -> None:
        self.after_s = after_s
        self.since: float | None = None
        self.alerted = False

    def check(self, status: dict | None, now: float) -> tuple[str, dict] | None:
        state = status.get("state") if isinstance(status, dict) else None
        if state == "waiting":
            if self.since is None:
                self.since = now
            if not self.alerted and now - self.since >= self.after_s:
                self.alerted = True
                return WAITING, {"since": round(self.since, 3), "waited_s": round(now - self.since),
                                 "message": str(status.get("message") or "")[:TAIL_CHARS]}
            return None
        if state is None:
            return None  # no news (unreadable file, bot restarting): keep what we know
        waited, alerted = (now - self.since) if self.since is not None else 0.0, self.alerted
        self.since, self.alerted = None, False
        if alerted and state == "trading":
            return TRADING, {"waited_s": round(waited)}
        return None
