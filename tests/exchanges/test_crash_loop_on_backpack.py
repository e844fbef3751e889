"""The crash loop of issue 8 on the Backpack test server, with lagging fill history and lost answers.

The paper version is tests/bot/test_crash_loop.py; this one runs a real supervised run.py bot
against tests/exchanges/backpack_server.py, whose fills reach the history one to three seconds
after they happen, some behind later ones (`fill_listing_delay`, `fill_listing_jitter`), whose
orders fill in pieces, and which now and then takes an order but answers after the client gave
up (`lose_order_answers`). The bot and its supervisor
are SIGKILLed at random moments (the instance is started again after a supervisor kill) while
the venue's book is sampled: no (level, role) of the instance ever rests twice. At the end the
venue's fills of the instance's client ids are the database's fills, once each, no level's fills
ever held more than one order's size or less than nothing (an order sent again after it filled
unlisted), and the grid's holdings are the venue's position.
"""
from __future__ import annotations

import json
import random
import time

import pytest

from core.bot_status import read_bot_status
from core.paths import InstancePaths
from exchanges import client_ids
from tests.bot.crash_loop import grid_holdings, kill_loop, repeated, traded_twice
from tests.bot.proc import SYMBOL, query
from tests.conftest import run_cli, wait_for
from tests.exchanges.backpack_server import TEST_PUBLIC_B64, BackpackServer
from tests.exchanges.test_backpack_daemon import KEYS, write_config

pytestmark = pytest.mark.slow

KILLS = 6
IID = "bp_crash"
TIMEOUT_S = 1.5            # the client's timeout: a placement answered LATE_S later is lost to it
LATE_S = 3.0
# Fast restarts so N kills fit in a minute; a heartbeat is the bot's readiness (ccxt, markets, grid).
SUPERVISION = {"restart_delay": 0.1, "max_backoff": 0.5, "max_restart_attempts": 100, "startsecs": 20,
               "stop_timeout": 15, "health_check_interval": 0.3, "heartbeat_timeout": 30}


def resting_twice(server: BackpackServer) -> list[tuple]:
    """(level, role) of the instance resting more than once on the venue right now."""
    with server.lock:
        cids = [o["clientId"] for o in server.open.values()]
    return repeated(client_ids.decode(c)[1:3] for c in cids if client_ids.belongs_to(c, IID))


def our_venue_fills(server: BackpackServer) -> list[dict]:
    """The venue's fills of this instance's orders (its client ids), in the order they happened."""
    with server.lock:
        return sorted((f for f in server.fills if f["_key"] == TEST_PUBLIC_B64 and client_ids.belongs_to(f["clientId"], IID)),
                      key=lambda f: f["tradeId"])


def venue_fills(server: BackpackServer) -> set[str]:
    """Trade ids of the venue's fills of this instance's orders."""
    return {str(f["tradeId"]) for f in our_venue_fills(server)}


def booked_fills(db) -> set[str]:
    return {r[0] for r in query(db, "SELECT trade_id FROM fills")}


def test_random_sigkills_on_backpack_with_late_fills_and_lost_answers_double_nothing_and_lose_nothing(home):
    rng = random.Random(20261125)
    db = home / "database" / f"{IID}.db"
    with BackpackServer(center=150.0, amplitude=3.0, period=6.0) as server:
        server.partial_fill_qty = 0.03                 # a 0.1 order fills in pieces
        server.fill_listing_delay = 1.0                # listed a second or more after it happened,
        server.fill_listing_jitter = 2.0               # some behind fills that happened later
        cfg = write_config(home, IID, server.url, timeout_ms=int(TIMEOUT_S * 1000))
        doc = json.loads(cfg.read_text())
        doc["daemon_config"].update(SUPERVISION)
        cfg.write_text(json.dumps(doc, indent=2))

        def restart() -> None:
            started = run_cli(home, "start", "-c", str(cfg), "-d", env=KEYS)
            assert started.returncode == 0, started.stderr + started.stdout

        def lose_some_answers() -> None:
            if rng.random() < 0.5:
                server.lose_order_answers(1, LATE_S)

        restart()
        try:
            killed, seen = kill_loop(home, IID, KILLS, rng, lambda: resting_twice(server), restart,
                                     between=lose_some_answers)
            server.set_price(server.price_at(time.time()))   # the market stops moving
            wait_for(lambda: booked_fills(db) == venue_fills(server), timeout=30,
                     what="the bot to book the venue's late-listed fills")
            venue_position = server.accounts[TEST_PUBLIC_B64].qty[SYMBOL]
            wait_for(lambda: (read_bot_status(InstancePaths(IID, home / "logs" / IID).bot_status) or {}).get("position")
                     == pytest.approx(venue_position, abs=1e-9), timeout=30,
                     what="bot_status.json showing the venue's position")
        finally:
            stopped = run_cli(home, "stop", "-c", str(cfg), env=KEYS)
        assert stopped.returncode == 0, stopped.stderr + stopped.stdout
        assert {kind for kind, _ in killed} == {"bot", "supervisor"}   # the seed kills both kinds
        assert seen == [] and server.duplicates == []                       # 0 duplicate orders
        # none sent again after it filled
        assert traded_twice([(f["clientId"], float(f["quantity"])) for f in our_venue_fills(server)], 0.1) == []
        fills = venue_fills(server)
        assert len(fills) >= 4 and booked_fills(db) == fills                # 0 lost fills, none twice
        held, fill_count = grid_holdings(db)
        assert fill_count == len(fills)
        assert held == pytest.approx(server.accounts[TEST_PUBLIC_B64].qty[SYMBOL], abs=1e-9)
        assert server.answers_held >= 1                                     # some answers were lost
