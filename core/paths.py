"""Where things live.

Code paths (run.py, the interpreter) resolve against the repository; runtime paths (config/,
logs/, database/) resolve against the project home, so tests and several fleets stay apart.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

from core.home import HOME_ENV, REPO_DIR, home_dir, runtime_path  # noqa: F401 (HOME_ENV: still named from here)
from core.instance_files import (BOT_PID, BOT_STATUS, DAEMON_PID, EVENTS, HEARTBEAT, RECORD, STOP_REASON,
                                 STOP_SECONDS, WEB_PORT, WEB_TOKEN, instance_dir)

REPO_ROOT = Path(REPO_DIR)
RUN_PY = REPO_ROOT / "run.py"

# The environment contract between a supervisor and the bot it runs.
ENV_INSTANCE_ID = "INSTANCE_ID"
ENV_DB_PATH = "DB_PATH"
ENV_WEB_PORT = "WEB_PORT"
ENV_LOG_DIR = "LOG_DIR"
ENV_API_KEY = "EXCHANGE_API_KEY"
ENV_SECRET_KEY = "EXCHANGE_SECRET_KEY"


def project_home(explicit: str | os.PathLike | None = None) -> Path:
    """--home beats GRIDBOT_HOME beats the repository root (core/home.py's rule)."""
    return Path(home_dir(explicit))


def resolve_runtime(home: Path, value: str | os.PathLike) -> Path:
    """A runtime path (log_dir, db_path, a config named relative) against the home."""
    return Path(runtime_path(home, value))


def resolve_code(value: str | os.PathLike) -> Path:
    """A code path (script_path) against the repository."""
    p = Path(value).expanduser()
    return p if p.is_absolute() else (REPO_ROOT / p)


_run_py_real: list[str] = []  # realpath(RUN_PY), resolved once per process


def is_repo_bot(script_path: str | os.PathLike) -> bool:
    """True if a config's script_path is this repository's run.py (symlinks and '..' followed)."""
    if not _run_py_real:
        _run_py_real.append(os.path.realpath(RUN_PY))
    return os.path.realpath(resolve_code(script_path)) == _run_py_real[0]


class InstancePaths:
    """Every file one instance owns inside its log directory.

    A plain immutable class rather than a dataclass: `dataclasses` pulls in `inspect` and `ast`,
    1.3 MB of the supervisor daemon's 15 MB budget.
    """

    __slots__ = ("instance_id", "log_dir")

    def __init__(self, instance_id: str, log_dir: Path) -> None:
        object.__setattr__(self, "instance_id", instance_id)
        object.__setattr__(self, "log_dir", log_dir)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"InstancePaths is immutable (cannot set {name})")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, InstancePaths) and (self.instance_id, self.log_dir) == (other.instance_id, other.log_dir)

    def __hash__(self) -> int:
        return hash((self.instance_id, self.log_dir))

    def __repr__(self) -> str:
        return f"InstancePaths(instance_id={self.instance_id!r}, log_dir={self.log_dir!r})"

    @classmethod
    def for_instance(cls, home: Path, instance_id: str, log_dir: str | os.PathLike | None = None) -> "InstancePaths":
        return cls(instance_id, Path(instance_dir(home, instance_id, log_dir)))

    @property
    def daemon_pid(self) -> Path:
        return self.log_dir / DAEMON_PID

    @property
    def bot_pid(self) -> Path:
        return self.log_dir / BOT_PID

    @property
    def heartbeat(self) -> Path:
        """Touched by the bot every loop; its mtime is the heartbeat."""
        return self.log_dir / HEARTBEAT

    @property
    def web_port_file(self) -> Path:
        """Written by the bot with the port its page really bound."""
        return self.log_dir / WEB_PORT

    @property
    def web_token(self) -> Path:
        """The bearer token for the page's write API (mode 0600)."""
        return self.log_dir / WEB_TOKEN

    @property
    def stop_reason(self) -> Path:
        """Written by the bot just before it ends for a reason the trader must see (a stop-loss,
        a range exit, orders it could not cancel); the supervisor reports it as last_error."""
        return self.log_dir / STOP_REASON

    @property
    def stop_seconds(self) -> Path:
        """Written by the bot: the seconds cancelling its resting orders needs (core/stop_time.py);
        a stop waits that long when it is more than stop_timeout."""
        return self.log_dir / STOP_SECONDS

    @property
    def bot_status(self) -> Path:
        """The bot's published books and state (core/bot_status.py), rewritten every turn."""
        return self.log_dir / BOT_STATUS

    @property
    def record(self) -> Path:
        """This instance's own record (config, claims, desired and current state): the truth the
        shared registry caches."""
        return self.log_dir / RECORD

    @property
    def events(self) -> Path:
        """Append-only JSON lines of what the trader must hear about (core/events.py)."""
        return self.log_dir / EVENTS

    def dated_dir(self, day: str | datetime.date | None = None) -> Path:  # noqa: F821 (not imported: 0.5 MB)
        """logs/{id}/YYYY-MM-DD for a datetime.date, an ISO date string, or today (None).

        Today comes from time.strftime: importing datetime costs the lean supervisor 0.5 MB.
        """
        if day is None:
            day = time.strftime("%Y-%m-%d")
        return self.log_dir / (day if isinstance(day, str) else day.isoformat())
