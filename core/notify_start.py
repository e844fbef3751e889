"""Start the fleet's notifier when alerts are configured, without loading it (no Apprise in core).

`start` calls ensure_notifier() after an instance came up (and `resume` should too), so a trader
who set notification URLs never has to remember a second command, and a reboot brings delivery
back with the fleet. The notifier itself is `daemon_manager.py notifier -d` (notify/), one per
home; its pid file is locked for life, so asking again is cheap and never starts a second one.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from core.paths import REPO_ROOT, resolve_runtime
from core.pidfile import is_locked

NOTIFY_ENV = "GRIDBOT_NOTIFY"


def notifier_dir(home: Path) -> Path:
    """logs/.notifier: a dot directory beside the instances' (instance ids start alphanumeric)."""
    return Path(home) / "logs" / ".notifier"


def _has_urls(doc: object, *keys: str) -> bool:
    for key in keys:
        doc = doc.get(key) if isinstance(doc, dict) else None
    return isinstance(doc, dict) and bool(doc.get("urls"))


def configured(home: Path, config_file: str | os.PathLike | None = None) -> bool:
    """Any notification URL for the fleet (fleet.json, GRIDBOT_NOTIFY, .env) or in this config."""
    if os.environ.get(NOTIFY_ENV, "").strip():
        return True
    env_file = Path(home) / ".env"
    if env_file.is_file():
        from dotenv import dotenv_values

        if (dotenv_values(env_file).get(NOTIFY_ENV) or "").strip():
            return True
    for path, keys in ((Path(home) / "config" / "fleet.json", ("notify",)),
                       (config_file and resolve_runtime(Path(home), config_file), ("daemon_config", "notify"))):
        try:
            if path and _has_urls(json.loads(Path(path).read_text()), *keys):
                return True
        except (OSError, ValueError):
            continue
    return False


def ensure_notifier(home: Path, config_file: str | os.PathLike | None = None) -> str | None:
    """Start the notifier if alerts are configured and none runs; a line to print, or None."""
    if is_locked(notifier_dir(home) / "notifier.pid") or not configured(home, config_file):
        return None
    cmd = [sys.executable, str(REPO_ROOT / "core" / "daemon_manager.py"), "--home", str(home), "notifier", "-d"]
    try:
        out = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"warning: alerts are configured but the notifier did not start: {exc}"
    if out.returncode != 0:
        return f"warning: alerts are configured but the notifier did not start: {out.stderr.strip()[-300:]}"
    return out.stdout.strip()
