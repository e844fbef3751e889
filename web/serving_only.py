"""Flask-SocketIO's server, imported without python-engineio's client stack.

`import engineio` (and `import socketio`) also imports their HTTP and WebSocket *clients*, which
pull in `requests` and `aiohttp` when they are installed (ccxt installs both) and `websocket`
(websocket-client, the Socket.IO client's transport, installed for the tests' page client). The page only
serves, so a paper bot paid about 15 MB of RSS and a second of start-up for code it never runs.
While Flask-SocketIO is first imported, the two packages are marked unimportable, which engineio
handles (it falls back to `None` for a missing client library); the marks are removed at once, so
a real-exchange bot's ccxt still imports them normally afterwards.
"""
from __future__ import annotations

import sys

_CLIENT_ONLY = ("requests", "aiohttp", "websocket")


def _import_socketio_server():
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


SocketIO = _import_socketio_server()
