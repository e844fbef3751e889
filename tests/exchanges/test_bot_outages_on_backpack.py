"""run.py against the local Backpack server when the venue is not there: at start-up (waited out,
never exited), for a symbol it does not list (exit 2 naming the listed ones), and at shutdown
(orders that could not be cancelled are reported in stop_reason, exit 1)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests

from tests.bot.proc import run_bot, running_bot, terminate
from tests.conftest import wait_for
from tests.conftest import free_port
from tests.exchanges.backpack_server import TEST_PUBLIC_B64, TEST_SEED_B64, BackpackServer

IID = "bp_outage"
SYMBOL = "SOL_USDC_PERP"


def config(home: Path, url: str, symbol: str = SYMBOL) -> Path:
    path = home / "config" / "active" / f"{IID}.json"
    path.write_text(json.dumps({
        "metadata": {"instance_id": IID, "exchange": "backpack", "symbol": symbol, "strategy": "perp_grid"},
        "exchange_config": {"api_key": TEST_PUBLIC_B64, "secret_key": TEST_SEED_B64, "base_url": url,
                            "timeout_ms": 1500},
        "strategy_config": {"grid_lower_price": 146, "grid_upper_price": 154, "grid_num": 9, "quantity": 0.1,
                            "interval": 0.3},
    }))
    return path


@pytest.mark.slow
def test_a_venue_down_at_start_is_waited_out_and_the_bot_then_trades(home):
    port, web_port = free_port(), free_port()             # nobody listens on `port` yet
    logs = home / "logs" / IID
    with running_bot(home, config(home, f"http://127.0.0.1:{port}"), "--web-port", str(web_port)) as proc:
        wait_for(lambda: (logs / "web.port").exists() and (logs / "heartbeat").exists(), timeout=30,
                 what="the page and a heartbeat while waiting for the venue")
        page = f"http://127.0.0.1:{int((logs / 'web.port').read_text())}"
        status = requests.get(f"{page}/api/status", timeout=5).json()
        assert status["state"] == "waiting" and "retrying in" in status["message"], status
        assert requests.get(f"{page}/health", timeout=5).status_code == 200      # alive, not hung
        wait_for(lambda: "retrying in 2 s" in requests.get(f"{page}/api/status", timeout=5).json()["message"],
                 timeout=30, what="the second wait, twice the first")
        assert proc.poll() is None
        with BackpackServer(center=150.0, amplitude=3.0, period=6.0, port=port) as server:
            wait_for(lambda: len(server.open) >= 4, timeout=60, what="the grid placed once the venue is up")
            wait_for(lambda: requests.get(f"{page}/api/status", timeout=5).json()["state"] == "running",
                     timeout=30, what="the page showing the running grid")
            assert proc.poll() is None                  # never exited: the same process trades
            out, err = terminate(proc, timeout=30)
            assert proc.returncode == 143, err  # 128 + SIGTERM: ended gracefully on SIGTERM
            assert server.open == {} and server.duplicates == []
    assert "exchange not available at start-up (ExchangeUnavailable" in out
    assert "retrying in 1 s" in out and "retrying in 2 s" in out
    assert out.index("retrying in") < out.index(f"START {IID}")


def test_a_symbol_the_venue_does_not_list_exits_2_naming_the_listed_ones(home):
    with BackpackServer(price=150.0) as server:
        out = run_bot(home, "--config", str(config(home, server.url, "DOGE_USDC_PERP")), "--no-web")
        assert server.orders == []
    assert out.returncode == 2, out.stdout + out.stderr
    assert "metadata.symbol: 'DOGE_USDC_PERP' is not a market on backpack" in out.stderr
    assert "SOL_USDC_PERP" in out.stderr and "BTC_USDC_PERP" in out.stderr
    assert not (home / "logs" / IID / "heartbeat").exists()


def test_orders_that_could_not_be_cancelled_are_reported_in_stop_reason_and_exit_1(home):
    server = BackpackServer(price=150.0).start()
    try:
        with running_bot(home, config(home, server.url), "--no-web") as proc:
            wait_for(lambda: len(server.open) == 8, timeout=60, what="the grid")
            server.stop()                               # the venue goes away with the grid resting
            out, err = terminate(proc, timeout=60)
    finally:
        server.stop()
    assert proc.returncode == 1, out + err
    reason = (home / "logs" / IID / "stop_reason").read_text().strip()
    assert reason.startswith("cancel failed: 8 orders may remain on the exchange: "), reason
    assert reason in out
