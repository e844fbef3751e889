"""`daemon-manager reload` and SIGHUP on real supervised paper bots (issue 15).

Each case checks that the bot process stayed the same and looks at what rests on the paper
exchange (its account lives in the instance database: table paper_orders). The price is
constant (volatility 0), so nothing fills and every resting order is the grid's.
"""
from __future__ import annotations

import json
import os
import signal
import sqlite3
from pathlib import Path

import psutil
import pytest
import requests

from core.events import read_events
from core.reload import classify, diff, fingerprint, shown
from tests.conftest import free_port, run_cli, wait_for
from tests.core.util import daemon_log, list_json, start

IID = "reload_01"
SECRET = "literal-secret-0123456789"


def write(home: Path, **changes) -> Path:
    """The instance config with `changes` as {section: {field: value}} on top of the base."""
    doc = {
        "metadata": {"instance_id": IID, "exchange": "paper", "symbol": "SOL_USDC_PERP", "strategy": "perp_grid"},
        "daemon_config": {"web_port": PORT, "health_check_interval": 1, "stop_timeout": 10},
        "exchange_config": {"initial_price": 150, "volatility": 0, "seed": 1, "balance": 10000, "leverage": 10,
                            "tick_size": 0.01, "step_size": 0.01, "min_qty": 0.01, "api_key": SECRET},
        "strategy_config": {"grid_lower_price": 140, "grid_upper_price": 160, "grid_num": 21, "quantity": 0.5,
                            "max_position": 5, "boundary_action": "stop_only", "interval": 0.5},
    }
    for section, fields in changes.items():
        doc[section].update(fields)
    path = home / "config" / "active" / f"{IID}.json"
    path.write_text(json.dumps(doc, indent=1))
    return path


PORT = free_port()


def resting(home: Path) -> dict[float, tuple[str, float]]:
    """price -> (order id, quantity) of every order resting on the paper exchange."""
    with sqlite3.connect(f"file:{home / 'database' / (IID + '.db')}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT data FROM paper_orders WHERE status = 'open'").fetchall()
    orders = [json.loads(r[0]) for r in rows]
    return {o["price"]: (o["id"], o["qty"]) for o in orders}


def running(home: Path) -> dict:
    return wait_for(lambda: (r := list_json(home).get(IID)) and r["status"] == "running" and r["bot_pid"] and r,
                    60, "the instance running")


def settled(home: Path, count: int) -> dict[float, tuple[str, float]]:
    return wait_for(lambda: (o := resting(home)) and len(o) == count and o, 30, f"{count} resting orders")


@pytest.fixture
def bot(home):
    """A running supervised paper bot of IID, stopped afterwards."""
    path = write(home)
    out = start(home, path)
    assert out.returncode == 0, out.stderr
    rec = running(home)
    yield path, rec
    run_cli(home, "stop", "-i", IID)


@pytest.mark.slow
def test_reload_applies_range_and_quantity_live_and_refuses_what_needs_a_restart(home, bot):
    path, rec = bot
    bot_pid = rec["bot_pid"]
    before = settled(home, 20)                  # buys 140..149, sells 151..160
    assert sorted(before)[:2] == [140.0, 141.0]

    # a range move: the levels both ranges share keep their orders (same ids)
    write(home, strategy_config={"grid_lower_price": 142, "grid_upper_price": 162})
    out = run_cli(home, "reload", IID)
    assert out.returncode == 0, out.stderr
    assert "strategy_config.grid_lower_price: 140 -> 142  (bot)" in out.stdout
    assert ("\n  strategy_config: allow_unprofitable_step, auto_price, boundary_action, duration, grid_mode, "
            "grid_num, grid_type, interval, max_position, quantity, stop_loss, take_profit\n") in out.stdout
    after = resting(home)
    assert 140.0 not in after and 141.0 not in after
    shared = [p for p in before if 142.0 <= p <= 160.0]
    assert len(shared) == 18 and all(after[p][0] == before[p][0] for p in shared)
    assert psutil.Process(bot_pid).is_running() and list_json(home)[IID]["bot_pid"] == bot_pid

    # a quantity change: every opening order is replaced at the new size, by the same process
    write(home, strategy_config={"grid_lower_price": 142, "grid_upper_price": 162, "quantity": 0.25})
    out = run_cli(home, "reload", "-c", str(path))
    assert out.returncode == 0, out.stderr
    sized = resting(home)
    assert sized and {q for _, q in sized.values()} == {0.25}
    assert not {i for i, _ in sized.values()} & {i for i, _ in after.values()}
    assert list_json(home)[IID]["bot_pid"] == bot_pid

    # a symbol and a key change: refused, each named, the key masked, nothing applied
    write(home, metadata={"symbol": "ETH_USDC_PERP"}, exchange_config={"api_key": SECRET + "x"},
          strategy_config={"grid_lower_price": 142, "grid_upper_price": 162, "quantity": 0.1})
    out = run_cli(home, "reload", "-i", IID)
    assert out.returncode == 2
    assert "metadata.symbol" in out.stderr and "exchange_config.api_key" in out.stderr and "restart" in out.stderr
    assert SECRET not in out.stderr + out.stdout
    assert resting(home) == sized
    kinds = [e["kind"] for e in read_events(home / "logs" / IID / "events.jsonl")[0]]
    assert kinds[-3:] == ["reloaded", "reloaded", "reload_failed"]      # for the trader's phone
    assert SECRET not in (home / "logs" / IID / "events.jsonl").read_text()
    os.kill(rec["pid"], signal.SIGHUP)          # the same refusal when systemd asks
    assert wait_for(lambda: "reload (SIGHUP) finished with exit code 2" in daemon_log(home, IID), 60, "the log")
    assert "metadata.symbol" in daemon_log(home, IID) and SECRET not in daemon_log(home, IID)
    assert resting(home) == sized

    # another file than the one the bot re-reads: refused
    other = home / "config" / "active" / "other.json"
    other.write_text(path.read_text())
    out = run_cli(home, "reload", "-i", IID, "-c", str(other))
    assert out.returncode == 2 and "re-reads that file" in out.stderr

    # an invalid range: exit 2 naming the field, nothing applied
    write(home, strategy_config={"grid_lower_price": 170, "grid_upper_price": 162, "quantity": 0.25})
    out = run_cli(home, "reload", IID)
    assert out.returncode == 2 and "grid_lower_price" in out.stderr
    assert resting(home) == sized and list_json(home)[IID]["bot_pid"] == bot_pid

    # SIGHUP to the supervisor does what reload does (systemd's ExecReload=)
    write(home, strategy_config={"grid_lower_price": 141, "grid_upper_price": 161, "quantity": 0.25})
    os.kill(rec["pid"], signal.SIGHUP)
    moved = wait_for(lambda: (o := resting(home)) and 141.0 in o and o, 60, "the range move by SIGHUP")
    assert all(moved[p][0] == sized[p][0] for p in sized if 142.0 <= p <= 161.0)
    assert wait_for(lambda: "reload (SIGHUP) finished with exit code 0" in daemon_log(home, IID), 60, "the log")
    assert list_json(home)[IID]["bot_pid"] == bot_pid

    out = run_cli(home, "reload", IID)          # the SIGHUP's reload recorded what it applied
    assert out.returncode == 0 and "nothing changed" in out.stdout

    # the applied config is what a crash uses: the respawned bot adopts the very same orders
    os.kill(bot_pid, signal.SIGKILL)
    respawned = wait_for(lambda: (r := running(home)) and r["bot_pid"] != bot_pid and r, 60, "a respawned bot")
    assert respawned["pid"] == rec["pid"]
    assert wait_for(lambda: resting(home) == moved, 30, "the moved grid adopted after the crash")

    # and what a restart uses
    assert run_cli(home, "restart", "-i", IID).returncode == 0
    running(home)
    again = settled(home, len(moved))
    assert set(again) == set(moved) and {q for _, q in again.values()} == {0.25}


