"""The BotRuntime of run.py behind the real web page: status, orders, fills, PnL, live adjustment."""
from __future__ import annotations

import pytest
import requests

from tests.bot.proc import bot_config, open_paper_orders, running_bot, terminate
from tests.conftest import wait_for
from tests.conftest import free_port


@pytest.mark.slow
def test_page_reads_the_runtime_and_adjusts_the_grid_on_the_loop_thread(home):
    cfg = bot_config(home, strategy={"interval": 0.1, "max_position": 100})
    log_dir = home / "logs" / "bot_t1"
    db = home / "database" / "bot_t1.db"
    port = free_port()
    with running_bot(home, cfg, "--web-port", str(port)) as proc:
        wait_for(lambda: (log_dir / "web.port").exists(), what="web.port")
        base = f"http://127.0.0.1:{int((log_dir / 'web.port').read_text())}"
        # before the grid is placed the status has only the uptime: wait for the trading one
        status = wait_for(lambda: (lambda s: s if "symbol" in s else None)(
            requests.get(f"{base}/api/status", timeout=5).json()), what="the trading status")
        assert status["instance_id"] == "bot_t1" and status["symbol"] == "SOL_USDC_PERP"
        assert status["grid"]["levels"][0] == 140.0 and len(status["grid"]["levels"]) == 21
        assert {"qty", "entry_price", "unrealized_pnl"} <= set(status["position"])
        assert requests.get(f"{base}/health", timeout=5).status_code == 200
        wait_for(lambda: requests.get(f"{base}/api/fills?limit=5", timeout=5).json(), what="fills on the page")
        orders = requests.get(f"{base}/api/orders", timeout=5).json()
        assert orders and {"id", "client_id", "side", "price", "qty", "filled_qty", "level"} <= set(orders[0])
        wait_for(lambda: requests.get(f"{base}/api/pnl", timeout=5).json(), what="PnL history")

        token = (log_dir / "web.token").read_text().strip()
        auth = {"Authorization": f"Bearer {token}"}
        price = requests.get(f"{base}/api/status", timeout=5).json()["price"]
        lower, upper = round(price - 5), round(price + 5)
        resp = requests.post(f"{base}/api/grid/adjust", json={"grid_lower_price": lower, "grid_upper_price": upper},
                             headers=auth, timeout=40)
        assert resp.status_code == 200, resp.text
        assert resp.json()["grid"]["lower"] == lower and resp.json()["grid"]["upper"] == upper
        prices = [o["price"] for o in open_paper_orders(db)]
        assert prices and all(lower <= p <= upper for p in prices)
        # 100 x 1200 / leverage 10 = 12,000 of margin: more than the 10,000 balance
        bad = requests.post(f"{base}/api/grid/adjust", json={"grid_upper_price": 1200}, headers=auth, timeout=40)
        assert bad.status_code == 400 and "max_position" in bad.json()["error"]
        assert requests.get(f"{base}/api/status", timeout=5).json()["grid"]["upper"] == upper
        terminate(proc)
    assert proc.returncode == 143                  # SIGTERM handled: orders cancelled, then 128+15 (not "finished")
