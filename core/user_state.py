"""The per-user directory outside every project home: what must be one per machine user, not one
per home (the account locks, the shared request budget of a key).

$GRIDBOT_STATE_DIR when set (tests point it at a temp dir), else $XDG_STATE_HOME/gridbot, else
~/.local/state/gridbot. Not $XDG_RUNTIME_DIR: logind removes it when the user's last SSH session
ends, while the fleet keeps trading, and a lock file deleted under its holder protects nothing.
Created private (0700): it names the accounts a user trades.
"""
from __future__ import annotations

import os
from pathlib import Path

STATE_ENV = "GRIDBOT_STATE_DIR"


def user_state_dir() -> Path:
    chosen = os.environ.get(STATE_ENV)
    if chosen:
        path = Path(chosen).expanduser()
    else:
        base = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
        path = Path(base) / "gridbot"
    if not path.is_dir():
        path.mkdir(parents=True, exist_ok=True)
        os.chmod(path, 0o700)  # mkdir's own mode is cut by the umask
    return path
