"""Profit in `list`: symbol, position, PnL, grid profit, equity per instance from the bot's published
books, a fleet total per quote currency, the same in --json, colours on a terminal only, and
`waiting` as its own state with its reason in `status`."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO, free_port, home_env, run_cli, wait_for
from tests.core.util import list_json, on_a_terminal, start, write_config
from tests.exchanges.backpack_server import TEST_PUBLIC_B64, TEST_SEED_B64

SOL = {"symbol": "SOL_USDC_PERP", "quote": "USDC", "state": "trading", "position": 1.5, "unrealized_pnl": 12.25,
       "realized_pnl": -3.5, "grid_profit": 7.75, "equity": 10016.5, "exchange": "paper"}
ETH = {"symbol": "ETH_USDC_PERP", "quote": "USDC", "state": "waiting", "message": "exchange unreachable: timed out",
       "position": -0.2, "unrealized_pnl": -2.25, "realized_pnl": 10.0, "grid_profit": 4.0, "equity": 5011.75,
       "exchange": "paper"}
BTC = {"symbol": "BTC_USDT_PERP", "quote": "USDT", "state": "trading", "position": 0.01, "unrealized_pnl": 1.0,
       "realized_pnl": 2.0, "grid_profit": 3.0, "equity": 1000.0, "exchange": "paper"}


@pytest.fixture
def fleet(home):
    for iid, books in (("sol_01", SOL), ("eth_01", ETH), ("btc_01", BTC)):
        out = start(home, write_config(home, iid, "--books", json.dumps(books), symbol=books["symbol"]))
        assert out.returncode == 0, out.stderr
    wait_for(lambda: all((home / "logs" / i / "bot_status.json").exists() for i in ("sol_01", "eth_01", "btc_01")),
             15, "every bot's first books")
    yield home
    run_cli(home, "stop-all")


@pytest.mark.slow
def test_list_shows_books_totals_waiting_and_colours(fleet):
    home = fleet
    rows = list_json(home)
    assert rows["sol_01"]["status"] == "running" and rows["eth_01"]["status"] == "waiting"
    for iid, books in (("sol_01", SOL), ("eth_01", ETH), ("btc_01", BTC)):
        for key in ("symbol", "quote", "position", "unrealized_pnl", "realized_pnl", "grid_profit", "equity"):
            assert rows[iid][key] == books[key], (iid, key)

    table = run_cli(home, "list").stdout.splitlines()
    header = table[0].split()
    for column in ("SYMBOL", "POSITION", "UPNL", "RPNL", "GRID", "EQUITY"):
        assert column in header
    by_id = {line.split()[0]: line.split() for line in table[1:]}
    sol = dict(zip(header, by_id["sol_01"]))
    assert (sol["STATE"], sol["SYMBOL"], sol["POSITION"], sol["UPNL"], sol["RPNL"], sol["GRID"], sol["EQUITY"]) == (
        "running", "SOL_USDC_PERP", "1.5", "+12.25", "-3.50", "+7.75", "10016.50")
    assert dict(zip(header, by_id["eth_01"]))["STATE"] == "waiting"
    # fleet totals per quote currency: USDC = sol + eth, USDT = btc alone
    usdc = next(line for line in table if line.startswith("fleet USDC"))
    usdt = next(line for line in table if line.startswith("fleet USDT"))
    assert usdc.split()[2:] == ["unrealized", "+10.00", "realized", "+6.50", "grid", "+11.75", "equity", "15028.25"]
    assert usdt.split()[2:] == ["unrealized", "+1.00", "realized", "+2.00", "grid", "+3.00", "equity", "1000.00"]
    assert table[-1].startswith("total: 3 shown, 3 live")
    assert "\x1b[" not in "\n".join(table)  # not a terminal: no colour

    status = run_cli(home, "status", "eth_01")
    body = json.loads(status.stdout)
    assert status.returncode == 0 and body["state"] == "waiting"
    assert body["waiting_reason"] == "exchange unreachable: timed out" and body["books"]["equity"] == ETH["equity"]

    coloured = on_a_terminal(home, "list")
    assert "\x1b[" in coloured and "waiting" in coloured and "+12.25" in coloured
    plain = on_a_terminal(home, "list", env={"NO_COLOR": "1"})
    assert "\x1b[" not in plain and "+12.25" in plain


@pytest.mark.slow
def test_list_with_books_imports_nothing_heavy(fleet):
    """With books to show, `list` still imports no flask, ccxt, numpy, jsonschema or bot code."""
    probe = subprocess.run([sys.executable, "-c",
                            "import sys, io, contextlib; sys.argv = ['x', '--home', sys.argv[1], 'list'];"
                            f"sys.path.insert(0, {str(REPO)!r}); from core.daemon_manager import main;"
                            "buf = io.StringIO();\nwith contextlib.redirect_stdout(buf): main()\n"
                            "assert '+12.25' in buf.getvalue(), buf.getvalue()\n"
                            "print(' '.join(sorted(m.split('.')[0] for m in sys.modules)))", str(fleet)],
                           capture_output=True, text=True, cwd="/", env=home_env(fleet))
    loaded = set(probe.stdout.split())
    assert "core" in loaded and "json" in loaded, probe.stderr  # the probe works
    heavy = {"jsonschema", "dotenv", "flask", "ccxt", "numpy", "strategies", "web", "exchanges", "database", "psutil"}
    assert loaded & heavy == set()


@pytest.mark.slow
def test_a_real_bot_that_cannot_reach_its_exchange_is_waiting_not_running(home):
    """run.py under its supervisor, its venue down: `list` says waiting, `status` says why."""
    path = home / "config" / "active" / "bp_down.json"
    path.write_text(json.dumps({
        "metadata": {"instance_id": "bp_down", "exchange": "backpack", "symbol": "SOL_USDC_PERP", "strategy": "perp_grid"},
        "daemon_config": {"web_port": free_port(), "stop_timeout": 5},
        "exchange_config": {"api_key": TEST_PUBLIC_B64, "secret_key": TEST_SEED_B64,
                            "base_url": f"http://127.0.0.1:{free_port()}", "timeout_ms": 1500},  # nobody listens
        "strategy_config": {"grid_lower_price": 146, "grid_upper_price": 154, "grid_num": 9, "quantity": 0.1,
                            "interval": 0.3},
    }))
    started = start(home, path, timeout=120)
    assert started.returncode == 0, started.stderr
    try:
        wait_for(lambda: list_json(home)["bp_down"]["status"] == "waiting", 30, "list showing waiting")
        body = json.loads(run_cli(home, "status", "bp_down").stdout)
        assert body["state"] == "waiting" and "retrying in" in body["waiting_reason"], body
        table = run_cli(home, "list").stdout
        assert "bp_down  waiting" in table
    finally:
        run_cli(home, "stop", "bp_down")
