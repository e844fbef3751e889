"""A bounded page server: the page may refuse a visitor, it must never grow the bot.

Werkzeug's threaded server starts one thread per connection, with no limit and no timeout:
300 idle connections and 300 websockets took a bot from 4 to 1,505 threads and 95 MB, on the
way to a memory-limit restart of a bot that was trading fine. Here a connection beyond
`max_connections` is answered 503 at once and closed, and a connection that sends nothing for
`idle_timeout` seconds is dropped (Socket.IO pings every 25 s, so a live websocket never is).
"""
from __future__ import annotations

import logging
import socket
import threading
from typing import Any

from werkzeug.serving import ThreadedWSGIServer, WSGIRequestHandler

MAX_CONNECTIONS = 32  # a page open in a browser uses about 7 (6 HTTP + 1 websocket)
IDLE_TIMEOUT = 60.0
_BUSY_BODY = b'{"error": "too many connections to this page; try again soon"}\n'
BUSY = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 5\r\n"
        b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(_BUSY_BODY), _BUSY_BODY))


class QuietRequestHandler(WSGIRequestHandler):
    """Werkzeug's request handler, minus the access line its logger would drop anyway.

    start_web sets the werkzeug logger to WARNING (no line per poll), but Werkzeug still builds
    each line before the logger drops it: a URL decode and a date per request, and at the first
    request (a bot's /health) the import of colorama for a handler. Errors are logged as before.
    """

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        if logging.getLogger("werkzeug").isEnabledFor(logging.INFO):
            super().log_request(code, size)


class CappedWSGIServer(ThreadedWSGIServer):
    """ThreadedWSGIServer with at most `max_connections` connection threads at a time."""

    def __init__(self, *args: Any, max_connections: int = MAX_CONNECTIONS, idle_timeout: float = IDLE_TIMEOUT,
                 **kwargs: Any) -> None:
        kwargs.setdefault("handler", QuietRequestHandler)
        super().__init__(*args, **kwargs)
        self.idle_timeout = idle_timeout
        self._slots = threading.BoundedSemaphore(max_connections)

    def process_request(self, request: socket.socket, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self._refuse(request)
            return
        try:
            request.settimeout(self.idle_timeout)
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: socket.socket, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def _refuse(self, request: socket.socket) -> None:
        """503 and close, on the accepting thread: a few bytes into a fresh socket never block long."""
        try:
            request.settimeout(1.0)
            request.sendall(BUSY)
        except OSError:
            pass
        finally:
            self.shutdown_request(request)
