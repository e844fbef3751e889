"""A local stand-in for Backpack's REST API: the part the bot uses, with real ED25519 checks.

Private requests are verified the way Backpack does it: `instruction=<name>` then the parameters
sorted by key (one block per order for a batch), then `&timestamp=..&window=..`, signed with the
account's ED25519 key; the public key travels base64 in `X-API-Key`. A scripted price (a sine wave
or a fixed value) trades against resting orders, so fills happen. The server can be told to answer
429 for a while (`storm`), enforces a per-key request budget per fixed window and remembers every
order ever placed, so tests can check signatures, duplicates and budgets from the outside.
`lose_order_answers` makes it accept and record the next placements but answer too late for the
client (a timeout after the order reached the book), the case a bot must not place twice.
`omit_fill_client_ids` makes its fills look like ccxt's unified trades of any other venue: no
client id, only the order id (the order history still has it, as ccxt's fetch_order reads it).

What the venue does (accounts, matching, the answers, each citing its source) is
`tests/exchanges/backpack_venue.py`; this module adds HTTP, signing, the 429s and lost answers.

Run alone: `python -m tests.exchanges.backpack_server --port 8700` (prints the URL and test keys).
"""
from __future__ import annotations

import argparse
import base64
import json
import socket
import threading
import time
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from tests.exchanges.backpack_venue import ROUTES, ApiError, BackpackVenue

# The known vector of the issue: this seed's key signs the cancel below to SIGNATURE.
TEST_SEED_B64 = "nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A="
TEST_PUBLIC_B64 = "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="


def keypair_from_seed(seed_b64: str) -> tuple[str, str]:
    """(api key = base64 public key, secret = base64 seed), as Backpack hands them out."""
    private = Ed25519PrivateKey.from_private_bytes(base64.b64decode(seed_b64))
    public = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(public).decode(), seed_b64


def new_keypair() -> tuple[str, str]:
    seed = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
    return keypair_from_seed(base64.b64encode(seed).decode())


def _value(v: Any) -> str:
    return ("true" if v else "false") if isinstance(v, bool) else str(v)


def signing_payload(instruction: str, params: dict | list, timestamp: str | int, window: str | int) -> str:
    """The exact text Backpack signs: one `instruction=..&k=v..` block per order, then the time."""
    blocks = []
    for item in (params if isinstance(params, list) else [params]):
        pairs = [f"{k}={_value(v)}" for k, v in sorted(item.items()) if v is not None]
        blocks.append("&".join([f"instruction={instruction}", *pairs]))
    return "&".join(blocks) + f"&timestamp={timestamp}&window={window}"


def verify(api_key_b64: str, signature_b64: str, payload: str) -> bool:
    try:
        key = Ed25519PublicKey.from_public_bytes(base64.b64decode(api_key_b64))
        key.verify(base64.b64decode(signature_b64), payload.encode())
        return True
    except (InvalidSignature, ValueError, TypeError):
        return False


