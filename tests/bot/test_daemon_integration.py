"""A paper bot under the real daemon: it trades (fills, grid profit) and stops cleanly."""
from __future__ import annotations

import json
import os
import signal

import psutil
import pytest
import requests

from tests.bot.proc import bot_config, open_paper_orders, query, scalar
from tests.conftest import wait_for
from tests.conftest import free_port, run_cli


@pytest.mark.slow
def test_paper_bot_under_the_daemon_shows_fills_and_grid_profit_then_stops_cleanly(home):
    port = free_port()
    cfg = bot_config(home, "paper_it_01", strategy={"interval": 0.05}, daemon={"web_port": port})
    db = home / "database" / "paper_it_01.db"
    started = run_cli(home, "start", "-c", str(cfg), "-d")
    assert started.returncode == 0, started.stdout + started.stderr
    assert "paper_it_01" in started.stdout

    def profit() -> float:
        state = scalar(db, "SELECT value FROM grid_state WHERE key = 'perp_grid'")
        return json.loads(state)["totals"]["grid_profit"] if state else 0.0

    wait_for(lambda: profit() > 0, timeout=60, what="a closed grid cycle")
    web_port = int((home / "logs" / "paper_it_01" / "web.port").read_text())
    status = requests.get(f"http://127.0.0.1:{web_port}/api/status", timeout=5).json()
    assert status["fill_count"] >= 2 and status["grid_profit"] > 0
    listed = run_cli(home, "list")
    assert "paper_it_01" in listed.stdout and "running" in listed.stdout

    stopped = run_cli(home, "stop", "-c", str(cfg))
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert open_paper_orders(db) == []                 # the bot cancelled its orders on SIGTERM
    logs = "".join(p.read_text() for p in (home / "logs" / "paper_it_01").glob("*/bot_stdout.log"))
    assert "SIGTERM received" in logs and "FINAL paper_it_01" in logs
    status = run_cli(home, "status", "-c", str(cfg))
    assert status.returncode == 3                      # LSB: not running


@pytest.mark.slow
def test_a_supervisor_killed_with_sigkill_leaves_no_order_resting(home):
    """The kernel SIGTERMs the bot (PDEATHSIG) while its stdout pipe has no reader any more: the bot
    must still cancel its grid (output failures are harmless, cancelling comes before printing)."""
    cfg = bot_config(home, "paper_kill_01", strategy={"interval": 0.05}, daemon={"web_port": free_port()})
    db = home / "database" / "paper_kill_01.db"
    started = run_cli(home, "start", "-c", str(cfg), "-d")
    assert started.returncode == 0, started.stdout + started.stderr
    wait_for(lambda: len(open_paper_orders(db)) >= 10, timeout=60, what="the grid's orders")
    listed = run_cli(home, "list", "--json")
    record = next(r for r in json.loads(listed.stdout) if r["instance_id"] == "paper_kill_01")
    bot = psutil.Process(record["bot_pid"])
    os.kill(record["pid"], signal.SIGKILL)
    try:
        bot.wait(timeout=30)
    finally:
        if bot.is_running():
            bot.kill()
    assert open_paper_orders(db) == []
    assert query(db, "SELECT kind FROM events WHERE kind = 'shutdown'"), "no shutdown event: the bot never cancelled"
