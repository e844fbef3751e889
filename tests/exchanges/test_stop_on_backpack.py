"""`stop` leaves nothing resting, or says so (issue 8 item 4): a real daemon and bot against the
local Backpack server answering every request 120 ms late.

The audit's case: 119 orders cancelled one request at a time took longer than `stop_timeout`,
the bot was killed with 40 orders on the book, and `stop` printed "stopped" and exited 0.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import free_port, run_cli, wait_for
from tests.exchanges.backpack_server import TEST_PUBLIC_B64, TEST_SEED_B64, BackpackServer

pytestmark = pytest.mark.slow

KEYS = {"BP_KEY": TEST_PUBLIC_B64, "BP_SECRET": TEST_SEED_B64}
ORDERS = 119
LATENCY = 0.12


def write_config(home: Path, iid: str, url: str) -> Path:
    doc = {
        "metadata": {"instance_id": iid, "exchange": "backpack", "symbol": "SOL_USDC_PERP", "strategy": "perp_grid"},
        "daemon_config": {"web_port": free_port(), "restart_delay": 0.5, "max_restart_attempts": 3,
                          "stop_timeout": 3, "startsecs": 20, "health_check_interval": 1, "heartbeat_timeout": 60},
        "exchange_config": {"api_key": "${BP_KEY}", "secret_key": "${BP_SECRET}", "base_url": url},
        "strategy_config": {"grid_lower_price": 120.05, "grid_upper_price": 179.95, "grid_num": ORDERS + 1,
                            "quantity": 0.1, "max_position": 20, "interval": 1},
    }
    path = home / "config" / "active" / f"{iid}.json"
    path.write_text(json.dumps(doc, indent=2))
    return path


def start_full_grid(home: Path, server: BackpackServer, iid: str) -> Path:
    cfg = write_config(home, iid, server.url)
    started = run_cli(home, "start", "-c", str(cfg), "-d", env=KEYS)
    assert started.returncode == 0, started.stderr + started.stdout
    wait_for(lambda: len(server.open) == ORDERS, timeout=60, what=f"{ORDERS} resting orders")
    status = home / "logs" / iid / "bot_status.json"
    wait_for(lambda: status.exists() and json.loads(status.read_text()).get("open_order_count") == ORDERS,
             timeout=30, what="the bot's books naming every order")
    return cfg


@pytest.fixture
def server():
    with BackpackServer(price=150.0) as srv:
        yield srv


def test_stop_cancels_119_orders_on_a_slow_venue_within_the_time_it_asks_for(home, server):
    cfg = start_full_grid(home, server, "bp_stop")
    server.delay = LATENCY
    stopped = run_cli(home, "stop", "-c", str(cfg), env=KEYS, timeout=120)
    said = stopped.stdout + stopped.stderr
    assert server.open == {}, f"{len(server.open)} orders left on the book; stop said: {said}"
    assert stopped.returncode == 0, said
    assert server.hits["DELETE /api/v1/order"] >= ORDERS            # by id (a retry may repeat one) ...
    assert server.hits["DELETE /api/v1/orders"] == 0                # ... never the cancel-all


def test_stop_that_cannot_cancel_says_how_many_orders_remain_and_exits_1(home, server):
    cfg = start_full_grid(home, server, "bp_stuck")
    server.delay = LATENCY
    server.storm(600)                   # every request answered 429 for the rest of the test
    stopped = run_cli(home, "stop", "-c", str(cfg), env=KEYS, timeout=120)
    said = stopped.stdout + stopped.stderr
    assert stopped.returncode == 1, said
    assert len(server.open) == ORDERS
    assert f"{ORDERS} orders may remain" in said, said
