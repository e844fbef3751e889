"""The other commands: list/info/stats/validate/cleanup/restart/foreground, and the lean list import path."""
from __future__ import annotations

import json
import os
import pty
import signal
import subprocess
import sys

import psutil
import pytest

from core.instance_manager import InstanceRegistry
from core.web_token import ensure_token
from tests.conftest import DAEMON_MANAGER, REPO, home_env, run_cli
from tests.core.util import list_json, read_to_eof, registry, start, write_config
from tests.conftest import wait_for
LIST_KEYS = {"instance_id", "status", "pid", "bot_pid", "web_port", "restart_count", "uptime_s", "cpu_percent",
             "memory_mb", "config_file", "symbol", "quote", "position", "unrealized_pnl", "realized_pnl", "grid_profit",
             "equity"}


@pytest.mark.parametrize("command", [["list"], ["list", "--json"], ["status", "-i", "x"]])
def test_list_and_status_import_nothing_heavy(home, command):
    """`list` (run by watch -n 1) and `status` import no jsonschema, dotenv, flask, ccxt, numpy or bot code."""
    out = subprocess.run([sys.executable, "-X", "importtime", str(DAEMON_MANAGER), "--home", str(home), *command],
                         capture_output=True, text=True, cwd="/", env=home_env(home))
    imported = {line.split("|")[-1].strip().split(".")[0] for line in out.stderr.splitlines()
                if line.startswith("import time:")}
    assert "core" in imported and "encodings" in imported  # the probe works (list no longer imports json)
    heavy = {"jsonschema", "dotenv", "flask", "ccxt", "numpy", "strategies", "web", "exchanges", "database", "psutil",
             "dashboard"}
    assert imported & heavy == set()


def test_empty_home_list_and_validate(home):
    out = run_cli(home, "list")
    assert out.returncode == 0 and "no instances" in out.stdout and "total: 0 shown" in out.stdout
    assert json.loads(run_cli(home, "list", "--json").stdout) == []
    assert run_cli(home, "validate").returncode == 0
    assert run_cli(home).returncode == 2  # no command: usage error
    assert run_cli(home, "stop").returncode == 2  # no instance named


def test_validate_all_active_configs(home):
    write_config(home, "good_one")
    bad = write_config(home, "bad_one")
    doc = json.loads(bad.read_text())
    doc["strategy_config"]["grid_num"] = 1
    bad.write_text(json.dumps(doc))
    out = run_cli(home, "validate", "-v")
    assert out.returncode == 2
    assert "OK       config/active/good_one.json" in out.stdout and '"grid_num": 10' in out.stdout
    assert "INVALID  config/active/bad_one.json" in out.stdout and "strategy_config.grid_num: 1 must be >= 2" in out.stdout
    assert "1 valid, 1 invalid" in out.stdout
    assert run_cli(home, "validate", "-i", "good_one").returncode == 0
    assert run_cli(home, "validate", "-c", str(bad)).returncode == 2
    assert run_cli(home, "validate", "-i", "nobody").returncode == 4


