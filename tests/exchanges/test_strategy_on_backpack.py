"""PerpGridStrategy on the ccxt adapter against the local Backpack server (real HTTP and signatures).

The server records every request and every order, so the checks are made from the venue's side:
a grid start is one batch request and leaves the same book as placing one by one, and an order
whose answer is lost (accepted, then answered after the client's timeout) is adopted on the next
turn, never placed a second time; the last test does it with run.py as a real process.
"""
from __future__ import annotations

import json
from collections import Counter

import pytest

from database.db import Database
from exchanges import client_ids, create_exchange
from exchanges.base import Exchange, ExchangeUnavailable
from strategies.grid_params import GridParams
from strategies.perp_grid_strategy import PerpGridStrategy
from tests.bot.proc import query, running_bot, terminate
from tests.conftest import wait_for
from tests.exchanges.backpack_server import TEST_PUBLIC_B64, TEST_SEED_B64, BackpackServer

SYMBOL = "SOL_USDC_PERP"
IID = "bp_batch"
LEVELS = 20                                     # lines 140, 141, ..., 160 around the price 150
TIMEOUT_MS = 1500                               # the client gives up on an answer after this
LATE_S = 10.0                                   # ... and a lost answer comes this late


@pytest.fixture
def server():
    with BackpackServer(price=150.0) as srv:
        yield srv


def connect(server: BackpackServer, home, monkeypatch, batch: bool = True, db: Database | None = None) -> Exchange:
    """The ccxt exchange on `server`; without `batch` the venue is taken to have no batch orders."""
    monkeypatch.setenv("GRIDBOT_HOME", str(home))
    ex = create_exchange("backpack", {"api_key": TEST_PUBLIC_B64, "secret_key": TEST_SEED_B64,
                                      "base_url": server.url, "timeout_ms": TIMEOUT_MS}, instance_id=IID, db=db)
    if not batch:
        ex.client.has = {**ex.client.has, "createOrders": False}
    return ex


def strategy(ex: Exchange, store: Database | None = None) -> PerpGridStrategy:
    return PerpGridStrategy(ex, GridParams(SYMBOL, 140.0, 160.0, LEVELS + 1, 0.1), IID, store=store,
                            log=lambda _m: None)


def book(server: BackpackServer) -> list[tuple]:
    """The resting orders as the venue sees them (ids aside)."""
    return sorted((o["side"], o["price"], o["quantity"], o["clientId"], o["postOnly"]) for o in server.open.values())


def placed_at(server: BackpackServer) -> Counter:
    """How many orders the venue ever accepted per (side, price)."""
    return Counter((o["side"], o["price"]) for o in server.orders)


def test_a_grid_start_is_one_batch_request_and_leaves_the_book_one_by_one_would(home, monkeypatch, server):
    ex = connect(server, home, monkeypatch)
    strat = strategy(ex)
    strat.start()
    assert server.hits["POST /api/v1/orders"] == 1 and server.hits["POST /api/v1/order"] == 0
    with BackpackServer(price=150.0) as single_server:
        single_ex = connect(single_server, home, monkeypatch, batch=False)
        single = strategy(single_ex)
        single.start()
        assert single_server.hits["POST /api/v1/order"] == LEVELS and single_server.hits["POST /api/v1/orders"] == 0
        assert len(book(server)) == LEVELS and book(server) == book(single_server)
        assert [{**r, "id": None} for r in strat.open_orders()] == [{**r, "id": None} for r in single.open_orders()]
        single_ex.close()
    ex.close()


def test_a_batch_whose_answer_is_lost_is_adopted_on_the_next_turn_not_placed_again(home, monkeypatch, server):
    ex = connect(server, home, monkeypatch)
    strat = strategy(ex)
    server.lose_order_answers(1, LATE_S)
    with pytest.raises(ExchangeUnavailable):
        strat.start()                           # the venue took the whole grid; we never heard
    assert len(server.open) == LEVELS and strat.open_orders() == []
    strat.step()
    strat.step()
    assert server.hits["POST /api/v1/orders"] == 1 and server.hits["POST /api/v1/order"] == 0
    assert server.duplicates == [] and len(server.orders) == LEVELS
    assert sorted(r["client_id"] for r in strat.open_orders()) == sorted(o["clientId"] for o in server.open.values())
    ex.close()


