"""An order that left the book having filled, with its fill not listed yet, is never sent twice.

Backpack's fill history lists a fill some time after the order traded (see `fill_listing_delay` in
tests/exchanges/backpack_venue.py), while the open orders already leave it out. A grid cell whose
order is gone wants it back; sent again before the fill is listed, it trades the same quantity a
second time once the price returns: a close sells the holding twice (the account goes short what
the grid never meant to sell), an opening order buys its level twice.

- In one process: the bot's reconcile finds the order gone (its venue record says Filled) and
  the cell waits for the fill instead of sending the order again. A range change that drops such
  an opening order's level hands what it bought to the new range, with a closing order, instead of
  leaving it for the fill to turn up as inventory nothing closes.
- Across a SIGKILL: a turn books its fills and places its orders in one database transaction,
  committed when the turn ends. A bot killed while the venue holds its answer to a placement left
  no trace of that order, so the next process sent the same closing order again (under the same
  client id). A real supervised run.py bot: the venue takes the order and sits on its answer
  (`lose_order_answers`: recorded before the wait), the test fills it, holds its fill out of the
  history, and SIGKILLs the bot by its recorded pid; the supervisor starts a new one.

The in-process cases run the strategy on the ccxt adapter against the same server, with a real
SQLite file (as tests/exchanges/test_late_listed_pieces.py).
"""
from __future__ import annotations

import json
import math
import os
import signal
import time

import pytest

from core.bot_status import read_bot_status
from core.paths import InstancePaths
from tests.bot.crash_loop import running_bot_pid
from tests.conftest import run_cli, wait_for
from tests.exchanges.backpack_server import TEST_PUBLIC_B64, BackpackServer
from tests.exchanges.test_backpack_daemon import KEYS, write_config
from tests.exchanges.test_late_listed_pieces import UNLISTED, killed, our_order, run
from tests.exchanges.test_strategy_on_backpack import placed_at

IID = "bp_sent"
SYMBOL = "SOL_USDC_PERP"
HELD_S = 30.0           # the venue sits on the close's answer this long; the bot's timeout is longer
FILL_READS = 8          # fill-history reads the new bot makes before the test looks (several turns)


def ours(server: BackpackServer, side: str, price: str) -> list[dict]:
    with server.lock:
        return [o for o in server.open.values() if o["_key"] == TEST_PUBLIC_B64 and (o["side"], o["price"]) == (side, price)]


def position(server: BackpackServer) -> float:
    with server.lock:
        return server.accounts[TEST_PUBLIC_B64].qty.get(SYMBOL, 0.0)


def trading_since(paths: InstancePaths, at: float) -> bool:
    status = read_bot_status(paths.bot_status) or {}
    return status.get("state") == "trading" and status.get("updated_at", 0) > at


def fill_reads(server: BackpackServer) -> int:
    return server.hits["GET /wapi/v1/history/fills"]


def hold_listing(server: BackpackServer, order_id: str, until: float = math.inf) -> None:
    """The venue lists this order's fills only at `until` (seconds since the epoch; 0: now)."""
    with server.lock:
        for fill in server.fills:
            if fill["orderId"] == order_id:
                fill["_listed"] = until * 1000


def bought_unlisted(server: BackpackServer, home, monkeypatch):
    """A started bot whose buy at 149 has filled, its fill not listed yet (the price back at 149.5)."""
    strat, ex, db = run(server, home, monkeypatch)
    buy = our_order(server, "Bid", "149")
    server.fill_listing_delay = UNLISTED
    server.set_price(148.99)                    # the buy fills; the history does not list it yet
    server.set_price(149.5)
    assert buy["status"] == "Filled"
    return strat, ex, db


def test_a_close_gone_filled_before_its_fill_is_listed_is_not_sent_again(home, monkeypatch):
    with BackpackServer(price=150.0) as server:
        strat, ex, db = run(server, home, monkeypatch)
        server.set_price(148.99)                # the buy at 149 fills (listed): cell 9 closes at 150
        server.set_price(149.5)
        strat.step()
        close = our_order(server, "Ask", "150")
        server.fill_listing_delay = UNLISTED
        server.set_price(150.0)                 # the close fills; the history does not list it yet
        server.set_price(149.5)
        assert close["status"] == "Filled"
        strat.reconcile()                       # the bot sees it gone from the book
        for _ in range(3):
            strat.step()
        assert placed_at(server)[("Ask", "150")] == 1, "the holding was offered for sale twice"
        server.fill_listing_delay = 0.0         # listed: the cell closed once, and opens again
        strat.step()
        strat.step()
        assert strat.cells[9].held == 0.0 and strat.totals.cycles == 1
        assert position(server) == pytest.approx(0.0) and strat.owned() == pytest.approx(0.0)
        assert placed_at(server)[("Bid", "149")] == 2 and placed_at(server)[("Ask", "150")] == 1
        killed(ex, db)


