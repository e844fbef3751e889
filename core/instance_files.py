"""The names of one instance's files, and those files as plain os.path strings for the supervisor.

core/paths.py's InstancePaths hands everyone else these names as pathlib Paths; the supervisor,
one per instance, uses this string view because pathlib (with fnmatch, ntpath and urllib.parse)
costs each of them 0.7 MB, and `list` because it costs each run ~20 ms. The names (and the rule
for an instance id, which names its directory) live here once; InstancePaths takes them from here.
"""
from __future__ import annotations

import os
import time

from core.home import runtime_path

DAEMON_PID = "daemon.pid"
BOT_PID = "bot.pid"
HEARTBEAT = "heartbeat"          # touched by the bot every loop (core/heartbeat.py)
WEB_PORT = "web.port"            # the port the bot's page really bound
WEB_TOKEN = "web.token"
STOP_REASON = "stop_reason"      # the bot's last word before an end the trader must see
STOP_SECONDS = "stop_seconds"    # what cancelling its orders needs (core/stop_time.py)
BOT_STATUS = "bot_status.json"   # core/bot_status.py
RECORD = "instance.json"         # core/instance_record.py
EVENTS = "events.jsonl"          # core/events.py

_ID_FIRST = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
_ID_REST = _ID_FIRST | {"_", ".", "-"}


def is_instance_id(name: str) -> bool:
    """1 to 64 ASCII letters, digits, '_', '.' or '-', the first a letter or digit (it names a
    directory: no '/', no '..', no newline). Checked by hand rather than with a regex because `re`
    (with `enum`) would be a fifth of each `list`; core/config_manager.py's ID_RULE tells the trader."""
    return 0 < len(name) <= 64 and name[0] in _ID_FIRST and all(c in _ID_REST for c in name)


class InstanceFiles:
    """logs/{id}/... as strings: the attributes InstancePaths has as properties, same names."""

    __slots__ = ("instance_id", "log_dir", "daemon_pid", "bot_pid", "heartbeat", "web_port_file", "stop_reason",
                 "stop_seconds", "bot_status", "record", "events")

    def __init__(self, instance_id: str, log_dir: str) -> None:
        join = os.path.join
        self.instance_id, self.log_dir = instance_id, log_dir
        self.daemon_pid, self.bot_pid = join(log_dir, DAEMON_PID), join(log_dir, BOT_PID)
        self.heartbeat, self.web_port_file = join(log_dir, HEARTBEAT), join(log_dir, WEB_PORT)
        self.stop_reason, self.stop_seconds = join(log_dir, STOP_REASON), join(log_dir, STOP_SECONDS)
        self.bot_status, self.record = join(log_dir, BOT_STATUS), join(log_dir, RECORD)
        self.events = join(log_dir, EVENTS)

    @classmethod
    def for_instance(cls, home: str | os.PathLike, instance_id: str,
                     log_dir: str | os.PathLike | None = None) -> InstanceFiles:
        return cls(instance_id, instance_dir(home, instance_id, log_dir))

    def dated_dir(self, day: str | None = None) -> str:
        """logs/{id}/YYYY-MM-DD for an ISO date string, or today (None)."""
        return os.path.join(self.log_dir, day or time.strftime("%Y-%m-%d"))


def instance_dir(home: str | os.PathLike, instance_id: str, log_dir: str | os.PathLike | None = None) -> str:
    """logs/{id} in the home, unless the record names another log_dir (InstancePaths' rule too)."""
    return runtime_path(home, log_dir or os.path.join("logs", instance_id))
