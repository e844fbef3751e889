"""A full grid session under the daemon on the faithful Backpack server (issue 9's proof).

Partial fills throughout, listed a second late, grid levels outside the venue's price band, a flat position answered
404 at start, a maintenance window and a clock skew mid-run: the same bot process trades through
all of it, and at the end its books (the fills in its database) equal the server's account.
"""
from __future__ import annotations

import json
import sqlite3
import time
from collections import Counter

import pytest

from tests.conftest import run_cli, wait_for
from tests.core.util import list_json, read_int
from tests.exchanges.backpack_server import TEST_PUBLIC_B64, BackpackServer
from tests.exchanges.test_backpack_daemon import KEYS, write_config

pytestmark = pytest.mark.slow


def booked(home, iid: str) -> tuple[int, float]:
    """(fills, signed quantity) in the bot's own database."""
    with sqlite3.connect(home / "database" / f"{iid}.db") as conn:
        rows = conn.execute("SELECT side, qty FROM fills").fetchall()
    return len(rows), round(sum(q if s == "buy" else -q for s, q in rows), 8)


def test_a_session_through_partial_fills_bands_404_maintenance_and_skew_ends_with_equal_books(home):
    with BackpackServer(center=150.0, amplitude=3.0, period=6.0) as server:
        server.partial_fill_qty = 0.03                 # a 0.1 order fills in pieces
        server.fill_listing_delay = 1.0                # and its fills are listed a second late
        cfg = write_config(home, "bp_real", server.url)
        doc = cfg.read_text().replace('"grid_lower_price": 146', '"grid_lower_price": 110') \
                             .replace('"grid_upper_price": 154', '"grid_upper_price": 190') \
                             .replace('"grid_num": 8', '"grid_num": 40')
        cfg.write_text(doc)
        started = run_cli(home, "start", "-c", str(cfg), "-d", env=KEYS)
        assert started.returncode == 0, started.stderr + started.stdout     # flat: 404, not an exit
        try:
            assert server.errors["RESOURCE_NOT_FOUND"] >= 1
            # An order filled in pieces (two fills or more). Its PartiallyFilled status lasts only
            # between two of the server's matches, which run when the bot calls: a poll of that
            # status raced the bot's pace and could miss every one.
            wait_for(lambda: len(server.fills) >= 4 and max(Counter(f["orderId"] for f in server.fills).values()) >= 2,
                     timeout=60, what="partial fills")
            pid = read_int(home / "logs" / "bp_real" / "bot.pid")

            server.maintenance(3)
            wait_for(lambda: time.time() > server.maintenance_until, timeout=10, what="the end of maintenance")
            assert server.errors["MAINTENANCE"] >= 1
            fills = len(server.fills)
            wait_for(lambda: len(server.fills) > fills + 2, timeout=60, what="fills after maintenance")

            server.clock_offset_ms = 30_000
            placed = len(server.orders)
            wait_for(lambda: len(server.orders) > placed + 2, timeout=60, what="orders after the clock skew")
            assert server.errors["UNAUTHORIZED"] >= 1
            assert read_int(home / "logs" / "bp_real" / "bot.pid") == pid   # one process through it all
            assert server.errors["INVALID_PRICE"] >= 1                      # the band refused far levels
            assert server.duplicates == []
        finally:
            stopped = run_cli(home, "stop", "-c", str(cfg), env=KEYS)
        assert stopped.returncode == 0, stopped.stderr
        account = server.accounts[TEST_PUBLIC_B64]
        mine = [f for f in server.fills if f["_key"] == TEST_PUBLIC_B64]
        assert booked(home, "bp_real") == (len(mine), round(account.qty["SOL_USDC_PERP"], 8))


def test_a_key_without_trading_rights_is_fatal_once_not_a_skipped_level(home):
    """FORBIDDEN (openapi.yaml's code for a key lacking a permission) on the first placement: the
    bot stops for good with exit 3 and an authentication message; nothing retries it."""
    with BackpackServer(price=150.0) as server:
        server.read_only_keys.add(TEST_PUBLIC_B64)
        cfg = write_config(home, "bp_ro", server.url)
        run_cli(home, "start", "-c", str(cfg), "-d", env=KEYS)
        record = wait_for(lambda: list_json(home, "--all").get("bp_ro", {}).get("status") == "fatal"
                          and list_json(home, "--all")["bp_ro"], timeout=40, what="a fatal instance")
        assert record["restart_count"] == 0 and server.orders == []
        refused = server.errors["FORBIDDEN"]
        time.sleep(2)
        assert server.errors["FORBIDDEN"] == refused == 1
        assert "authentication failed" in json.dumps(list_json(home, "--all")["bp_ro"]), list_json(home, "--all")["bp_ro"]
