"""Helpers for the management-plane tests: configs that run tests/fake_bot.py, waits, registry reads."""
from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

from tests.conftest import DAEMON_MANAGER, REPO, TEST_BOT, free_port, home_env, run_cli

FAST = {"restart_delay": 0.1, "max_backoff": 1, "stable_uptime": 5, "startsecs": 0.5, "stop_timeout": 2,
        "health_check_interval": 0.3, "heartbeat_timeout": 1.5}


def write_config(home: Path, iid: str, *bot_args: str, exchange: str = "paper", symbol: str = "SOL_USDC_PERP",
                 exchange_config: dict | None = None, **daemon) -> Path:
    """An active config for instance iid running the fake bot with bot_args and fast supervision."""
    doc = {
        "$schema": "../schema/instance.schema.json",
        "metadata": {"instance_id": iid, "exchange": exchange, "symbol": symbol, "strategy": "perp_grid"},
        "daemon_config": {"script_path": str(TEST_BOT), "bot_args": list(bot_args), "web_port": free_port(),
                          **FAST, **daemon},
        "exchange_config": exchange_config or {},
        "strategy_config": {"grid_lower_price": 140, "grid_upper_price": 160, "grid_num": 10},
    }
    doc["daemon_config"] = {k: v for k, v in doc["daemon_config"].items() if v is not None}
    path = home / "config" / "active" / f"{iid}.json"
    path.write_text(json.dumps(doc, indent=2))
    return path


def start(home: Path, path: Path, *extra: str, **kw):
    return run_cli(home, "start", "-c", str(path), "-d", *extra, **kw)


def registry(home: Path) -> dict:
    """Every instance's own record (logs/{id}/instance.json) by id, read straight from the files."""
    out = {}
    for p in sorted(home.glob("logs/*/instance.json")):
        out[p.parent.name] = json.loads(p.read_text())
    return out


def list_json(home: Path, *extra: str) -> dict[str, dict]:
    out = run_cli(home, "list", "--json", *extra)
    assert out.returncode == 0, out.stderr
    return {r["instance_id"]: r for r in json.loads(out.stdout)}


def daemon_log(home: Path, iid: str) -> str:
    return "".join(p.read_text() for p in sorted(home.glob(f"logs/{iid}/*/daemon.log")))


def read_int(path: Path) -> int:
    return int(path.read_text().split()[0])


def read_to_eof(master: int) -> bytes:
    """Everything a CLI writes to a pseudo-terminal until it closes its side."""
    said = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: the CLI closed the terminal
            break
        if not chunk:
            break
        said += chunk
    return said


def on_a_terminal(home, *args: str, env: dict | None = None) -> str:
    """What `daemon_manager.py ARGS` prints when its stdout is a terminal."""
    master, slave = pty.openpty()
    try:
        cli = subprocess.Popen([sys.executable, str(DAEMON_MANAGER), "--home", str(home), *args], cwd=str(REPO),
                               env=home_env(home, env), stdin=subprocess.DEVNULL, stdout=slave, stderr=slave)
        os.close(slave)
        said = read_to_eof(master)
        assert cli.wait(timeout=30) == 0, said
        return said.decode()
    finally:
        os.close(master)
