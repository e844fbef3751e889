"""The dashboard's Flask app (an application factory, no global state): the fleet page and its
JSON, the login form, the actions, fleet /metrics and the proxy to every bot's page."""
from __future__ import annotations

from pathlib import Path

from flask import Flask, Response, jsonify, redirect, render_template, request
from werkzeug.exceptions import HTTPException

from core.instance_files import is_instance_id
from core.instance_manager import InstanceRegistry
from dashboard import actions, auth, proxy
from dashboard.fleet import fleet
from dashboard.metrics import CONTENT_TYPE, render_fleet
from web.binding import is_loopback

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
OPEN_PATHS = ("/login", "/static/")          # reachable without a session even off loopback


def create_app(home: Path, token: str, bound_host: str = "127.0.0.1") -> Flask:
    here = Path(__file__).resolve().parent
    app = Flask(__name__, template_folder=str(here / "templates"), static_folder=str(here / "static"))
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024
    app.json.sort_keys = False  # type: ignore[attr-defined]
    sessions = auth.Sessions()
    read_needs_login = not is_loopback(bound_host)

    def error(status: int, message: str) -> tuple[Response, int]:
        return jsonify(error=message), status

    def session_csrf() -> str | None:
        return sessions.csrf_for(request.cookies.get(auth.COOKIE))

    def may_write() -> tuple[Response, int] | None:
        """None when the request carries the fleet token or a session with its CSRF header."""
        if not auth.same_origin(request.headers.get("Origin"), request.host):
            return error(403, "cross-site request refused")
        scheme, _, given = (request.headers.get("Authorization") or "").partition(" ")
        if scheme.lower() == "bearer" and auth.same_secret(given, token):
            return None
        csrf = session_csrf()
        if csrf is None:
            resp, code = error(401, "log in with the fleet token first (logs/dashboard/fleet.token)")
            resp.headers["WWW-Authenticate"] = 'Bearer realm="gridbot fleet"'
            return resp, code
        if not auth.same_secret(request.headers.get(auth.CSRF_HEADER), csrf):
            return error(403, "missing or wrong CSRF token")
        return None

    @app.before_request
    def gate() -> Response | tuple[Response, int] | None:
        if not auth.host_allowed(request.host, bound_host):
            return error(421, f"Host {request.host!r} is not this dashboard's (DNS rebinding?)")
        if read_needs_login and session_csrf() is None and not request.path.startswith(OPEN_PATHS):
            if request.path == "/":
                return redirect("/login")
            return may_write()
        return None

    @app.after_request
    def headers(resp: Response) -> Response:
        if not request.path.startswith("/bot/"):            # a bot's answer keeps its own headers
            resp.headers.setdefault("Content-Security-Policy", CSP)
            resp.headers["X-Content-Type-Options"] = "nosniff"
            # same-origin, not no-referrer: under no-referrer Chromium sends "Origin: null" on our own
            # posts, and the Origin check is what refuses other sites
            resp.headers["Referrer-Policy"] = "same-origin"
            if request.path.startswith("/api/") or request.path == "/metrics":
                resp.headers["Cache-Control"] = "no-store"
        return resp

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> tuple[Response, int]:
        return error(exc.code or 500, exc.description or exc.name)

    @app.get("/")
    def index() -> str:
        return render_template("dashboard.html", home=str(home))

    @app.get("/login")
    def login_form() -> str:
        return render_template("login.html", message="")

    @app.post("/login")
    def login() -> Response | tuple[str, int]:
        if not auth.same_origin(request.headers.get("Origin"), request.host):
            return render_template("login.html", message="Cross-site login refused."), 403
        if not auth.same_secret(request.form.get("token"), token):
            return render_template("login.html", message="Wrong token."), 401
        sid, _ = sessions.create()
        resp = redirect("/", code=303)
        resp.set_cookie(auth.COOKIE, sid, httponly=True, samesite="Strict", secure=request.is_secure, path="/")
        return resp

    @app.post("/logout")
    def logout() -> Response | tuple[Response, int]:
        if (refused := may_write()) is not None:
            return refused
        sessions.drop(request.cookies.get(auth.COOKIE))
        resp = jsonify(ok=True)
        resp.delete_cookie(auth.COOKIE, path="/")
        return resp

    @app.get("/api/session")
    def session() -> Response:
        csrf = session_csrf()
        return jsonify(logged_in=csrf is not None, csrf=csrf)

    @app.get("/api/fleet")
    def fleet_json() -> Response:
        return jsonify(fleet(home))

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(render_fleet(fleet(home)), content_type=CONTENT_TYPE)

    @app.post("/api/instances/<iid>/<action>")
    def act(iid: str, action: str) -> Response | tuple[Response, int]:
        if (refused := may_write()) is not None:
            return refused
        if not is_instance_id(iid) or action not in actions.ACTIONS:
            return error(404, f"no action {action!r} for {iid!r}; actions: {', '.join(actions.ACTIONS)}")
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            body = {}
        if action in actions.DESTRUCTIVE and body.get("confirm") is not True:
            return error(400, f"{action} needs {{\"confirm\": true}}: it changes what the bot holds or runs")
        try:
            if action == "adjust":
                status, payload = actions.adjust(home, iid, body)
                return jsonify(payload), status
            if action == "flatten":
                status, payload = actions.flatten(home, iid)
                return jsonify(payload), status
            result = actions.lifecycle(home, iid, action)
        except actions.ActionError as exc:
            return error(exc.status, str(exc))
        return jsonify(result), 200 if result["ok"] else 409

    @app.route("/bot/<iid>", methods=["GET"])
    def bot_root(iid: str) -> Response:
        return redirect(f"/bot/{iid}/", code=308)

    # Werkzeug routes a WebSocket handshake only to rules marked websocket=True: one pair of each
    @app.route("/bot/<iid>/", defaults={"path": ""}, methods=["GET", "POST", "PUT", "DELETE", "OPTIONS", "HEAD"])
    @app.route("/bot/<iid>/<path:path>", methods=["GET", "POST", "PUT", "DELETE", "OPTIONS", "HEAD"])
    @app.route("/bot/<iid>/", defaults={"path": ""}, websocket=True, endpoint="bot_ws_root")
    @app.route("/bot/<iid>/<path:path>", websocket=True, endpoint="bot_ws")
    def bot(iid: str, path: str) -> Response | tuple[Response, int]:
        if not auth.same_origin(request.headers.get("Origin"), request.host):
            return error(403, "cross-site request refused")
        rec = InstanceRegistry(home).get(iid) if is_instance_id(iid) else None
        if rec is None:
            return error(404, f"no instance {iid!r} in this home")
        port = rec.get("web_port")
        if not rec["bot_alive"] or not port:
            return error(502, f"{iid} is {rec['state']}: its page is not served")
        try:
            if request.headers.get("Upgrade", "").lower() == "websocket":
                proxy.relay_websocket(request.environ, int(port), path, request.query_string)
                return proxy.WebSocketDone()
            return proxy.relay_http(request, int(port), path)
        except proxy.BotUnreachable as exc:
            return error(502, f"{iid}'s page does not answer: {exc}")

    return app