def test_a_closing_order_whose_answer_is_lost_is_adopted_and_its_level_cycles_once(home, monkeypatch, server):
    ex = connect(server, home, monkeypatch)
    strat = strategy(ex)
    strat.start()
    server.set_price(148.99)                    # the buy at 149 fills: cell 9 holds 0.1, closes at 150
    server.lose_order_answers(1, LATE_S)
    with pytest.raises(ExchangeUnavailable):
        strat.step()                            # the close went out alone and rests unheard
    assert placed_at(server)[("Ask", "150")] == 1
    strat.step()
    strat.step()
    assert placed_at(server)[("Ask", "150")] == 1 and server.duplicates == []
    close = strat.cells[9].close_order
    assert close is not None and client_ids.decode(close.client_id)[1:3] == (9, client_ids.ROLE_CLOSE)
    server.set_price(150.0)                     # the adopted close fills: one cycle, the level re-arms
    strat.step()
    assert strat.totals.cycles == 1 and strat.position == 0
    assert placed_at(server)[("Bid", "149")] == 2 and server.duplicates == []
    assert len(book(server)) == LEVELS
    ex.close()


def test_a_venue_whose_fills_name_no_client_id_still_cycles_its_levels_across_a_restart(home, monkeypatch, server):
    """ccxt's unified trades carry no client id: the adapter gives each fill its order's, so the
    grid books it, closes it, and a restarted bot (new adapter, same database) books the close."""
    server.omit_fill_client_ids = True
    db = Database(home / "database" / f"{IID}.db")
    ex = connect(server, home, monkeypatch, db=db)
    strat = strategy(ex, db)
    strat.start()
    server.set_price(148.99)                    # the buy at 149 fills: cell 9 holds 0.1, closes at 150
    strat.step()
    assert strat.position == pytest.approx(0.1) and strat.totals.fill_count == 1
    close = strat.cells[9].close_order
    assert close is not None and placed_at(server)[("Ask", "150")] == 1
    ex.close()
    ex = connect(server, home, monkeypatch, db=db)
    strat = strategy(ex, db)
    strat.start()                               # restored: the close is adopted, nothing is doubled
    assert strat.cells[9].close_order is not None and strat.cells[9].close_order.id == close.id
    server.set_price(150.0)                     # the close fills: one cycle, the level re-arms
    strat.step()
    assert strat.totals.cycles == 1 and strat.position == 0 and strat.totals.fill_count == 2
    assert placed_at(server)[("Bid", "149")] == 2 and server.duplicates == [] and len(book(server)) == LEVELS
    assert server.hits["GET /wapi/v1/history/orders"] == 0      # every order was known from its placement
    ex.close()
    db.close()


@pytest.mark.slow
def test_run_py_on_a_venue_that_loses_answers_while_trading_never_doubles_a_level(home):
    """The bot's own loop: timeouts on placements while the price moves, then it trades on."""
    with BackpackServer(center=150.0, amplitude=3.0, period=6.0) as moving:
        cfg = home / "config" / "active" / f"{IID}.json"
        cfg.write_text(json.dumps({
            "metadata": {"instance_id": IID, "exchange": "backpack", "symbol": SYMBOL, "strategy": "perp_grid"},
            "exchange_config": {"api_key": TEST_PUBLIC_B64, "secret_key": TEST_SEED_B64, "base_url": moving.url,
                                "timeout_ms": TIMEOUT_MS},
            "strategy_config": {"grid_lower_price": 146, "grid_upper_price": 154, "grid_num": 9, "quantity": 0.1,
                                "interval": 0.3},
        }))
        db = home / "database" / f"{IID}.db"
        with running_bot(home, cfg, "--no-web") as proc:
            wait_for(lambda: len(moving.fills) >= 2, timeout=60, what="the grid trading")
            moving.lose_order_answers(3, LATE_S)
            wait_for(lambda: moving.late_answers == 0, timeout=60, what="three placements answered too late")
            fills = len(moving.fills)
            wait_for(lambda: len(moving.fills) >= fills + 3, timeout=60, what="trading on after the timeouts")
            assert moving.duplicates == []
            doubts = [m for m, in query(db, "SELECT message FROM events WHERE kind = 'order_in_doubt'")]
            assert len(doubts) >= 3, doubts         # one per order sent without an answer, each resolved
            out, err = terminate(proc, timeout=30)
        assert proc.returncode == 143, err  # 128 + SIGTERM: ended gracefully on SIGTERM
        assert "ExchangeUnavailable" in out and moving.duplicates == []
        assert moving.open == {}


def test_stopping_the_grid_cancels_only_its_own_orders_on_the_venue(home, monkeypatch, server):
    """The trader's manual orders (no client id, or another bot's) on the same account and symbol stay."""
    from exchanges.base import OrderRequest

    ex = connect(server, home, monkeypatch)
    other = client_ids.encode("someone_else", 3, client_ids.ROLE_OPEN, 1)
    theirs = [ex.place_order(OrderRequest(SYMBOL, "buy", 0.2, 120.0)),
              ex.place_order(OrderRequest(SYMBOL, "sell", 0.2, 180.0, client_id=other))]
    strat = strategy(ex)
    strat.start()
    assert len(server.open) == LEVELS + 2
    assert strat.shutdown("test") == LEVELS
    assert sorted(server.open) == sorted(o.id for o in theirs)
    ex.close()
