"""Helpers for the management-plane tests: configs that run tests/fake_bot.py, waits, registry reads."""
from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import TEST_BOT, free_port, run_cli

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
