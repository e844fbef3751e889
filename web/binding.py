"""Where the page listens: the host, the first free port from the asked one, and web.port.

The socket is bound here (not by Werkzeug, which exits the process when a port is taken) so a
port held by a stranger makes the page move to the next port instead of killing the bot.
"""
from __future__ import annotations

import errno
import ipaddress
import logging
import os
import socket
from pathlib import Path

from core.atomic import write_text_atomic

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
HOST_ENV = "WEB_HOST"
PORT_TRIES = 50


def choose_host(host: str | None) -> str:
    """The caller's host, else WEB_HOST, else loopback; warn when the page leaves loopback."""
    chosen = host or os.environ.get(HOST_ENV) or DEFAULT_HOST
    if not is_loopback(chosen):
        log.warning("web page bound to %s, not loopback: anyone who can reach this host can read it", chosen)
    return chosen


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind_first_free(host: str, port: int, tries: int = PORT_TRIES) -> socket.socket:
    """A listening socket on `port`, or the next port up when a stranger holds it."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    last_error: OSError | None = None
    for candidate in range(port, port + tries) if port else [0]:
        sock = socket.socket(family, socket.SOCK_STREAM)
        # Lets a restarted bot take its port back while old connections sit in TIME_WAIT;
        # Linux still refuses a port that another socket is listening on.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, candidate))
            sock.listen(128)
            if candidate != port:
                log.warning("web port %d is taken, serving on %d instead", port, candidate)
            return sock
        except OSError as exc:
            sock.close()
            if exc.errno != errno.EADDRINUSE:
                raise
            last_error = exc
    raise OSError(errno.EADDRINUSE, f"web ports {port}..{port + tries - 1} on {host} are all taken") from last_error


def write_port_file(path: Path, port: int) -> None:
    """Atomically publish the bound port, so the supervisor never reads half a number."""
    write_text_atomic(path, f"{port}\n")
