"""`daemon_manager.py dashboard [-d] [--port 5000] [--host 127.0.0.1]`: serve the fleet page.

Foreground by default (for systemd or a terminal); `-d` double-forks into its own session, so it
survives the SSH logout like an instance does, and returns once it listens (or says why not).
One dashboard per home: logs/dashboard/dashboard.pid is flock'ed for the server's life, and
logs/dashboard/dashboard.json says where it listens (for `resume` and scripts).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path

from core.atomic import write_text_atomic
from core.exit_codes import EXIT_FAIL, EXIT_OK, EXIT_USAGE
from core.pidfile import AlreadyLocked, PidLock, is_locked, read_pid

DEFAULT_PORT = 5000
DEFAULT_HOST = "127.0.0.1"
TARGETS_EVERY_S = 15.0
STOP_TIMEOUT_S = 10.0


def state_dir(home: Path) -> Path:
    return home / "logs" / "dashboard"


def add_arguments(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("-d", "--daemon", action="store_true", help="detach: keeps serving after logout (and `resume` "
                    "brings it back after a reboot until `dashboard --stop`)")
    sp.add_argument("--stop", action="store_true", help="stop this home's dashboard")
    sp.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    sp.add_argument("--host", default=DEFAULT_HOST, help=f"address to bind and the one browsers use (default "
                    f"{DEFAULT_HOST}: reach it through an SSH tunnel); any other Host header is refused")


def already_running(home: Path, pid: int | None) -> str:
    return f"failed: a dashboard of this home already runs (pid {pid}); see {state_dir(home) / 'dashboard.json'}"


def record_path(home: Path) -> Path:
    return state_dir(home) / "dashboard.json"


def read_record(home: Path) -> dict:
    try:
        data = json.loads(record_path(home).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def resume_args(home: Path) -> list[str] | None:
    """The CLI arguments that bring back a detached dashboard the trader did not stop (for
    `resume` after a reboot), or None when none should run or one already does."""
    rec = read_record(home)
    if rec.get("desired") != "running" or is_locked(state_dir(home) / "dashboard.pid"):
        return None
    return ["dashboard", "-d", "--host", str(rec.get("host") or DEFAULT_HOST), "--port", str(rec.get("port") or DEFAULT_PORT)]


def stop(home: Path) -> int:
    """`dashboard --stop`: end the running dashboard of this home and remember it should not run."""
    pid_file = state_dir(home) / "dashboard.pid"
    rec = read_record(home)
    if rec:
        write_text_atomic(record_path(home), json.dumps({**rec, "desired": "stopped"}) + "\n")
    pid = read_pid(pid_file)
    if not is_locked(pid_file) or pid is None:
        print("no dashboard runs for this home")
        return EXIT_OK
    os.kill(pid, signal.SIGTERM)          # the lock's holder wrote this pid: it is the dashboard
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while is_locked(pid_file) and time.monotonic() < deadline:
        time.sleep(0.05)
    if is_locked(pid_file):
        print(f"the dashboard (pid {pid}) did not exit within {STOP_TIMEOUT_S:.0f} s", file=sys.stderr)
        return EXIT_FAIL
    print(f"dashboard (pid {pid}) stopped")
    return EXIT_OK


def main(home: Path, args: argparse.Namespace) -> int:
    if args.stop:
        return stop(home)
    if not 0 < args.port < 65536:
        print(f"--port {args.port}: must be 1..65535", file=sys.stderr)
        return EXIT_USAGE
    pid_file = state_dir(home) / "dashboard.pid"
    if is_locked(pid_file):        # checked again under the lock by the server itself
        print(already_running(home, read_pid(pid_file)), file=sys.stderr)
        return EXIT_USAGE
    if args.daemon:
        from core.environment import detach_with_allowlist

        detach_with_allowlist(home)  # the trader's shell credentials stay out of a long-lived server
        return _detach(home, args.host, args.port)
    return serve(home, args.host, args.port, say=lambda line: print(line, flush=True))


def _detach(home: Path, host: str, port: int) -> int:
    """fork, setsid, fork; the grandchild serves and reports one line through a pipe."""
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the forked children
        code = EXIT_FAIL
        try:
            os.close(ready_r)
            os.setsid()
            if os.fork():
                os._exit(0)
            log = state_dir(home) / "dashboard.log"
            log.parent.mkdir(parents=True, exist_ok=True)
            out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, 0)
            os.dup2(out, 1)
            os.dup2(out, 2)
            os.chdir(str(home))
            report = os.fdopen(ready_w, "w")

            def say(line: str) -> None:
                print(line, flush=True)
                if not report.closed:
                    report.write(line + "\n")
                    report.close()

            code = serve(home, host, port, say, detached=True)
        finally:
            os._exit(code)
    os.close(ready_w)
    os.waitpid(pid, 0)
    with os.fdopen(ready_r) as fh:
        line = fh.readline().strip()
    if line.startswith("dashboard: http"):
        print(line)
        return EXIT_OK
    print(line or f"the dashboard exited without a word: see {state_dir(home) / 'dashboard.log'}", file=sys.stderr)
    return EXIT_FAIL


def serve(home: Path, host: str, port: int, say, detached: bool = False) -> int:
    """Serve until killed. `say` gets one line: the URL once listening, or why not."""
    from werkzeug.serving import make_server

    from dashboard.app import create_app
    from dashboard.auth import fleet_token, token_path
    from dashboard.fleet import fleet
    from dashboard.metrics import write_targets

    lock = PidLock(state_dir(home) / "dashboard.pid")
    try:
        lock.acquire()
    except AlreadyLocked as exc:
        say(already_running(home, exc.pid))
        return EXIT_USAGE
    try:
        app = create_app(home, fleet_token(home), host)
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        try:
            server = make_server(host, port, app, threaded=True)
        except (OSError, SystemExit) as exc:     # werkzeug exits when the port is taken
            say(f"failed: cannot listen on {host}:{port}: {exc or 'address in use'}")
            return EXIT_FAIL
        address = f"{host}:{server.port}" if ":" not in host else f"[{host}]:{server.port}"
        write_text_atomic(record_path(home), json.dumps(
            {"pid": os.getpid(), "host": host, "port": server.port, "url": f"http://{address}/",
             "started_at": time.time(), "desired": "running" if detached else "foreground"}) + "\n")
        targets = state_dir(home) / "prometheus_targets.json"

        def keep_targets() -> None:
            while True:
                try:
                    write_targets(targets, fleet(home), address)
                except OSError as exc:
                    print(f"warning: could not write {targets}: {exc}", flush=True)
                time.sleep(TARGETS_EVERY_S)

        threading.Thread(target=keep_targets, name="targets", daemon=True).start()
        say(f"dashboard: http://{address}/ (fleet token in {token_path(home)}; Prometheus targets in {targets})")
        server.serve_forever()
        return EXIT_OK
    finally:
        lock.release()