def test_an_opening_order_gone_filled_before_its_fill_is_listed_is_not_sent_again(home, monkeypatch):
    with BackpackServer(price=150.0) as server:
        strat, ex, db = bought_unlisted(server, home, monkeypatch)
        strat.reconcile()
        for _ in range(3):
            strat.step()
        assert placed_at(server)[("Bid", "149")] == 1, "the level was bought twice"
        server.fill_listing_delay = 0.0         # listed: the cell holds it and closes it
        strat.step()
        strat.step()
        assert strat.cells[9].held == pytest.approx(0.1) and position(server) == pytest.approx(0.1)
        assert placed_at(server)[("Bid", "149")] == 1 and placed_at(server)[("Ask", "150")] == 1
        killed(ex, db)


def test_a_dropped_levels_buy_gone_filled_unlisted_is_handed_to_the_new_range_with_a_closing_order(home, monkeypatch):
    """adjust_range re-centres right after the price crossed levels: a level the change drops had
    its buy filled, with the fill not listed yet, and the venue's record of the order says Filled.
    What it bought is the grid's, so the new layout gives it a closing order, as it does to what a
    dropped cell holds. Left out, the fill turned up later as carried inventory with no order to
    close it, until some later layout change."""
    with BackpackServer(price=150.0) as server:
        strat, ex, db = bought_unlisted(server, home, monkeypatch)
        strat.adjust_grid_range(140.5, 160.5)   # no cell keeps its edges: the level of 149 is dropped
        holders = [c for c in strat.cells if c.held > 0]
        assert [(c.side, c.held, c.cost) for c in holders] == [("long", pytest.approx(0.1), 149.0)], \
            "what the dropped level bought was not handed over"
        [holder] = holders
        assert holder.close_order is not None and float(our_order(server, "Ask", "150.5")["quantity"]) == 0.1
        assert strat.owned() == pytest.approx(0.0)      # the books lag the account by the unlisted fill
        server.fill_listing_delay = 0.0         # listed: it is what the hand-over anticipated
        strat.step()
        assert strat.carried == pytest.approx(0.0), "the listed fill became inventory no order closes"
        assert strat.owned() == pytest.approx(position(server)) == pytest.approx(0.1)
        server.set_price(150.5)                 # the new closing order sells it
        server.set_price(150.0)
        strat.step()
        assert position(server) == pytest.approx(0.0) and strat.owned() == pytest.approx(0.0)
        assert holder.held == 0.0 and strat.totals.cycles == 1
        killed(ex, db)


@pytest.mark.slow
def test_a_close_sent_before_a_sigkill_and_filled_unlisted_is_not_sent_again(home):
    paths = InstancePaths(IID, home / "logs" / IID)
    with BackpackServer(price=150.0) as server:
        cfg = write_config(home, IID, server.url, timeout_ms=int(HELD_S * 2000))
        doc = json.loads(cfg.read_text())
        doc["daemon_config"].update({"restart_delay": 0.1, "max_restart_attempts": 5})
        doc["strategy_config"].update({"grid_lower_price": 140, "grid_upper_price": 160, "grid_num": 21})
        cfg.write_text(json.dumps(doc, indent=2))
        started = run_cli(home, "start", "-c", str(cfg), "-d", env=KEYS)
        assert started.returncode == 0, started.stderr + started.stdout
        try:
            wait_for(lambda: ours(server, "Bid", "149"), timeout=40, what="the grid's buy at 149")
            server.lose_order_answers(1, HELD_S)
            server.set_price(148.99)                # the buy at 149 fills: the cell closes at 150
            server.set_price(149.5)
            [close] = wait_for(lambda: ours(server, "Ask", "150"), timeout=30,
                               what="the closing order at 150 (its answer held by the venue)")
            with server.lock:
                server.set_price(150.0)             # the close fills whole; its fill is not listed yet
                server.set_price(149.5)
                hold_listing(server, close["id"])
            assert close["status"] == "Filled" and position(server) == pytest.approx(0.0)
            old_bot = wait_for(lambda: running_bot_pid(home, IID), timeout=10, what="the bot's pid")
            os.kill(old_bot, signal.SIGKILL)        # still waiting for the close's answer

            at = time.time()
            wait_for(lambda: running_bot_pid(home, IID) not in (None, old_bot), timeout=30, what="a new bot process")
            wait_for(lambda: trading_since(paths, at), timeout=40, what="the new bot trading")
            reads = fill_reads(server)
            wait_for(lambda: fill_reads(server) >= reads + FILL_READS, timeout=40, what="the new bot's turns")
            assert placed_at(server)[("Ask", "150")] == 1, "the close was sent again: the holding sold twice"
            assert position(server) == pytest.approx(0.0)

            hold_listing(server, close["id"], until=0)  # the fill is listed at last: the books agree
            wait_for(lambda: (read_bot_status(paths.bot_status) or {}).get("fill_count") == 2, timeout=30,
                     what="the bot booking the close's fill")
            assert position(server) == pytest.approx(0.0)
            assert (read_bot_status(paths.bot_status) or {}).get("position") == pytest.approx(0.0)
        finally:
            stopped = run_cli(home, "stop", "-c", str(cfg), env=KEYS)
        assert stopped.returncode == 0, stopped.stderr + stopped.stdout
