"""Each bot's page, API and Socket.IO through the dashboard at /bot/<id>/, so one SSH tunnel
serves the whole fleet. Plain HTTP is relayed with http.client (streamed: Socket.IO long polls
stay open); a WebSocket upgrade is accepted with simple-websocket and relayed message by message to a
WebSocket opened on the bot. The bot keeps its own checks (its token for writes)."""
from __future__ import annotations

import http.client
import threading
from typing import Iterator

import simple_websocket
import websocket
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
    """Accept the browser's WebSocket and pump messages both ways until either side closes.

    The bot's side is a websocket-client connection: simple-websocket's client can leave a message
    that arrived with the handshake unread until the next one (engine.io's open packet, which the
    browser waits for), a stall of a whole ping interval."""
    try:
        upstream = websocket.create_connection(f"ws://127.0.0.1:{port}{_target(path, query)}", timeout=TIMEOUT_S,
                                               suppress_origin=True, enable_multithread=True)
    except (OSError, websocket.WebSocketException) as exc:
        raise BotUnreachable(str(exc)) from None
    upstream.settimeout(None)                      # idle sockets are normal; engine.io pings them
    browser = simple_websocket.Server(environ)

    def close_both() -> None:
        for close in (upstream.close, browser.close):
            try:
                close()
            except (simple_websocket.ConnectionClosed, websocket.WebSocketException, OSError):
                pass

    def from_bot() -> None:
        try:
            while True:
                opcode, data = upstream.recv_data()
                if opcode == websocket.ABNF.OPCODE_CLOSE:
                    break
                browser.send(data.decode() if opcode == websocket.ABNF.OPCODE_TEXT else data)
        except (websocket.WebSocketException, simple_websocket.ConnectionClosed, OSError):
            pass
        finally:
            close_both()

    back = threading.Thread(target=from_bot, name="ws-from-bot", daemon=True)
    back.start()
    try:
        while (data := browser.receive()) is not None:
            if isinstance(data, str):
                upstream.send(data)
            else:
                upstream.send_binary(data)
    except (simple_websocket.ConnectionClosed, websocket.WebSocketException, OSError):
        pass
    finally:
        close_both()
        back.join(timeout=5)


class WebSocketDone(Response):
    """After a relayed WebSocket the socket belongs to no one: tell Werkzeug the connection is gone
    (it treats ConnectionError as a dropped client and writes nothing)."""

    def __call__(self, environ, start_response):  # type: ignore[override]
        raise ConnectionError("websocket closed")
