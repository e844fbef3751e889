"""The real bot (run.py, paper exchange) under the daemon: starts, shows its page port, stops cleanly."""
from __future__ import annotations

import json
import psutil
import pytest
import requests

from core.bot_status import read_bot_status
from core.paths import REPO_ROOT
from tests.conftest import free_port, run_cli
from tests.core.util import daemon_log, list_json, registry, start
from tests.conftest import wait_for
pytestmark = pytest.mark.slow


def test_real_paper_bot_under_the_daemon(home):
    doc = json.loads((REPO_ROOT / "config" / "active" / "paper_sol_01.json").read_text())
    doc["metadata"]["instance_id"] = "paper_core_01"
    doc["daemon_config"] = {"web_port": free_port(), "health_check_interval": 1, "stop_timeout": 10}
    doc["strategy_config"]["interval"] = 0.5
    path = home / "config" / "active" / "paper_core_01.json"
    path.write_text(json.dumps(doc))

    out = start(home, path)
    assert out.returncode == 0, out.stderr
    port = doc["daemon_config"]["web_port"]
    rec = wait_for(lambda: (r := list_json(home).get("paper_core_01")) and r["status"] == "running" and r, 30, "running")
    assert rec["web_port"] == port and rec["bot_pid"]
    assert str(port) in run_cli(home, "list").stdout
    health = wait_for(lambda: _get(f"http://127.0.0.1:{port}/health"), 30, "the bot's page")
    assert health.status_code == 200 and health.json()["instance_id"] == "paper_core_01"  # ready = beating
    status_file = home / "logs" / "paper_core_01" / "bot_status.json"
    published = wait_for(lambda: read_bot_status(status_file), 30, "the bot's published status")
    assert published["state"] == "trading" and published["symbol"] == doc["metadata"]["symbol"]
    assert published["quote"] and published["price"] > 0 and published["equity"] > 0
    assert published["grid_lower"] < published["grid_upper"] and published["open_order_count"] > 0
    assert status_file.stat().st_mode & 0o077 == 0          # positions are private to the user
    first = psutil.Process(rec["bot_pid"])
    first.terminate()  # a SIGTERM the supervisor did not send: an unexpected end, restarted per policy
    rec = wait_for(lambda: (r := list_json(home).get("paper_core_01")) and r["status"] == "running"
                   and r["bot_pid"] not in (None, first.pid) and r, 60, "the bot restarted after an outside SIGTERM")
    assert rec["restart_count"] == 1
    assert "ended by a SIGTERM the supervisor did not send" in daemon_log(home, "paper_core_01")
    bot = psutil.Process(rec["bot_pid"])
    stop = run_cli(home, "stop", "-i", "paper_core_01")
    assert stop.returncode == 0 and "paper_core_01 stopped" in stop.stdout
    assert not bot.is_running()
    assert "bot exited with code 143" in daemon_log(home, "paper_core_01")  # SIGTERM handled: orders cancelled
    assert registry(home)["paper_core_01"]["status"] == "stopped"
    assert (home / "database" / "paper_core_01.db").exists()


def _get(url: str):
    try:
        return requests.get(url, timeout=2)
    except requests.RequestException:
        return None


def test_legacy_flat_config_runs_the_real_bot(home):
    """config/daemon_config.json (flat keys + bot_args) still starts, lists and stops."""
    path = home / "config" / "daemon_config.json"
    path.write_text((REPO_ROOT / "config" / "daemon_config.json").read_text())
    out = run_cli(home, "start", "-c", "config/daemon_config.json", "-d")
    assert out.returncode == 0, out.stderr
    rec = list_json(home)["daemon_config"]
    assert rec["status"] == "running" and rec["config_file"] == str(path) and rec["web_port"]
    assert run_cli(home, "stop", "-i", "daemon_config").returncode == 0
    assert "bot exited with code 143" in daemon_log(home, "daemon_config")
