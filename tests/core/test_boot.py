"""Issue 11 item 1: desired state, `resume` after a power loss, and the systemd units of `startup`."""
from __future__ import annotations

import json
import re
import shutil
import subprocess

import psutil
import pytest

from core.bot_status import read_bot_status
from core.events import RESUMED, fleet_events_path, read_events
from database.db import Database
from exchanges.paper_exchange import PaperExchange
from notify.messages import render
from tests.bot.proc import SYMBOL, bot_config, query, scalar
from tests.conftest import kill_home_processes, run_cli, wait_for
from tests.core.util import list_json, registry, start, write_config


@pytest.mark.slow
def test_power_loss_then_resume_brings_back_exactly_the_running_ones(home):
    paths = {iid: write_config(home, iid) for iid in ("keep_a", "keep_b", "parked")}
    for path in paths.values():
        assert start(home, path).returncode == 0
    assert run_cli(home, "stop", "-i", "parked").returncode == 0  # the trader's stop: stays down
    books = home / "database" / "keep_a.db"
    books.write_bytes(b"SQLite format 3\0 books")
    before = {iid: rec["pid"] for iid, rec in registry(home).items()}
    assert kill_home_processes(home)  # power loss: every supervisor, keeper and bot dies by SIGKILL
    assert not any(psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
                   for pid in before.values())
    assert {k: v["status"] for k, v in list_json(home, "--all").items()} == \
        {"keep_a": "dead", "keep_b": "dead", "parked": "stopped"}
    out = run_cli(home, "resume")
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    assert any(line.startswith("keep_a: resumed") for line in lines), out.stdout
    assert any(line.startswith("keep_b: resumed") for line in lines), out.stdout
    assert "parked" not in out.stdout
    for iid in ("keep_a", "keep_b"):   # the fake bots publish no books: the digest says so, it does not wait
        assert f"  {iid}: no books were saved before it went down" in lines, out.stdout
    listed = list_json(home, "--all")
    assert {k: v["status"] for k, v in listed.items()} == \
        {"keep_a": "running", "keep_b": "running", "parked": "stopped"}
    assert books.read_bytes() == b"SQLite format 3\0 books"  # the same books, not a fresh database
    resumed = [e for e in read_events(fleet_events_path(home))[0] if e["kind"] == "resumed"]
    assert len(resumed) == 1 and resumed[0]["payload"]["started"] == ["keep_a", "keep_b"]
    assert resumed[0]["payload"]["failed"] == {} and resumed[0]["payload"]["skipped"] == ["parked"]
    again = run_cli(home, "resume")  # nothing left to do: never a second supervisor
    assert again.returncode == 0 and "nothing to resume" in again.stdout
    out = run_cli(home, "stop-all", "--keep-desired")  # a shutdown: resume would bring them back
    assert out.returncode == 0 and all(registry(home)[i]["desired_state"] == "running" for i in ("keep_a", "keep_b"))
    wait_for(lambda: not any(r["status"] == "running" for r in list_json(home, "--all").values()),
             what="every instance stopped")


def _gap_down_while_off(db_path, exchange_config: dict) -> int:
    """The paper venue's market moves while the fleet is off: one step of the real paper exchange
    (its account lives in the instance database) to half a tick-level below its second-highest
    resting buy, so the two highest buys fill on the venue. Returns how many fills it made."""
    db = Database(db_path)
    try:
        venue = PaperExchange.from_config(exchange_config, instance_id="digest_01", db=db)
        buys = sorted(o.price for o in venue.orders.values() if o.side == "buy")
        assert len(buys) >= 2, "the grid rests at least two buys below the price"
        venue.source.price = buys[-2] - 0.5          # volatility 0: the next step lands exactly here
        fills_then = len(db.query("SELECT trade_id FROM paper_fills"))
        assert venue.step()
        return len(db.query("SELECT trade_id FROM paper_fills")) - fills_then
    finally:
        db.close()


@pytest.mark.slow
def test_resume_digest_reports_the_fills_booked_on_reconcile_and_the_position_then_and_now(home):
    cfg = bot_config(home, "digest_01", exchange={"volatility": 0}, strategy={"interval": 0.2},
                     daemon={"health_check_interval": 0.3, "stop_timeout": 10})
    db = home / "database" / "digest_01.db"
    status_file = home / "logs" / "digest_01" / "bot_status.json"
    assert start(home, cfg).returncode == 0
    try:
        wait_for(lambda: (s := read_bot_status(status_file)) and s["state"] == "trading" and s["open_order_count"],
                 60, "the bot trading with resting orders")
        assert kill_home_processes(home)              # power loss: supervisor and bot die by SIGKILL
        saved = read_bot_status(status_file)
        booked_then = scalar(db, "SELECT COUNT(*) FROM fills")
        position_then = json.loads(scalar(db, "SELECT data FROM paper_account"))["pos_qty"]
        assert saved["fill_count"] == booked_then and saved["position"] == pytest.approx(position_then)
        made = _gap_down_while_off(db, json.loads(cfg.read_text())["exchange_config"])
        assert made == 2 and scalar(db, "SELECT COUNT(*) FROM fills") == booked_then  # not booked yet

        out = run_cli(home, "resume", timeout=180)
        assert out.returncode == 0, out.stdout + out.stderr
        found = re.search(r"^  digest_01: (\d+) fills booked on reconcile; position (\S+) -> (\S+) (\S+); "
                          r"realized ([+-][\d.]+) USDC$", out.stdout, re.M)
        assert found, out.stdout
        position_now = json.loads(scalar(db, "SELECT data FROM paper_account"))["pos_qty"]
        assert int(found[1]) == scalar(db, "SELECT COUNT(*) FROM fills") - booked_then == made
        assert float(found[2]) == pytest.approx(position_then) and float(found[3]) == pytest.approx(position_now)
        assert position_now == pytest.approx(position_then + 2 * 0.5) and found[4] == SYMBOL
        assert {r[0] for r in query(db, "SELECT trade_id FROM fills")} == \
            {r[0] for r in query(db, "SELECT trade_id FROM paper_fills")}   # each venue fill booked once
        event = [e for e in read_events(fleet_events_path(home))[0] if e["kind"] == RESUMED][-1]
        assert event["payload"]["digest"] == [found[0].strip()]
        assert found[0].strip() in render(event)[1]     # the notification shows it too
    finally:
        run_cli(home, "stop", "-i", "digest_01")


def test_startup_prints_units_that_systemd_accepts(home):
    out = run_cli(home, "startup")
    assert out.returncode == 0, out.stderr
    assert f"--home {home} resume" in out.stdout and "stop-all --keep-desired" in out.stdout
    assert "After=network-online.target" in out.stdout and "start -c config/active/%i.json" in out.stdout
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    units = [block for block in out.stdout.split("# /etc/systemd/system/")[1:]]
    assert len(units) == 2
    for block in units:
        name, text = block.split("\n", 1)
        unit = home / name
        unit.write_text(text.split("\n# ")[0])
        done = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