class BackpackServer(BackpackVenue):
    """The venue plus an HTTP server on 127.0.0.1 serving it."""

    def __init__(self, keys: list[str] | None = None, *, price: float | None = None, center: float = 150.0,
                 amplitude: float = 2.0, period: float = 20.0, port: int = 0) -> None:
        super().__init__(price=price, center=center, amplitude=amplitude, period=period)
        self.keys = set(keys or [TEST_PUBLIC_B64])
        self.hits: dict[str, int] = defaultdict(int)     # "METHOD /path" -> requests received
        self.rejected_auth = 0
        self.signed_ok = 0
        self.storm_until = 0.0
        self.delay = 0.0                                 # seconds to sit on every request (timeouts)
        self.late_answers = 0                            # placements still to answer late (see lose_order_answers)
        self.late_answer_delay = 0.0
        self.storm_answers = 0
        self.budget: tuple[int, float] | None = None     # (requests, window seconds) per key
        self.window_counts: dict[tuple[str, int], int] = defaultdict(int)
        self.over_budget = 0
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), self._handler_class())
        self.httpd.daemon_threads = True
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()

    # ---- lifecycle -----------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def start(self) -> "BackpackServer":
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and cut open keep-alive connections, as a real outage would."""
        self.httpd.shutdown()
        self.httpd.server_close()
        for conn in list(self._connections):
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def __enter__(self) -> "BackpackServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- controls for tests --------------------------------------------------------------
    def storm(self, seconds: float) -> None:
        """Answer 429 to every request for `seconds`."""
        self.storm_until = time.time() + seconds

    def lose_order_answers(self, count: int = 1, seconds: float = 10.0) -> None:
        """Execute the next `count` order placements (single or batch) but hold each answer `seconds`.

        The order is recorded (and rests) before the wait, so a client whose timeout is shorter
        gives up on an order that is really there, deterministically.
        """
        with self.lock:
            self.late_answers, self.late_answer_delay = count, seconds

    def _late_answer(self, method: str, path: str) -> float:
        """The delay to hold this answer: the late-answer delay for a placement while some are due."""
        if method != "POST" or ROUTES.get((method, path)) != "orderExecute":
            return 0.0
        with self.lock:
            if self.late_answers <= 0:
                return 0.0
            self.late_answers -= 1
            return self.late_answer_delay

    def max_window_count(self, key: str) -> int:
        return max((n for (k, _), n in self.window_counts.items() if k == key), default=0)

    # ---- HTTP -------------------------------------------------------------------------------
    def authenticate(self, method: str, path: str, headers: Any, query: dict, body: Any) -> str:
        """The api key of a correctly signed request, or ApiError(401)."""
        instruction = ROUTES[(method, path)]
        key, sig = headers.get("X-API-Key", ""), headers.get("X-Signature", "")
        ts, window = headers.get("X-Timestamp", ""), headers.get("X-Window", "5000")
        params = body if body is not None else query
        if key not in self.keys:
            raise ApiError(401, "UNAUTHORIZED", "API key does not exist")
        if not ts.isdigit() or abs(self.now_ms() - int(ts)) > int(window):
            # "401 (Unauthorized) Request has expired": github.com/catsats/backpack_exchange issue 16
            # (2024-03-31), with the JSON error code every error carries since 2024-10-15 (SPEC line 4).
            raise ApiError(401, "UNAUTHORIZED", "Request has expired")
        if not verify(key, sig, signing_payload(instruction or "", params, ts, window)):
            raise ApiError(401, "INVALID_SIGNATURE", "Invalid signature")
        return key

    def _budget_exceeded(self, key: str) -> bool:
        if self.budget is None:
            return False
        limit, window = self.budget
        slot = (key, int(time.time() / window))
        self.window_counts[slot] += 1
        if self.window_counts[slot] > limit:
            self.over_budget += 1
            return True
        return False

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True    # headers and body go out in two writes: no 40 ms stall

            def setup(self) -> None:
                super().setup()
                server._connections.add(self.connection)

            def finish(self) -> None:
                server._connections.discard(self.connection)
                super().finish()

            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, payload: Any, extra: dict[str, str] | None = None) -> None:
                """JSON, or no body at all for 202/204 (a `None` payload: SPEC 1893, 2463, 2713)."""
                if payload is None:
                    status = 204 if self.command == "GET" else 202
                    self.send_response(status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if isinstance(payload, dict):
                    clean: Any = {k: v for k, v in payload.items() if not k.startswith("_")}
                elif isinstance(payload, list):
                    clean = [{k: v for k, v in p.items() if not k.startswith("_")} for p in payload]
                else:
                    clean = payload
                data = json.dumps(clean).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (extra or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def _handle(self, method: str) -> None:
                parts = urlsplit(self.path)
                query = dict(parse_qsl(parts.query))
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                route = (method, parts.path)
                server.hits[f"{method} {parts.path}"] += 1
                time.sleep(server.delay)
                if route not in ROUTES:
                    self._send(404, {"code": "RESOURCE_NOT_FOUND", "message": f"no route {method} {parts.path}"})
                    return
                if time.time() < server.maintenance_until:
                    server.errors["MAINTENANCE"] += 1
                    self._send(503, {"code": "MAINTENANCE", "message": "System under maintenance"})   # SPEC 2477
                    return
                if time.time() < server.storm_until:
                    server.storm_answers += 1
                    self._send(429, {"code": "TOO_MANY_REQUESTS", "message": "Too many requests"}, {"Retry-After": "1"})
                    return
                try:
                    with server.lock:
                        key = None
                        if ROUTES[route] is not None:
                            try:
                                key = server.authenticate(method, parts.path, self.headers, query, body)
                            except ApiError:
                                server.rejected_auth += 1
                                raise
                            server.signed_ok += 1
                            if server._budget_exceeded(key):
                                raise ApiError(429, "TOO_MANY_REQUESTS", "Request budget of this key spent")
                        result = server.dispatch(method, parts.path, key, query, body)
                except ApiError as exc:
                    server.errors[exc.code] += 1
                    self._send(exc.status, {"code": exc.code, "message": exc.message},
                               {"Retry-After": "1"} if exc.status == 429 else None)
                    return
                late = server._late_answer(method, parts.path)
                if late:
                    time.sleep(late)              # outside the lock: the client's next requests are served
                    try:
                        self._send(200, result)
                    except OSError:
                        pass                      # the client gave up long ago
                    return
                self._send(200, result)

            def do_GET(self) -> None:
                self._handle("GET")

            def do_POST(self) -> None:
                self._handle("POST")

            def do_DELETE(self) -> None:
                self._handle("DELETE")

        return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--center", type=float, default=150.0)
    args = parser.parse_args()
    server = BackpackServer(port=args.port, center=args.center).start()
    print(f"url={server.url} api_key={TEST_PUBLIC_B64} secret={TEST_SEED_B64}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
