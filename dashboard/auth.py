"""Who may do what on the dashboard.

Reading is open on loopback (an SSH tunnel is the access control) once the Host header names a
loopback host or the bound one: a page of another site that rebinds its DNS name to 127.0.0.1
sends its own name as Host and is refused. Writing (start, stop, adjust, ...) needs the fleet
token: either `Authorization: Bearer <token>` (scripts), or a session from the login form held in
an HttpOnly, SameSite=Strict cookie plus a per-session CSRF token the page sends in a header,
which a form posted from another site can never carry.
"""
from __future__ import annotations

import hmac
import secrets
import threading
from pathlib import Path
from urllib.parse import urlsplit

from core.web_token import ensure_token
from web.host_guard import host_name, is_loopback_name

COOKIE = "fleet_session"
CSRF_HEADER = "X-CSRF-Token"
MAX_SESSIONS = 1000


def token_path(home: Path) -> Path:
    """The fleet token (0600), beside the instances' own directories."""
    return home / "logs" / "dashboard" / "fleet.token"


def fleet_token(home: Path) -> str:
    return ensure_token(token_path(home))


def same_secret(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.strip().encode(), expected.encode())


def host_allowed(host_header: str | None, bound_host: str) -> bool:
    """The Host names loopback or the address the dashboard was bound to (any port: a tunnel
    maps its own local port); the bot pages' own guard (web/host_guard.py) reads it the same way."""
    name = host_name(host_header or "")
    return bool(name) and (is_loopback_name(name) or name == host_name(bound_host))


def same_origin(origin: str | None, host_header: str | None) -> bool:
    """An absent Origin (curl, same-origin GET) passes; a present one must be this very host."""
    if origin is None:
        return True
    parts = urlsplit(origin)
    return parts.scheme in ("http", "https") and parts.netloc == (host_header or "")


class Sessions:
    """Logged-in browsers: session id -> CSRF token, in memory (a restart asks for the token again)."""

    def __init__(self) -> None:
        self._csrf: dict[str, str] = {}
        self._lock = threading.Lock()

    def create(self) -> tuple[str, str]:
        sid, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        with self._lock:
            if len(self._csrf) >= MAX_SESSIONS:           # bounded: the oldest session goes
                self._csrf.pop(next(iter(self._csrf)))
            self._csrf[sid] = csrf
        return sid, csrf

    def csrf_for(self, sid: str | None) -> str | None:
        with self._lock:
            return self._csrf.get(sid or "")

    def drop(self, sid: str | None) -> None:
        with self._lock:
            self._csrf.pop(sid or "", None)
