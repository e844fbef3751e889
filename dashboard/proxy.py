"""Each bot's page, API and Socket.IO through the dashboard at /bot/<id>/, so one SSH tunnel
serves the whole fleet. Plain HTTP is relayed with http.client (streamed: Socket.IO long polls
stay open); a WebSocket upgrade is accepted with simple-websocket and relayed frame by frame to a
WebSocket opened on the bot. The bot keeps its own checks (its token for writes)."""
from __future__ import annotations

import http.client
import threading
from typing import Iterator

import simple_websocket
from flask import Request, Response

HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
              "transfer-encoding", "upgrade", "host", "origin", "content-length", "cookie"}
TIMEOUT_S = 65.0             # above engine.io's 25 s poll and the bot's 30 s adjustment wait
CHUNK = 64 * 1024


class BotUnreachable(Exception):
    """The bot's page does not answer (stopped, restarting)."""


def _target(path: str, query: bytes) -> str:
    return "/" + path + (("?" + query.decode("latin-1")) if query else "")


def relay_http(req: Request, port: int, path: str) -> Response:
    """Send the request to the bot on 127.0.0.1:port and stream its answer back."""
    headers = {k: v for k, v in req.headers.items() if k.lower() not in HOP_BY_HOP}
    headers["Host"] = f"127.0.0.1:{port}"
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT_S)
    try:
        conn.request(req.method, _target(path, req.query_string), body=req.get_data() or None, headers=headers)
        answer = conn.getresponse()
    except OSError as exc:
        conn.close()
        raise BotUnreachable(str(exc)) from None

    def body() -> Iterator[bytes]:
        try:
            while chunk := answer.read1(CHUNK):
                yield chunk
        finally:
            conn.close()

    out = [(k, v) for k, v in answer.getheaders() if k.lower() not in HOP_BY_HOP | {"set-cookie", "referrer-policy"}]
    # the bot says no-referrer, under which Chromium posts "Origin: null"; the proxy needs the real
    # origin to refuse other sites, and same-origin still tells nothing to them
    out.append(("Referrer-Policy", "same-origin"))
    return Response(body(), status=answer.status, headers=out, direct_passthrough=True)


def relay_websocket(environ: dict, port: int, path: str, query: bytes) -> None:
    """Accept the browser's WebSocket and pump frames both ways until either side closes."""
    try:
        upstream = simple_websocket.Client.connect(f"ws://127.0.0.1:{port}{_target(path, query)}")
    except (OSError, simple_websocket.ConnectionError) as exc:
        raise BotUnreachable(str(exc)) from None
    browser = simple_websocket.Server(environ)

    def pump(src, dst) -> None:
        try:
            while True:
                data = src.receive()
                if data is None:
                    break
                dst.send(data)
        except (simple_websocket.ConnectionClosed, OSError):
            pass
        finally:
            for ws in (src, dst):
                try:
                    ws.close()
                except (simple_websocket.ConnectionClosed, OSError):
                    pass

    back = threading.Thread(target=pump, args=(upstream, browser), name="ws-from-bot", daemon=True)
    back.start()
    pump(browser, upstream)
    back.join(timeout=5)


class WebSocketDone(Response):
    """After a relayed WebSocket the socket belongs to no one: tell Werkzeug the connection is gone
    (it treats ConnectionError as a dropped client and writes nothing)."""

    def __call__(self, environ, start_response):  # type: ignore[override]
        raise ConnectionError("websocket closed")
