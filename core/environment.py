"""What the supervisor and the bot inherit from the shell that started them: an allow-list.

The CLI runs in a trader's login shell, full of credentials for other things (cloud keys, a
database password, another bot's key). A deny-list by name (KEY, SECRET, TOKEN, ...) let 6 of 8
planted credentials through to every bot, and the supervisor kept all 8, readable in
/proc/PID/environ for as long as it lives. So a process we start gets only what it needs:

- from the shell: PATH, HOME, LANG, TZ and LC_*, and where the per-user state lives
  (GRIDBOT_STATE_DIR, XDG_STATE_HOME: the account locks and a key's shared request budget must be
  the same directory for the CLI, the supervisor and the bot), GRIDBOT_EVENTS_MAX_BYTES (the events
  files' rotation size, core/events.py), plus the names the config lists in
  `daemon_config.inherit_environment` (a proxy, a CA bundle, ...);
- the contract variables (core/paths.py) and GRIDBOT_HOME, PYTHONUNBUFFERED;
- the config's own `environment`, the ${VAR}s it uses and its exchange keys (core/daemon.py).
"""
from __future__ import annotations

import os
import stat
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

from core.events import MAX_BYTES_ENV
from core.paths import HOME_ENV
from core.user_state import STATE_ENV

INHERITED = frozenset({"PATH", "HOME", "LANG", "TZ", STATE_ENV, "XDG_STATE_HOME", MAX_BYTES_ENV})
INHERITED_PREFIX = "LC_"


def inherited(source: Mapping[str, str], also: Iterable[str] = ()) -> dict[str, str]:
    """The variables of `source` a started process may keep: the allow-list plus `also`."""
    extra = set(also)
    return {k: v for k, v in source.items() if k in INHERITED or k.startswith(INHERITED_PREFIX) or k in extra}


def supervisor_environment(source: Mapping[str, str], home: Path) -> dict[str, str]:
    """The supervisor's own environment: it needs no secret (the bot's arrive through a pipe)."""
    return {**inherited(source), HOME_ENV: str(home)}


def detach_with_allowlist(home: Path, also: Iterable[str] = ()) -> None:
    """Before a command detaches a long-lived service (the notifier, the dashboard): re-exec this
    very command (same pid, argv, fds and cwd) with only the allow-list, `also` and GRIDBOT_HOME,
    because /proc/PID/environ keeps the environment a process was exec'd with, whatever it later
    deletes from os.environ. Returns at once when the environment holds nothing more (so the
    re-exec'd command goes on: it never loops)."""
    env = {**inherited(os.environ, also), HOME_ENV: str(home)}
    if env == dict(os.environ):
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, sys.orig_argv, env)


def dotenv_warning(home: Path) -> str | None:
    """A warning when the home's .env (where the secrets live) is readable or writable by others."""
    env_file = Path(home) / ".env"
    try:
        mode = env_file.stat().st_mode
    except OSError:
        return None
    if not mode & (stat.S_IRWXG | stat.S_IRWXO):
        return None
    return (f"warning: {env_file} is mode {stat.filemode(mode)}: other local users can read your keys; "
            f"run `chmod 600 {env_file}`")

