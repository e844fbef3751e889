"""The per-instance bearer token that guards a page's write API.

Kept in the instance's log directory, readable by the owner only, so `info ID` can show it to the
trader and no other instance or user can adjust this bot.
"""
from __future__ import annotations

import secrets
from pathlib import Path

from core.atomic import write_text_atomic


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
    token = secrets.token_urlsafe(24)
    write_text_atomic(path, token + "\n", mode=0o600)
    return read_token(path) or token
