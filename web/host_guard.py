"""Refuse requests whose Host or Origin is not this machine: the page's defence against DNS rebinding.

A web site the trader visits can point its own name at 127.0.0.1 and then read a page on a local
port as if it were its own origin: the browser sends `Host: evil.example`, and same-origin checks
(engine.io's included: it compares Origin with Host) pass. Only the Host header tells the two
apart, so every request, the Socket.IO handshake included, must name a loopback host or one the
config allows (`daemon_config.web_allowed_hosts`). It wraps the whole WSGI app, because
the Socket.IO server answers /socket.io/ before any Flask hook runs.
"""
from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})
CONFIG_FIELD = "daemon_config.web_allowed_hosts"


def host_name(value: str) -> str | None:
    """The host part of a Host header ('127.0.0.1:5001', '[::1]:5001', 'Example.org.'), lower case."""
    try:
        name = urlsplit(f"//{value.strip()}").hostname
    except ValueError:
        return None
    return name.rstrip(".") if name else None


def is_loopback_name(name: str) -> bool:
    if name in LOOPBACK_NAMES or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class HostGuard:
    """WSGI middleware: 403 unless Host (and Origin, when sent) names loopback or an allowed host."""

    def __init__(self, app: Callable, allowed: Iterable[str] = ()) -> None:
        self.app = app
        self.allowed = frozenset(n for n in (host_name(a) for a in allowed) if n)

    def permits(self, name: str | None) -> bool:
        return bool(name) and (is_loopback_name(name) or name in self.allowed)

    def refusal(self, environ: dict[str, Any]) -> str | None:
        """Why this request is refused, or None."""
        host = environ.get("HTTP_HOST")
        if host is not None and not self.permits(host_name(host)):
            return f"Host {host!r} is not this machine; add it to {CONFIG_FIELD} to serve it"
        origin = environ.get("HTTP_ORIGIN")
        if origin is not None:
            if not self.permits(host_name(origin.partition("://")[2])):
                return f"Origin {origin!r} is not this machine; add its host to {CONFIG_FIELD} to serve it"
        return None

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        reason = self.refusal(environ)
        if reason is None:
            return self.app(environ, start_response)
        body = json.dumps({"error": reason}).encode()
        start_response("403 Forbidden", [("Content-Type", "application/json"), ("Content-Length", str(len(body))),
                                         ("Cache-Control", "no-store")])
        return [body]
