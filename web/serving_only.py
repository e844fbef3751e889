"""The page's Socket.IO server (Flask-SocketIO), built when the first Socket.IO request arrives, serving only.

Why lazily: Flask-SocketIO, python-socketio and python-engineio (with the WebSocket stack
simple-websocket, wsproto and h11) are about a third of the page's import time, and the page
answers /health and its JSON API without them. A bot whose page nobody opens never loads them; the
first browser waits for them once (about 0.1 s). Before that server exists nobody is connected, so
an emit has nobody to reach and is dropped.

Why serving only: `import socketio` (and `import engineio`) also imports their HTTP and
WebSocket *clients*, which pull in `requests` and `aiohttp` when they are installed (ccxt installs
both) and `websocket` (websocket-client, the tests' page client). The page only serves, so a
paper bot paid about 15 MB of RSS for code it never runs. While Flask-SocketIO is first imported,
those packages are marked unimportable, which engineio handles (it falls back to `None` for a
missing client library); the marks are removed at once, so a real-exchange bot's ccxt (imported
before the page starts) still has them. The marks stand while a request thread makes the server,
after start-up; no bot code imports those three then (a paper bot never does, and a ccxt bot loaded
requests and aiohttp at start, which are then left unmarked).
"""
from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterable
from typing import Any

_CLIENT_ONLY = ("requests", "aiohttp", "websocket")
SOCKETIO_PATH = "/socket.io/"

Wsgi = Callable[[dict, Callable], Iterable[bytes]]


def _import_flask_socketio() -> type:
    blocked = [name for name in _CLIENT_ONLY if name not in sys.modules]
    for name in blocked:
        sys.modules[name] = None  # type: ignore[assignment]  # makes `import name` raise ImportError
    try:
        from flask_socketio import SocketIO
    finally:
        for name in blocked:
            if sys.modules.get(name, 0) is None:
                del sys.modules[name]
    return SocketIO


class LazySocketIO:
    """WSGI: /socket.io/ to Flask-SocketIO's server, made on its first request; the rest to `app`'s routes.

    Mount it inside the Host guard: `app.wsgi_app = HostGuard(LazySocketIO(app), hosts)`."""

    def __init__(self, app: Any, **options: Any) -> None:
        self._app = app
        self._routes: Wsgi = app.wsgi_app     # Flask's own dispatch, before anything wraps it
        self._options = options
        self._socketio: Any = None
        self._lock = threading.Lock()

    def server(self) -> Any:
        """The Socket.IO server, imported and made at the first call (later calls wait for it)."""
        with self._lock:
            if self._socketio is None:
                outer = self._app.wsgi_app
                socketio = _import_flask_socketio()(self._app, **self._options)
                # Flask-SocketIO wraps app.wsgi_app with its own middleware; put the Host guard back
                # outermost, so a Socket.IO request still passes it (and reaches the server through us).
                self._app.wsgi_app = outer
                self._socketio = socketio
            return self._socketio.server

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        if (environ.get("PATH_INFO") or "").startswith(SOCKETIO_PATH):
            return self.server().handle_request(environ, start_response)
        return self._routes(environ, start_response)

    def emit(self, event: str, data: Any) -> None:
        """To every connected client; none before the server exists, so nothing to send then."""
        socketio = self._socketio
        if socketio is not None:
            socketio.emit(event, data)
