"""run.py as a real process: bad input exits 2 before any order, SIGTERM, kill -9 and restart."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections import Counter

import psutil
import pytest

from exchanges import client_ids
from tests.bot.proc import (bot_config, open_paper_orders, query, run_bot, running_bot, scalar, start_bot,
                            terminate)
from tests.conftest import REPO, RUN_PY, home_env, wait_for


@pytest.mark.parametrize("flags, message", [
    (["--grid-num", "1"], "grid_num"),
    (["--grid-lower", "160", "--grid-upper", "140"], "grid_lower_price"),
    (["--quantity", "0.001"], "quantity: 0.001 is below the market minimum 0.01"),
    (["--max-position", "100000"], "max_position: 100000"),
    (["--grid-mode", "spiral"], "invalid choice: 'spiral'"),
    (["--ticks", "5"], "--ticks and --prices need --backtest"),
    (["--auto-price", "--price-range", "5"], "price_range: 5.0 is invalid"),
    (["--exchange", "nosuch"], 'metadata.exchange: "nosuch" is not one of paper'),
])
def test_bad_flags_and_impossible_parameters_exit_2_before_any_order(home, flags, message):
    cfg = bot_config(home)
    db = home / "bad.db"
    out = run_bot(home, "--config", str(cfg), "--db-path", str(db), "--no-web", "--duration", "1", *flags)
    assert out.returncode == 2, out.stdout + out.stderr
    assert message in out.stderr
    assert scalar(db, "SELECT COUNT(*) FROM paper_orders") in (None, 0)
    assert not (home / "logs" / "bot_t1" / "heartbeat").exists()


def test_auto_price_centres_the_range_and_duration_ends_with_exit_0(home):
    cfg = bot_config(home)
    out = run_bot(home, "--config", str(cfg), "--no-web", "--auto-price", "--price-range", "0.05",
                  "--grid-num", "11", "--duration", "0.3")
    assert out.returncode == 0, out.stderr
    assert "grid 142.5..157.5 x11" in out.stdout      # 150 +- 5%
    assert "duration of 0.3 s reached" in out.stdout and "FINAL bot_t1" in out.stdout


def test_a_missing_config_file_exits_2(home):
    out = run_bot(home, "--config", str(home / "nope.json"), "--no-web")
    assert out.returncode == 2 and "nope.json" in out.stderr


def test_sigterm_cancels_every_order_and_exits_0(home):
    cfg = bot_config(home)
    db = home / "database" / "bot_t1.db"
    with running_bot(home, cfg, "--no-web") as proc:
        wait_for(lambda: len(open_paper_orders(db)) >= 10, what="the grid's orders")
        wait_for(lambda: (home / "logs" / "bot_t1" / "heartbeat").exists(), what="the first heartbeat")
        out, err = terminate(proc)
    assert proc.returncode == 143, err  # 128 + SIGTERM: ended gracefully on SIGTERM
    assert open_paper_orders(db) == []
    assert "SIGTERM" in out and "FINAL bot_t1" in out and "grid profit" in out


def test_a_long_interval_keeps_the_heartbeat_fresh_and_sigterm_is_prompt(home):
    cfg = bot_config(home, strategy={"interval": 600})
    beat = home / "logs" / "bot_t1" / "heartbeat"
    with running_bot(home, cfg, "--no-web") as proc:
        wait_for(beat.exists, what="the first heartbeat")
        first = beat.stat().st_mtime
        wait_for(lambda: beat.stat().st_mtime > first, what="a heartbeat while waiting for the next turn")
        out, err = terminate(proc)              # not 600 s: the wait is interruptible
    assert proc.returncode == 143, err  # 128 + SIGTERM: ended gracefully on SIGTERM
    assert "FINAL bot_t1" in out


def test_a_supervised_bot_stops_when_its_parent_disappears(home):
    """Fallback to PDEATHSIG: a bot started with INSTANCE_ID whose parent dies cancels and exits.

    Its stdout and stderr are pipes read by the parent, as the supervisor's are: once the parent is
    gone every print fails (EPIPE), and that must not stop the bot from cancelling its orders.
    """
    cfg = bot_config(home)
    db = home / "database" / "bot_t1.db"
    beat = home / "logs" / "bot_t1" / "heartbeat"
    launcher = ("import os, subprocess, sys, time; p = subprocess.Popen(sys.argv[2:], stdout=subprocess.PIPE, "
                "stderr=subprocess.PIPE, stdin=subprocess.DEVNULL); "
                "[time.sleep(0.05) for _ in range(600) if not os.path.exists(sys.argv[1])]; "
                "print(p.pid, flush=True)")                   # exits once the bot is up, as a dying supervisor would
    env = home_env(home, {"INSTANCE_ID": "bot_t1"})
    out = subprocess.run([sys.executable, "-c", launcher, str(beat), sys.executable, str(RUN_PY), "--config", str(cfg),
                          "--no-web"], cwd=str(REPO), env=env, capture_output=True, text=True, timeout=30)
    bot = psutil.Process(int(out.stdout.split()[0]))
    try:
        bot.wait(timeout=30)                    # the launcher is gone: the bot notices and ends
    finally:
        if bot.is_running():
            bot.kill()
    assert open_paper_orders(db) == []
    assert "the supervisor is gone" in " ".join(r[0] for r in query(db, "SELECT message FROM events"))


def test_kill_9_and_restart_places_no_duplicates_and_matches_the_exchange(home):
    cfg = bot_config(home, exchange={"max_fill_qty": 0.2})        # partial fills too
    db = home / "database" / "bot_t1.db"
    proc = start_bot(home, cfg, "--no-web")
    try:
        wait_for(lambda: (scalar(db, "SELECT COUNT(*) FROM paper_fills") or 0) >= 8, what="some fills")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        before = {o["id"] for o in open_paper_orders(db)}
        assert before, "the killed bot left its orders resting"

        again = start_bot(home, cfg, "--no-web", "--duration", "1.5")
        out, err = again.communicate(timeout=60)
    finally:
        for p in (proc, locals().get("again")):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()
    assert again.returncode == 0, err
    assert "restored grid state" in out
    # no level ever got two orders of the same role: every order the restarted bot placed or adopted
    rows = query(db, "SELECT client_id, created_ms, updated_ms, status FROM orders")
    placed = Counter(client_ids.decode(r[0])[1:3] for r in rows if r[3] == "open")
    assert all(n == 1 for n in placed.values()), placed
    # every exchange fill was booked exactly once, and the books agree with the exchange
    exchange_fills = {r[0] for r in query(db, "SELECT trade_id FROM paper_fills")}
    booked_fills = {r[0] for r in query(db, "SELECT trade_id FROM fills")}
    assert exchange_fills == booked_fills
    position = scalar(db, "SELECT SUM(CASE side WHEN 'buy' THEN qty ELSE -qty END) FROM fills") or 0.0
    account = json_of(db, "SELECT data FROM paper_account")
    assert position == pytest.approx(account["pos_qty"])
    totals = json_of(db, "SELECT value FROM grid_state WHERE key = 'perp_grid'")["totals"]
    assert totals["fill_count"] == len(exchange_fills)
    assert totals["fees"] == pytest.approx(account["fees"])
    assert open_paper_orders(db) == []                           # the duration end cancelled them


def json_of(db, sql):
    return json.loads(scalar(db, sql))


def test_backtest_prints_a_report(home, tmp_path):
    cfg = bot_config(home)
    out = run_bot(home, "--config", str(cfg), "--backtest", "--ticks", "20000")
    assert out.returncode == 0, out.stderr
    for word in ("grid profit", "total PnL", "fees", "fills", "max drawdown", "ticks/s"):
        assert word in out.stdout
    assert "20,000 in" in out.stdout
    csv = tmp_path / "prices.csv"
    csv.write_text("time,price\n" + "".join(f"{1700000000 + i},{150 + (i % 7) - 3}\n" for i in range(300)))
    out = run_bot(home, "--config", str(cfg), "--backtest", "--prices", str(csv))
    assert out.returncode == 0, out.stderr
    assert "299 in" in out.stdout and "price          147.0000" in out.stdout
    bad = run_bot(home, "--config", str(cfg), "--backtest", "--prices", str(tmp_path / "missing.csv"))
    assert bad.returncode == 2 and "missing.csv" in bad.stderr


def test_no_secret_is_ever_printed(home):
    cfg = bot_config(home, strategy={"grid_num": 1})
    env_key = "sk_live_1234567890abcdef"
    doc = json.loads(cfg.read_text())
    doc["exchange_config"]["api_key"] = env_key
    cfg.write_text(json.dumps(doc))
    out = run_bot(home, "--config", str(cfg), "--no-web")
    assert out.returncode == 2
    assert env_key not in out.stdout + out.stderr
