"""The per-instance bearer token that guards a page's write API.

Kept in the instance's log directory, readable by the owner only, so `info ID` can show it to the
trader and no other instance or user can adjust this bot.
"""
from __future__ import annotations

import os
import secrets
from pathlib import Path


def read_token(path: Path) -> str | None:
    try:
        value = path.read_text().strip()
    except FileNotFoundError:
        return None
    return value or None


def ensure_token(path: Path) -> str:
    """Return the instance's token, creating it (mode 0600) on first start."""
    existing = read_token(path)
    if existing:
        return existing
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(24)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(token + "\n")
    os.replace(tmp, path)
    return read_token(path) or token
