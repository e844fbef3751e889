"""What the dashboard's buttons do. Start, stop and restart run the same CLI a trader types (one
code path, one set of checks and messages); an adjustment goes to the bot's own API with the
bot's own token, so the bot validates it exactly as from its page."""
from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
from pathlib import Path

from core.exit_codes import EXIT_OK
from core.instance_manager import InstanceRegistry
from core.paths import HOME_ENV, REPO_ROOT, InstancePaths
from core.web_token import read_token

CLI = REPO_ROOT / "core" / "daemon_manager.py"
CLI_TIMEOUT_S = 180.0
BOT_TIMEOUT_S = 70.0        # the bot answers within its own 30 s (+30 s still-applying) budget
DESTRUCTIVE = ("stop", "restart", "flatten")
ACTIONS = ("start", "stop", "restart", "adjust", "flatten")


class ActionError(Exception):
    """An action refused before anything ran: HTTP status and a message for the trader."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def record(home: Path, instance_id: str) -> dict:
    rec = InstanceRegistry(home).get(instance_id)
    if rec is None:
        raise ActionError(404, f"no instance {instance_id!r} in this home")
    return rec


def run_cli(home: Path, *args: str) -> tuple[int, str]:
    """daemon_manager.py --home HOME ARGS: its exit code and what it printed (never a shell)."""
    env = {**os.environ, HOME_ENV: str(home)}
    try:
        done = subprocess.run([sys.executable, str(CLI), "--home", str(home), *args], env=env, cwd=str(REPO_ROOT),
                              stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=CLI_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return 1, f"no answer from `{args[0]}` within {CLI_TIMEOUT_S:.0f} s; see `list`"
    return done.returncode, (done.stdout + done.stderr).strip()


def lifecycle(home: Path, instance_id: str, action: str) -> dict:
    """start / stop / restart through the CLI; ok is its exit code 0."""
    rec = record(home, instance_id)
    if action == "start":
        if rec["alive"]:
            raise ActionError(409, f"{instance_id} is already {rec['state']}")
        if not rec.get("config_file"):
            raise ActionError(409, f"{instance_id} has no config file on record; start it from the CLI")
        code, text = run_cli(home, "start", "-c", rec["config_file"], "-i", instance_id, "-d")
    else:
        code, text = run_cli(home, action, "-i", instance_id)
    return {"ok": code == EXIT_OK, "exit_code": code, "output": text}


def adjust(home: Path, instance_id: str, body: dict) -> tuple[int, dict]:
    """Relay {"grid_lower_price", "grid_upper_price"} to the bot's /api/grid/adjust."""
    wanted = {k: body[k] for k in ("grid_lower_price", "grid_upper_price") if k in body}
    return _post_to_bot(home, instance_id, "/api/grid/adjust", wanted, "nothing to adjust")


def flatten(home: Path, instance_id: str) -> tuple[int, dict]:
    """The bot's /api/flatten: it cancels the grid's orders, closes its own position, and stops."""
    return _post_to_bot(home, instance_id, "/api/flatten", {}, "nothing to flatten")


def _post_to_bot(home: Path, instance_id: str, path: str, body: dict, idle: str) -> tuple[int, dict]:
    """POST JSON to a live bot's page with the bot's own token; its status and JSON answer."""
    rec = record(home, instance_id)
    port = rec.get("web_port")
    token = read_token(InstancePaths.for_instance(home, instance_id, rec.get("log_dir")).web_token)
    if not rec["bot_alive"] or not port or not token:
        raise ActionError(409, f"{instance_id} is not running; {idle}")
    conn = http.client.HTTPConnection("127.0.0.1", int(port), timeout=BOT_TIMEOUT_S)
    try:
        conn.request("POST", path, body=json.dumps(body),
                     headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}",
                              "Host": f"127.0.0.1:{port}"})
        answer = conn.getresponse()
        status, raw = answer.status, answer.read()
    except OSError as exc:
        raise ActionError(502, f"{instance_id}'s page does not answer: {exc}") from None
    finally:
        conn.close()
    try:
        payload = json.loads(raw)
    except ValueError:
        payload = {"error": raw.decode("utf-8", "replace")[:500]}
    return status, payload
