"""An order that left the book having filled, with its fill not listed yet, is never sent twice.

Backpack's fill history lists a fill some time after the order traded (see `fill_listing_delay` in
tests/exchanges/backpack_venue.py), while the open orders already leave it out. A grid cell whose
order is gone wants it back; sent again before the fill is listed, it trades the same quantity a
second time once the price returns: a close sells the holding twice (the account goes short what
the grid never meant to sell), an opening order buys its level twice.

- In one process: the bot's reconcile finds the order gone (its venue record says Filled) and
  the cell waits for the fill instead of sending the order again.

The in-process cases run the strategy on the ccxt adapter against the same server, with a real
SQLite file (as tests/exchanges/test_late_listed_pieces.py).
"""
from __future__ import annotations

import pytest

from tests.exchanges.backpack_server import TEST_PUBLIC_B64, BackpackServer
from tests.exchanges.test_late_listed_pieces import UNLISTED, killed, our_order, run
from tests.exchanges.test_strategy_on_backpack import placed_at

SYMBOL = "SOL_USDC_PERP"


def position(server: BackpackServer) -> float:
    with server.lock:
        return server.accounts[TEST_PUBLIC_B64].qty.get(SYMBOL, 0.0)


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
        strat, ex, db = run(server, home, monkeypatch)
        buy = our_order(server, "Bid", "149")
        server.fill_listing_delay = UNLISTED
        server.set_price(148.99)                # the buy fills; the history does not list it yet
        server.set_price(149.5)
        assert buy["status"] == "Filled"
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