@pytest.mark.slow
def test_a_range_set_on_the_page_survives_a_reload_and_a_lowered_memory_limit_restarts_the_bot(home, bot):
    _, rec = bot
    settled(home, 20)
    token = (home / "logs" / IID / "web.token").read_text().strip()
    page = f"http://127.0.0.1:{rec['web_port']}"
    moved = requests.post(f"{page}/api/grid/adjust", json={"grid_lower_price": 145, "grid_upper_price": 165},
                          headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert moved.status_code == 200, moved.text

    write(home, strategy_config={"quantity": 0.25})
    out = run_cli(home, "reload", IID)
    assert out.returncode == 0, out.stderr
    grid = requests.get(f"{page}/api/status", timeout=10).json()["grid"]
    assert (grid["lower"], grid["upper"]) == (145.0, 165.0)      # the config's range was not edited
    assert {q for _, q in resting(home).values()} == {0.25}

    write(home, daemon_config={"web_port": PORT, "health_check_interval": 1, "stop_timeout": 10,
                               "memory_limit_mb": 5}, strategy_config={"quantity": 0.25})
    out = run_cli(home, "reload", IID)
    assert out.returncode == 0, out.stderr
    assert "daemon_config.memory_limit_mb: 512 -> 5  (supervisor)" in out.stdout
    wait_for(lambda: list_json(home)[IID]["restart_count"] >= 1, 60, "a restart")
    assert "over memory_limit_mb 5" in daemon_log(home, IID)
    assert psutil.Process(rec["pid"]).is_running()          # the same supervisor applied it


def test_diff_classifies_each_field_and_masks_secrets():
    old = fingerprint({"exchange_config": {"secret_key": "s" * 20}, "daemon_config": {"memory_limit_mb": 512},
                       "strategy_config": {"quantity": 0.5, "grid_type": "neutral"}})
    new = fingerprint({"exchange_config": {"secret_key": "t" * 20}, "daemon_config": {"memory_limit_mb": 256},
                       "strategy_config": {"quantity": 0.4, "grid_type": "long"}})
    changes = {p: (shown(a), shown(b), who) for p, a, b, who in diff(old, new)}
    assert changes == {"exchange_config.secret_key": ("****", "****", "restart"),
                       "daemon_config.memory_limit_mb": ("512", "256", "supervisor"),
                       "strategy_config.quantity": ("0.5", "0.4", "bot"),
                       "strategy_config.grid_type": ('"neutral"', '"long"', "restart")}
    assert classify("daemon_config.web_port") == classify("daemon_config.db_path") == "restart"
    urls = fingerprint({"daemon_config": {"notify": {"urls": ["tgram://123:AAbbCCdd/456"]}}})
    assert shown(urls["daemon_config"]["notify"]) == '{"urls": ["****"]}'


def test_reload_names_a_missing_or_unknown_instance(home):
    out = run_cli(home, "reload")
    assert out.returncode == 2 and "name an instance" in out.stderr
    out = run_cli(home, "reload", "nobody")
    assert out.returncode == 4 and "unknown instance" in out.stderr and "Traceback" not in out.stderr
    out = run_cli(home, "reload", "-c", "missing.json")
    assert out.returncode == 2 and "cannot read config file" in out.stderr and "Traceback" not in out.stderr
