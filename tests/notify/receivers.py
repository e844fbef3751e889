"""Real receivers on 127.0.0.1 for the alert tests: Apprise's JSON webhook and an SMTP server."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.controller import Controller


class JsonReceiver:
    """Takes `json://127.0.0.1:PORT/alerts/<token>` posts; stop() and start() again on the same port
    to play a receiver that is down for a while."""

    def __init__(self, port: int, token: str = "rcv-token-0123456789") -> None:
        self.port, self.token = port, token
        self.received: list[dict] = []
        self.paths: list[str] = []
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"json://127.0.0.1:{self.port}/alerts/{self.token}"

    def start(self) -> "JsonReceiver":
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.received.append(json.loads(body))
                outer.paths.append(self.path)
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def texts(self) -> list[str]:
        return [f"{m.get('title')}\n{m.get('message')}" for m in self.received]


class SmtpReceiver:
    """aiosmtpd on 127.0.0.1; `url` is the mailto:// Apprise needs to reach it without TLS or login."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.messages: list[str] = []
        outer = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):  # noqa: ANN001 - aiosmtpd's hook
                outer.messages.append(envelope.content.decode("utf-8", "replace"))
                return "250 OK"

        self._controller = Controller(Handler(), hostname="127.0.0.1", port=port)

    @property
    def url(self) -> str:
        return f"mailto://127.0.0.1:{self.port}?to=trader@example.com&from=gridbot@example.com&mode=insecure"

    def start(self) -> "SmtpReceiver":
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()
