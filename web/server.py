"""The page of one bot: dashboard, JSON API, grid adjustment, health and metrics.

Served from the bot process by `start_web`, on a Werkzeug threaded server in a daemon thread, so
the page dies with its bot and never reports on anything but this bot's own runtime.
"""
from __future__ import annotations

import hmac
import logging
import math
import os
import threading
import time
from pathlib import Path
from collections.abc import Iterable
from typing import Any

from flask import Flask, Response, jsonify, render_template, request
from werkzeug.exceptions import HTTPException

from core import safe_json
from core.paths import InstancePaths, project_home
from core.web_token import ensure_token
from web.binding import bind_first_free, choose_host, write_port_file
from web.connections import CappedWSGIServer
from web.events import EventRelay
from web.host_guard import HostGuard
from web.serving_only import LazySocketIO
from web.validation import BadRequest, parse_adjustment, parse_limit


STALE_ENV = "WEB_STALE_AFTER"
# The supervisor's default heartbeat_timeout: past it the bot is hung for everyone.
DEFAULT_STALE_AFTER = 60.0
MAX_FILLS = 1000
MAX_PNL_POINTS = 5000
CSV_MAX_FILLS = 1_000_000   # the export is the whole history a trader keeps for taxes, not a page of it
MAX_BODY_DEPTH = 4  # an adjustment is one flat object
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")


