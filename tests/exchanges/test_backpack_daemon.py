"""Full grid sessions under the daemon against the local Backpack server (real processes, real HTTP).

The server verifies every private request's ED25519 signature and records every order, so the
checks are made from the exchange's side: signed orders placed and filled, no duplicate order
after a kill -9 and restart, a 429 storm survived by the same bot process, a wrong key stopping
the bot for good, and two bots on one key within the key's budget.
"""
from __future__ import annotations

import base64
import json
import os
import signal
import time
from pathlib import Path

import pytest

from exchanges import client_ids
from tests.conftest import free_port, run_cli
from tests.core.util import list_json, read_int
from tests.conftest import wait_for
from tests.exchanges.backpack_server import TEST_PUBLIC_B64, TEST_SEED_B64, BackpackServer, keypair_from_seed

pytestmark = pytest.mark.slow

KEYS = {"BP_KEY": TEST_PUBLIC_B64, "BP_SECRET": TEST_SEED_B64}
# startsecs: a bot is ready at its first heartbeat, which may take a while on a loaded machine
# (ccxt import, markets, balance, the first orders); an exit 3 is fatal at any time.
SUPERVISION = {"restart_delay": 0.5, "max_restart_attempts": 3, "stop_timeout": 10, "startsecs": 20,
               "health_check_interval": 1, "heartbeat_timeout": 30}


def write_config(home: Path, iid: str, url: str, symbol: str = "SOL_USDC_PERP", **exchange: object) -> Path:
    doc = {
        "metadata": {"instance_id": iid, "exchange": "backpack", "symbol": symbol, "strategy": "perp_grid"},
        "daemon_config": {"web_port": free_port(), **SUPERVISION},
        "exchange_config": {"api_key": "${BP_KEY}", "secret_key": "${BP_SECRET}", "base_url": url, **exchange},
        "strategy_config": {"grid_lower_price": 146, "grid_upper_price": 154, "grid_num": 8, "quantity": 0.1,
                            "max_position": 5, "interval": 0.3},
    }
    path = home / "config" / "active" / f"{iid}.json"
    path.write_text(json.dumps(doc, indent=2))
    return path


def open_levels(server: BackpackServer) -> list[tuple[str, str]]:
    return [(o["side"], o["price"]) for o in server.open.values()]


@pytest.fixture
def server():
    with BackpackServer(center=150.0, amplitude=3.0, period=6.0) as srv:
        yield srv


def test_grid_session_signed_fills_kill9_restart_and_429_storm(home, server):
    cfg = write_config(home, "bp_sol", server.url)
    started = run_cli(home, "start", "-c", str(cfg), "-d", env=KEYS)
    assert started.returncode == 0, started.stderr + started.stdout
    try:
        wait_for(lambda: len(server.fills) >= 3, timeout=40, what="fills on the server")
        assert server.signed_ok > 0 and server.rejected_auth == 0
        assert all(client_ids.belongs_to(o["clientId"], "bp_sol") for o in server.orders)
        assert all(o["postOnly"] for o in server.orders)

        bot_pid = read_int(home / "logs" / "bp_sol" / "bot.pid")
        placed_before = len(server.orders)
        os.kill(bot_pid, signal.SIGKILL)
        wait_for(lambda: (home / "logs" / "bp_sol" / "bot.pid").exists()
                 and read_int(home / "logs" / "bp_sol" / "bot.pid") != bot_pid, timeout=30, what="a restarted bot")
        wait_for(lambda: len(server.orders) > placed_before + 2, timeout=40, what="orders from the restarted bot")
        assert server.duplicates == []
        assert len(open_levels(server)) == len(set(open_levels(server)))
        assert list_json(home)["bp_sol"]["restart_count"] >= 1

        restarted_pid = read_int(home / "logs" / "bp_sol" / "bot.pid")
        storm_seen = server.storm_answers
        server.storm(3)
        wait_for(lambda: time.time() > server.storm_until, timeout=10, what="the end of the storm")
        fills_after_storm = len(server.fills)
        wait_for(lambda: len(server.fills) > fills_after_storm, timeout=40, what="fills after the storm")
        assert server.storm_answers > storm_seen
        assert read_int(home / "logs" / "bp_sol" / "bot.pid") == restarted_pid    # survived, not restarted
        assert server.duplicates == []
    finally:
        stopped = run_cli(home, "stop", "-c", str(cfg), env=KEYS)
    assert stopped.returncode == 0, stopped.stderr
    assert server.open == {}                                          # SIGTERM cancelled the grid
    logs = "".join(p.read_text() for p in (home / "logs" / "bp_sol").rglob("*.log"))
    assert TEST_SEED_B64 not in logs and "rate limited" in logs


def test_wrong_key_stops_the_bot_with_a_clear_error_and_no_restart_loop(home, server):
    stranger_key, stranger_secret = keypair_from_seed(base64.b64encode(b"\x03" * 32).decode())
    cfg = write_config(home, "bp_bad", server.url)
    started = run_cli(home, "start", "-c", str(cfg), "-d", env={"BP_KEY": stranger_key, "BP_SECRET": stranger_secret})
    assert started.returncode != 0
    assert "authentication failed" in started.stdout + started.stderr
    assert stranger_secret not in started.stdout + started.stderr
    record = wait_for(lambda: list_json(home, "--all").get("bp_bad", {}).get("status") == "fatal"
                      and list_json(home, "--all")["bp_bad"], timeout=20, what="a fatal instance")
    assert record["restart_count"] == 0
    rejected = server.rejected_auth
    time.sleep(2)                                                     # a restart loop would keep knocking
    assert server.rejected_auth == rejected and server.orders == []


def test_missing_or_empty_key_is_refused_naming_it(home, server):
    cfg = write_config(home, "bp_nokey", server.url)
    assert "BP_KEY" not in os.environ
    unset = run_cli(home, "start", "-c", str(cfg), "-d", env={"BP_SECRET": TEST_SEED_B64})
    assert unset.returncode == 2 and "BP_KEY" in unset.stdout + unset.stderr
    empty = run_cli(home, "start", "-c", str(cfg), "-d", env={"BP_KEY": "", "BP_SECRET": TEST_SEED_B64})
    assert empty.returncode != 0
    assert "missing or empty: exchange_config.api_key (or EXCHANGE_API_KEY)" in empty.stdout + empty.stderr
    assert TEST_SEED_B64 not in unset.stdout + unset.stderr + empty.stdout + empty.stderr
    assert server.signed_ok == 0


def test_two_instances_on_one_key_share_its_budget(home, server):
    limit, window = 15, 1.0
    server.budget = (limit, window)
    budget = {"rate_limit": {"requests": limit, "per_seconds": window, "max_wait": 5}}
    cfgs = [write_config(home, "bp_a", server.url, "SOL_USDC_PERP", **budget),
            write_config(home, "bp_b", server.url, "BTC_USDC_PERP", **budget)]
    try:
        for cfg in cfgs:
            started = run_cli(home, "start", "-c", str(cfg), "-d", env=KEYS)
            assert started.returncode == 0, started.stderr + started.stdout
        wait_for(lambda: server.signed_ok > 4 * limit, timeout=60, what="a few windows of traffic")
    finally:
        run_cli(home, "stop-all", env=KEYS)
    assert server.over_budget == 0
    assert server.max_window_count(TEST_PUBLIC_B64) <= limit
    assert {o["symbol"] for o in server.orders} == {"SOL_USDC_PERP", "BTC_USDC_PERP"}