@pytest.mark.slow
def test_list_table_json_info_stats_restart_cleanup(home):
    path = write_config(home, "tour_01")
    assert start(home, path).returncode == 0
    ensure_token(home / "logs" / "tour_01" / "web.token")
    dead = write_config(home, "tour_02", "--mode", "exit0", "--after", "0.5")
    assert start(home, dead).returncode == 0
    wait_for(lambda: registry(home)["tour_02"]["status"] == "exited", 15, "tour_02 exited")

    table = run_cli(home, "list").stdout.splitlines()
    assert table[0].split() == ["ID", "STATE", "PID", "BOT", "UPTIME", "RESTARTS", "CPU%", "MEM(MB)", "PORT", "SYMBOL",
                                "POSITION", "UPNL", "RPNL", "GRID", "EQUITY", "CONFIG"]
    assert [row.split()[0] for row in table[1:-1]] == ["tour_01"] and table[1].split()[-1] == "config/active/tour_01.json"
    assert table[-1].startswith("total: 1 shown, 1 live")
    assert "tour_02" in run_cli(home, "list", "--all").stdout
    rows = json.loads(run_cli(home, "list", "--json", "--all").stdout)
    assert all(LIST_KEYS <= set(r) for r in rows) and {r["instance_id"] for r in rows} == {"tour_01", "tour_02"}

    info = run_cli(home, "info", "tour_01")
    rec = registry(home)["tour_01"]
    assert info.returncode == 0 and f"http://127.0.0.1:{rec['web_port']}/" in info.stdout
    assert (home / "logs" / "tour_01" / "web.token").read_text().strip() in info.stdout
    assert run_cli(home, "info", "nobody").returncode == 4

    stats = run_cli(home, "stats", "--json")
    assert {s["instance_id"] for s in json.loads(stats.stdout)} == {"tour_01", "tour_02"}
    assert run_cli(home, "stats", "-i", "tour_01").stdout.splitlines()[1].startswith("tour_01")
    assert run_cli(home, "stats", "-i", "nobody").returncode == 4

    old_bot = rec["bot_pid"]
    restarted = run_cli(home, "restart", "-i", "tour_01")
    assert restarted.returncode == 0 and "tour_01 stopped" in restarted.stdout and "ready" in restarted.stdout
    assert not psutil.pid_exists(old_bot) and list_json(home)["tour_01"]["bot_pid"] != old_bot

    cleaned = run_cli(home, "cleanup")  # stdin is not a TTY: proceeds without asking
    assert cleaned.returncode == 0 and "removed 1 dead instance record" in cleaned.stdout
    assert set(registry(home)) == {"tour_01"}
    assert run_cli(home, "stop", "-c", str(path)).returncode == 0


@pytest.mark.slow
def test_foreground_mode_runs_until_sigterm(home):
    path = write_config(home, "fg")
    cli = subprocess.Popen([sys.executable, str(DAEMON_MANAGER), "--home", str(home), "start", "-c", str(path)],
                           cwd=str(REPO), env=home_env(home), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True)
    assert cli.stdout.readline().startswith("ready pid=")
    rec = list_json(home)["fg"]
    assert rec["pid"] == cli.pid and rec["status"] == "running"
    bot = psutil.Process(rec["bot_pid"])
    cli.send_signal(signal.SIGTERM)
    out, err = cli.communicate(timeout=20)
    assert cli.returncode == 0 and "fg: stopped" in out, err
    assert not bot.is_running() and registry(home)["fg"]["status"] == "stopped"


def test_console_script_is_installed():
    exe = REPO / ".venv" / "bin" / "daemon-manager"
    assert exe.exists()
    out = subprocess.run([str(exe), "--help"], capture_output=True, text=True, cwd="/")
    assert out.returncode == 0 and "stop-all" in out.stdout


def test_registry_update_recreates_lost_record(home):
    reg = InstanceRegistry(home)
    reg.update("lost", status="running", web_port=5009)
    assert reg.get("lost")["web_port"] == 5009


def test_cleanup_asks_on_a_terminal_and_removes_only_on_yes(home):
    """On a real TTY `cleanup` asks [y/N]: n keeps the dead records (exit 1), y removes them."""
    InstanceRegistry(home).register("gone_01", {"pid": None, "status": "stopped"})

    def cleanup_answering(answer: str) -> tuple[int, str]:
        master, slave = pty.openpty()
        try:
            cli = subprocess.Popen([sys.executable, str(DAEMON_MANAGER), "--home", str(home), "cleanup"],
                                   cwd=str(REPO), env=home_env(home), stdin=slave, stdout=slave, stderr=slave)
            os.close(slave)
            said = b""
            while b"[y/N]" not in said:
                said += os.read(master, 1024)
            os.write(master, answer.encode() + b"\n")
            said += read_to_eof(master)
            return cli.wait(timeout=30), said.decode()
        finally:
            os.close(master)

    code, said = cleanup_answering("n")
    assert code == 1 and "remove 1 record(s)? [y/N]" in said and "nothing removed" in said
    assert set(registry(home)) == {"gone_01"}
    code, said = cleanup_answering("y")
    assert code == 0 and "removed 1 dead instance record(s)" in said
    assert registry(home) == {}


def test_web_token_is_private_and_stable(home):
    token_file = home / "logs" / "tok_01" / "web.token"
    token = ensure_token(token_file)
    assert len(token) >= 32 and token_file.stat().st_mode & 0o777 == 0o600
    assert ensure_token(token_file) == token  # a restarted bot keeps its token
    assert [p.name for p in token_file.parent.iterdir()] == ["web.token"]  # no temp file left behind