def _finite(value: Any) -> float | None:
    """JSON has no Infinity: an unknown age is null."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def stale_after_from_env() -> float:
    """How old the last loop may be before /health says 503 (WEB_STALE_AFTER seconds)."""
    raw = os.environ.get(STALE_ENV)
    if not raw:
        return DEFAULT_STALE_AFTER
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{STALE_ENV}={raw!r} must be a positive number of seconds")
    return value


def restart_count(instance_id: str) -> int | None:
    """The supervisor's restart count for this instance, if a registry records it."""
    from core.instance_manager import InstanceRegistry  # only /metrics asks: the page's start skips the registry code

    try:
        return int(InstanceRegistry(project_home()).load()[instance_id]["restart_count"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def bearer_ok(header: str | None, token: str) -> bool:
    """Constant-time check of `Authorization: Bearer <token>`."""
    scheme, _, given = (header or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


def create_app(runtime: Any, token: str, stale_after: float = DEFAULT_STALE_AFTER,
               allowed_hosts: Iterable[str] = ()) -> tuple[Flask, LazySocketIO]:
    """The Flask app and its Socket.IO server around one BotRuntime (docs/internals.md); any Host
    or Origin but loopback and `allowed_hosts` gets 403 (web/host_guard.py)."""
    here = Path(__file__).resolve().parent
    app = Flask(__name__, template_folder=str(here / "templates"), static_folder=str(here / "static"))
    app.config["MAX_CONTENT_LENGTH"] = 4096
    app.json.sort_keys = False  # type: ignore[attr-defined]  # keep the snapshot's own order
    # cors_allowed_origins=None: engine.io accepts only the origin matching the Host header, i.e. the
    # page's own origin, whatever local port an SSH tunnel maps it to.
    # Socket.IO is made at its first request (web/serving_only.py), inside the Host guard like the rest.
    socketio = LazySocketIO(app, async_mode="threading", cors_allowed_origins=None, logger=False,
                            engineio_logger=False)
    app.wsgi_app = HostGuard(socketio, allowed_hosts)  # type: ignore[method-assign]

    def error(status: int, message: str) -> tuple[Response, int]:
        return jsonify(error=message), status

    @app.after_request
    def headers(resp: Response) -> Response:
        resp.headers.setdefault("Content-Security-Policy", CSP)
        resp.headers["X-Content-Type-Options"] = "nosniff"
        resp.headers["Referrer-Policy"] = "no-referrer"
        if request.path.startswith("/api/") or request.path in ("/health", "/metrics"):
            resp.headers["Cache-Control"] = "no-store"
        return resp

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> tuple[Response, int]:
        return error(exc.code or 500, exc.description or exc.name)

    @app.errorhandler(BadRequest)
    def bad_request(exc: BadRequest) -> tuple[Response, int]:
        return error(400, str(exc))

    def read_json_body() -> Any:
        """The request's JSON, parsed strictly (core/safe_json.py): a 400-digit number or 2,000
        levels of nesting is a 400 with a message, not a 500 from deep inside json."""
        example = 'e.g. {"grid_lower_price": 140, "grid_upper_price": 160}'
        if not request.is_json:
            raise BadRequest(f"body must be JSON (Content-Type: application/json), {example}")
        try:
            return safe_json.loads(request.get_data(cache=False), max_depth=MAX_BODY_DEPTH)
        except safe_json.JSONRefused as exc:
            raise BadRequest(f"body must be JSON we accept: {exc}; {example}") from None

    @app.get("/")
    def index() -> str:
        snap = runtime.snapshot()
        return render_template("index.html", instance_id=runtime.instance_id, symbol=snap.get("symbol", ""))

    @app.get("/health")
    def health() -> tuple[Response, int]:
        age = _finite(runtime.loop_age())
        shown = None if age is None else round(age, 3)  # judged as shown: never "stale" at an age equal to the bound
        fresh = shown is not None and shown <= stale_after
        body = {"status": "ok" if fresh else "stale", "instance_id": runtime.instance_id,
                "uptime_s": round(time.time() - runtime.started_at, 3),
                "loop_age_s": shown, "stale_after_s": stale_after}
        return jsonify(body), 200 if fresh else 503

    @app.get("/api/status")
    def status() -> Response:
        return jsonify(runtime.snapshot())

    @app.get("/api/orders")
    def orders() -> Response:
        return jsonify(runtime.open_orders())

    @app.get("/api/fills")
    def fills() -> Response:
        return jsonify(runtime.recent_fills(parse_limit(request.args.get("limit"), 50, MAX_FILLS)))

    @app.get("/api/fills.csv")
    def fills_csv() -> Response:
        from web.export import fills_to_csv  # only a download asks: the page's start skips it

        return Response(fills_to_csv(runtime.recent_fills(CSV_MAX_FILLS)), content_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{runtime.instance_id}-fills.csv"'})

    @app.get("/api/pnl")
    def pnl() -> Response:
        return jsonify(runtime.pnl_history(parse_limit(request.args.get("limit"), 500, MAX_PNL_POINTS)))

    def unauthorized() -> tuple[Response, int] | None:
        """None when the request carries this bot's token; else the 401 for a write."""
        if bearer_ok(request.headers.get("Authorization"), token):
            return None
        resp, code = error(401, "missing or wrong token: send Authorization: Bearer <token> "
                                "(shown by `daemon_manager.py info ID`)")
        resp.headers["WWW-Authenticate"] = 'Bearer realm="gridbot"'
        return resp, code

    @app.post("/api/flatten")
    def flatten() -> Response | tuple[Response, int]:
        if (refused := unauthorized()) is not None:
            return refused
        try:
            result = runtime.flatten("flattened by the trader")
        except ValueError as exc:
            return error(409, str(exc))
        except TimeoutError as exc:
            return error(503, str(exc))
        return jsonify(ok=True, **result)

    @app.post("/api/grid/adjust")
    def adjust() -> Response | tuple[Response, int]:
        if (refused := unauthorized()) is not None:
            return refused
        body = read_json_body()
        snap = runtime.snapshot()
        grid = snap.get("grid")
        if not grid:
            return error(503, "the bot has not built its grid yet; try again in a moment")
        lower, upper = parse_adjustment(body, float(grid["lower"]), float(grid["upper"]), _finite(snap.get("price")))
        try:
            new_grid = runtime.adjust_grid(lower, upper)
        except ValueError as exc:
            if getattr(exc, "outcome", None) == "in doubt":     # neither applied nor cleanly rolled back
                return error(503, str(exc))
            raise BadRequest(f"rejected by the strategy: {exc}") from None
        except TimeoutError as exc:         # the runtime says whether it was withdrawn or is still applying
            return error(503, str(exc) or "the bot's loop did not answer in time: check /api/status")
        return jsonify(ok=True, grid=new_grid)

    @app.get("/metrics")
    def metrics() -> Response:
        from web.metrics import CONTENT_TYPE, render  # only a scraper asks: the page's start skips it

        age = _finite(runtime.loop_age())
        text = render(runtime.snapshot(), float("inf") if age is None else age, restart_count(runtime.instance_id))
        return Response(text, content_type=CONTENT_TYPE)

    return app, socketio


def _live_status(runtime: Any) -> dict:
    """What a status_update carries: the /api/status body plus when it was taken."""
    snap = dict(runtime.snapshot())
    snap["ts"] = int(time.time() * 1000)  # epoch ms, like every timestamp of the API
    snap["loop_age_s"] = _finite(runtime.loop_age())
    return snap


def start_web(runtime: Any, host: str | None, port: int, paths: InstancePaths,
              allowed_hosts: Iterable[str] = ()) -> int:
    """Serve the page of `runtime` in a daemon thread; return the port actually bound.

    `host` None means WEB_HOST, else 127.0.0.1. A port held by a stranger moves the page to the
    next free one; the bound port is written to web.port for the supervisor to show. The page
    answers to loopback, the host it is bound to and `allowed_hosts` only.
    """
    token = ensure_token(paths.web_token)
    host = choose_host(host)
    app, socketio = create_app(runtime, token, stale_after_from_env(), [*allowed_hosts, host])
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no access log line per poll
    sock = bind_first_free(host, port)
    try:
        server = CappedWSGIServer(host, sock.getsockname()[1], app, fd=sock.fileno())
    finally:
        sock.close()  # the server holds its own duplicate of the descriptor
    bound = int(server.port)
    relay = EventRelay(socketio.emit, lambda: _live_status(runtime))
    runtime.subscribe(relay.on_event)
    threading.Thread(target=relay.run, name="web-events", daemon=True).start()
    threading.Thread(target=server.serve_forever, name="web-server", daemon=True).start()
    write_port_file(paths.web_port_file, bound)
    print(f"web page of {runtime.instance_id}: http://{host}:{bound}/", flush=True)
    return bound
