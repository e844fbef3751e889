"""A restart while an order has filled pieces the venue does not list yet: each piece counts once.

Backpack answers an open order with its `executedQuantity`, which counts pieces its fill history
lists only later. A restarted bot reconciles its saved orders with that answer; the pieces are then
booked when listed. The books must count each piece once: an order's booked quantity (its listed
fills) is kept apart from what the venue reports executed. When they were one number, a listed piece
came on top of the venue's count, and after a restart the bot
- cancelled a closing order that still fit its cell and placed a new one for the whole holding,
  selling what the old one had already sold (more than the grid held);
- took a partly filled opening order for done while it still rested: the page and the database
  called it filled, and max_position let an extra opening order out (a position beyond it).

The strategy in this process on the ccxt adapter, against the local Backpack server over HTTP, with
a real SQLite file; a restart is a new adapter, store and strategy on the same file, with nothing
shut down (a SIGKILL). Pieces are made while the bot does not call (under the venue's lock), so
their count is exact.
"""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import time

import pytest

from core.bot_status import read_bot_status
from core.paths import InstancePaths
from database.db import Database
from exchanges.base import Exchange, ExchangeUnavailable
from strategies.grid_params import GridParams
from strategies.perp_grid_strategy import PerpGridStrategy
from tests.conftest import run_cli, wait_for
from tests.core.util import read_int
from tests.exchanges.backpack_server import TEST_PUBLIC_B64, BackpackServer
from tests.exchanges.test_backpack_daemon import KEYS, write_config
from tests.exchanges.test_backpack_daemon_faithful import booked
from tests.exchanges.test_strategy_on_backpack import IID, SYMBOL, connect, placed_at

UNLISTED = 1e9                                  # a listing delay that hides every fill
PIECE = 0.03                                    # what one price sample fills of an order


@pytest.fixture
def server():
    with BackpackServer(price=150.0) as srv:
        yield srv


def run(server: BackpackServer, home, monkeypatch, max_position: float | None = None
        ) -> tuple[PerpGridStrategy, Exchange, Database]:
    """A bot's life: adapter, store and strategy on this instance's database, started."""
    db = Database(home / "database" / f"{IID}.db")
    ex = connect(server, home, monkeypatch, db=db)
    strat = PerpGridStrategy(ex, GridParams(SYMBOL, 140.0, 160.0, 21, 0.1, max_position=max_position), IID,
                             store=db, log=lambda _m: None)
    strat.start()
    return strat, ex, db


def killed(ex: Exchange, db: Database) -> None:
    """The bot dies without a word: nothing cancelled, nothing saved beyond its last turn."""
    ex.close()
    db.close()


def two_pieces(server: BackpackServer, through: float, back: float, piece: float = PIECE) -> None:
    """The price touches `through` for two samples (two pieces of the order there fill), then
    rests at `back`. Under the venue's lock no request of the bot matches in between."""
    server.partial_fill_qty = piece
    with server.lock:
        server.set_price(through)
        server.set_price(back)


def our_order(server: BackpackServer, side: str, price: str) -> dict:
    [order] = [o for o in server.open.values()
               if o["_key"] == TEST_PUBLIC_B64 and (o["side"], o["price"]) == (side, price)]
    return order


def order_row(db: Database, order_id: str) -> tuple[str, float]:
    [row] = db.query("SELECT status, filled_qty FROM orders WHERE id=?", (order_id,))
    return row["status"], round(row["filled_qty"], 8)


def buy_exposure(server: BackpackServer) -> float:
    """The account's position if every resting buy of ours filled: what max_position bounds."""
    return server.accounts[TEST_PUBLIC_B64].qty[SYMBOL] + sum(
        float(o["quantity"]) - float(o["executedQuantity"]) for o in server.open.values() if o["side"] == "Bid")


def test_a_closing_order_with_unlisted_pieces_is_kept_after_a_restart_and_never_sells_more_than_held(
        home, monkeypatch, server):
    strat, ex, db = run(server, home, monkeypatch)
    server.set_price(148.99)                    # the buy at 149 fills whole: cell 9 holds 0.1, closes at 150
    strat.step()
    close = our_order(server, "Ask", "150")
    assert float(close["quantity"]) == pytest.approx(0.1)
    server.fill_listing_delay = UNLISTED
    two_pieces(server, 150.0, 149.5)            # the close sells 0.06, listed later
    executed = float(close["executedQuantity"])
    assert 0 < executed < 0.1 and close["status"] == "PartiallyFilled"
    killed(ex, db)

    strat, ex, db = run(server, home, monkeypatch)
    held = server.accounts[TEST_PUBLIC_B64].qty[SYMBOL]
    assert held == pytest.approx(0.1 - executed)
    # the close still fits the cell (0.1 booked held, of which it sold `executed` unlisted): it keeps
    # its place in the queue, and no order sells more than the account holds
    assert placed_at(server)[("Ask", "150")] == 1 and close["status"] == "PartiallyFilled"
    resting_sells = sum(float(o["quantity"]) - float(o["executedQuantity"]) for o in server.open.values()
                        if o["side"] == "Ask" and o["price"] == "150")
    assert resting_sells <= held + 1e-9
    [row] = [r for r in strat.open_orders() if r["id"] == close["id"]]
    assert row["filled_qty"] == pytest.approx(executed)

    server.fill_listing_delay = 0.0             # the pieces are listed: booked once each
    strat.step()
    assert strat.cells[9].held == pytest.approx(held) and strat.cells[9].close_order.id == close["id"]
    assert placed_at(server)[("Ask", "150")] == 1
    [row] = [r for r in strat.open_orders() if r["id"] == close["id"]]
    assert row["filled_qty"] == pytest.approx(executed)
    assert order_row(db, close["id"]) == ("open", round(executed, 8))

    server.partial_fill_qty = None
    server.set_price(150.0)                     # the rest of the close fills: one cycle, nothing left over
    strat.step()
    assert server.accounts[TEST_PUBLIC_B64].qty[SYMBOL] == pytest.approx(0.0)
    assert strat.owned() == pytest.approx(0.0) and strat.carried == 0.0 and strat.totals.cycles == 1
    assert order_row(db, close["id"]) == ("filled", 0.1)
    killed(ex, db)


def test_an_opening_order_with_unlisted_pieces_rests_as_itself_after_a_restart_and_max_position_holds(
        home, monkeypatch, server):
    max_position = 0.36                         # the buys at 149, 148, 147: a fourth would exceed it
    strat, ex, db = run(server, home, monkeypatch, max_position)
    buy = our_order(server, "Bid", "149")
    assert sorted(o["price"] for o in server.open.values() if o["side"] == "Bid") == ["147", "148", "149"]
    server.fill_listing_delay = UNLISTED
    two_pieces(server, 149.0, 149.5)            # the buy at 149 fills 0.06, listed later
    executed = float(buy["executedQuantity"])
    assert 0 < executed < 0.1 and buy["status"] == "PartiallyFilled"
    killed(ex, db)

    strat, ex, db = run(server, home, monkeypatch, max_position)
    server.fill_listing_delay = 0.0             # the pieces are listed: booked once each
    strat.step()
    strat.step()
    assert strat.cells[9].held == pytest.approx(executed)
    # max_position: the position plus every resting buy filling stays within it
    assert buy_exposure(server) <= max_position + 1e-9, sorted(o["price"] for o in server.open.values())
    # the buy still rests with 0.1 - executed to go: the bot says so, and so does its database
    assert buy["status"] == "PartiallyFilled"
    [row] = [r for r in strat.open_orders() if r["id"] == buy["id"]]
    assert row["filled_qty"] == pytest.approx(executed)
    assert order_row(db, buy["id"]) == ("open", round(executed, 8))
    killed(ex, db)


def test_a_close_and_stop_after_such_a_restart_waits_for_every_piece_and_leaves_the_account_flat(
        home, monkeypatch, server):
    """The opening order fills whole while its pieces are unlisted, then the trader flattens: the
    close waits for all of them (the order's whole quantity, not what the venue had left), so what
    it sells is the grid's whole position."""
    strat, ex, db = run(server, home, monkeypatch)
    buy = our_order(server, "Bid", "149")
    server.fill_listing_delay = UNLISTED
    two_pieces(server, 149.0, 149.5)            # the buy at 149 fills 0.06, listed later
    killed(ex, db)

    strat, ex, db = run(server, home, monkeypatch)
    server.partial_fill_qty = None
    server.set_price(149.0)                     # the rest of the buy fills, unlisted too
    server.set_price(149.5)
    assert buy["status"] == "Filled" and server.accounts[TEST_PUBLIC_B64].qty[SYMBOL] == pytest.approx(0.1)
    strat.flatten("flatten")                    # waits: the buy left the book with its fills unlisted
    assert not strat.stopped
    server.fill_listing_delay = 0.0
    for _ in range(10):
        if strat.stopped:
            break
        strat.step()
    assert strat.stopped and "incomplete" not in strat.stop_reason, strat.stop_reason
    assert server.accounts[TEST_PUBLIC_B64].qty[SYMBOL] == pytest.approx(0.0)
    assert strat.owned() == pytest.approx(0.0)
    killed(ex, db)


def test_a_state_saved_with_one_filled_amount_loads_and_counts_each_piece_once(home, monkeypatch, server):
    """A database of the previous version: an order ref had only `filled`, and a reconcile had set
    it from the venue (pieces not listed yet included). It loads; the booked amount is read from the
    fill ledger, and the closing order is kept as in the first test."""
    strat, ex, db = run(server, home, monkeypatch)
    server.set_price(148.99)                    # the buy at 149 fills whole: cell 9 holds 0.1, closes at 150
    strat.step()
    close = our_order(server, "Ask", "150")
    server.fill_listing_delay = UNLISTED
    two_pieces(server, 150.0, 149.5)            # the close sells 0.06, listed later
    executed = float(close["executedQuantity"])
    state = db.load_state("perp_grid")
    ref = state["cells"][9]["close_order"]
    assert ref["id"] == close["id"]
    del ref["executed"]
    ref["filled"] = executed                    # as the previous version's reconcile left it
    db.save_state("perp_grid", state)
    killed(ex, db)

    strat, ex, db = run(server, home, monkeypatch)
    assert placed_at(server)[("Ask", "150")] == 1 and close["status"] == "PartiallyFilled"
    server.fill_listing_delay = 0.0
    strat.step()
    assert strat.cells[9].held == pytest.approx(0.1 - executed) and strat.cells[9].close_order.id == close["id"]
    assert order_row(db, close["id"]) == ("open", round(executed, 8))
    server.partial_fill_qty = None
    server.set_price(150.0)
    strat.step()
    assert server.accounts[TEST_PUBLIC_B64].qty[SYMBOL] == pytest.approx(0.0) and strat.owned() == pytest.approx(0.0)
    killed(ex, db)


@pytest.mark.slow
def test_a_daemon_bot_killed_while_a_buy_fills_in_unlisted_pieces_keeps_max_position_and_its_order_row(home):
    """The same through the daemon: the bot is SIGKILLed after two pieces of its highest buy
    filled unlisted, the daemon respawns it, the pieces are listed. The buy still rests partly
    filled: its database row says so, and max_position still holds the fourth buy back."""
    iid, max_position = "bp_refill", 0.36       # buys at 149, 148, 147 (146 would exceed it)
    with BackpackServer(price=150.0) as server:
        cfg = write_config(home, iid, server.url)
        doc = json.loads(cfg.read_text())
        doc["strategy_config"].update(grid_num=9, max_position=max_position)    # lines 146, 147, ..., 154
        cfg.write_text(json.dumps(doc))
        paths = InstancePaths.for_instance(home, iid)
        started = run_cli(home, "start", "-c", str(cfg), "-d", env=KEYS)
        assert started.returncode == 0, started.stderr + started.stdout
        try:
            wait_for(lambda: sum(o["side"] == "Bid" for o in server.open.values()) == 3, timeout=60,
                     what="three resting buys")
            buy = our_order(server, "Bid", "149")
            server.fill_listing_delay = UNLISTED
            two_pieces(server, 149.0, 149.5)    # the buy fills 0.06, listed later
            executed = float(buy["executedQuantity"])
            bot_pid = read_int(paths.bot_pid)
            os.kill(bot_pid, signal.SIGKILL)
            wait_for(lambda: paths.bot_pid.exists() and read_int(paths.bot_pid) != bot_pid, timeout=30,
                     what="the bot respawned")
            respawned = time.time()
            wait_for(lambda: (read_bot_status(paths.bot_status) or {}).get("updated_at", 0) > respawned, timeout=60,
                     what="the respawned bot's first turn")
            server.fill_listing_delay = 0.0     # the pieces are listed
            wait_for(lambda: booked(home, iid)[0] == 2, timeout=30, what="both pieces booked")
            listed = time.time()
            wait_for(lambda: (read_bot_status(paths.bot_status) or {}).get("updated_at", 0) > listed + 1, timeout=30,
                     what="the bot's turns after the pieces were booked")
            assert buy["status"] == "PartiallyFilled"
            assert buy_exposure(server) <= max_position + 1e-9, sorted(o["price"] for o in server.open.values())
            with sqlite3.connect(home / "database" / f"{iid}.db") as conn:
                row = conn.execute("SELECT status, filled_qty FROM orders WHERE id=?", (buy["id"],)).fetchone()
            assert (row[0], round(row[1], 8)) == ("open", round(executed, 8))
        finally:
            stopped = run_cli(home, "stop", "-c", str(cfg), env=KEYS)
        assert stopped.returncode == 0, stopped.stderr
        mine = [f for f in server.fills if f["_key"] == TEST_PUBLIC_B64]
        assert booked(home, iid) == (len(mine), round(server.accounts[TEST_PUBLIC_B64].qty[SYMBOL], 8))


@pytest.mark.slow
def test_a_closing_order_adopted_with_listed_and_unlisted_pieces_counts_each_once(home, monkeypatch, server):
    """A close placed just before a SIGKILL, its answer never heard: the restart adopts it by client
    id. Two pieces of it were listed (booked on its cell by level before it is adopted), two are not
    yet. The adopted ref counts the booked ones from the fill ledger, so the close still fits the
    cell and is kept; the venue's figure (all four) was taken as booked, and the listed later ones
    added again."""
    listing = 3.0                               # the first pieces are listed before the restart, the others after
    strat, ex, db = run(server, home, monkeypatch)
    server.set_price(148.99)                    # the buy at 149 fills whole: cell 9 holds 0.1, closes at 150
    server.lose_order_answers(1, 10.0)
    with pytest.raises(ExchangeUnavailable):
        strat.step()                            # the close went out and rests unheard
    close = our_order(server, "Ask", "150")
    killed(ex, db)
    server.fill_listing_delay = listing
    two_pieces(server, 150.0, 149.5, 0.02)      # 0.04
    first = time.time()
    wait_for(lambda: time.time() > first + listing + 0.1, timeout=10, what="the first pieces listed")
    two_pieces(server, 150.0, 149.5, 0.02)      # 0.04 more: unlisted for `listing` s
    executed = float(close["executedQuantity"])
    assert 0.04 < executed < 0.1 and close["status"] == "PartiallyFilled"

    strat, ex, db = run(server, home, monkeypatch)
    assert strat.cells[9].close_order is not None and strat.cells[9].close_order.id == close["id"]
    assert strat.cells[9].held == pytest.approx(0.06)
    assert placed_at(server)[("Ask", "150")] == 1, "a fitting close was cancelled and placed again"
    server.fill_listing_delay = 0.0
    strat.step()
    held = server.accounts[TEST_PUBLIC_B64].qty[SYMBOL]
    assert strat.cells[9].held == pytest.approx(held) and placed_at(server)[("Ask", "150")] == 1
    server.partial_fill_qty = None
    server.set_price(150.0)
    strat.step()
    assert server.accounts[TEST_PUBLIC_B64].qty[SYMBOL] == pytest.approx(0.0) and strat.owned() == pytest.approx(0.0)
    killed(ex, db)


def test_a_range_change_frees_the_ids_of_orders_it_cancelled_once_their_pieces_are_listed(
        home, monkeypatch, server):
    """A range change's cancelled orders: their client ids are foreign (a fill listed later is
    carried, never booked on the new layout's cell of that level) only while Backpack's cancel
    answer (`executedQuantity`) says a piece is not listed yet; every other id is free at once, so
    a bot with adjust_range never runs out of a level's 2,048 ids (tests/bot/test_foreign_ids.py)."""
    strat, ex, db = run(server, home, monkeypatch)
    buy = our_order(server, "Bid", "149")
    server.fill_listing_delay = UNLISTED
    two_pieces(server, 149.0, 149.5)            # the buy at 149 fills 0.06, listed later
    executed = float(buy["executedQuantity"])
    assert 0 < executed < 0.1
    strat.adjust_grid_range(140.5, 160.5)       # no cell keeps its edges: every order is cancelled
    assert buy["status"] == "Cancelled" and buy["id"] not in server.open
    assert strat.book.foreign == {buy["clientId"]}
    assert strat.book.foreign_left == {buy["clientId"]: pytest.approx(executed)}
    [holder] = [c for c in strat.cells if c.held > 0]   # what the pieces bought is handed over ...
    assert holder.held == pytest.approx(executed) and holder.close_order is not None
    assert strat.carried == pytest.approx(-executed)    # ... ahead of the fills that make it
    server.fill_listing_delay = 0.0             # the pieces are listed: carried, then the id is free
    strat.step()
    assert strat.book.foreign == set() and strat.book.foreign_left == {}
    assert strat.carried == pytest.approx(0.0) and holder.held == pytest.approx(executed)
    assert strat.owned() == pytest.approx(server.accounts[TEST_PUBLIC_B64].qty[SYMBOL]) == pytest.approx(executed)
    killed(ex, db)


def test_a_placement_whose_answer_was_lost_and_that_filled_unlisted_is_closed_by_a_flatten(
        home, monkeypatch, server):
    """The start's batch of orders is placed but its answer is lost (a read timeout); the buy at
    149 fills before the start is tried again, and the history does not list the fill yet. The
    retried start finds that buy no longer resting: the venue's order history (ccxt's fetch_orders,
    newest first; it has no clientId filter) says it filled. The trader's flatten then sells the
    grid's 0.1 instead of taking it for the trader's own and leaving it on the account."""
    db = Database(home / "database" / f"{IID}.db")
    ex = connect(server, home, monkeypatch, db=db)
    strat = PerpGridStrategy(ex, GridParams(SYMBOL, 140.0, 160.0, 21, 0.1), IID, store=db, log=lambda _m: None)
    server.lose_order_answers(1, 3.0)
    with pytest.raises(ExchangeUnavailable):
        strat.start()
    wait_for(lambda: ("Bid", "149") in placed_at(server), timeout=10, what="the batch resting unheard")
    server.fill_listing_delay = UNLISTED
    server.set_price(148.99)                    # the buy at 149 fills, listed later
    strat.start()                               # tried again, as the loop does
    assert server.accounts[TEST_PUBLIC_B64].qty[SYMBOL] == pytest.approx(0.1)
    assert strat.book.unlisted() == pytest.approx(0.1)
    strat.flatten("trader's flatten")
    for _ in range(8):                          # the close waits its turns for the fill, then counts it
        if strat.stopped:
            break
        strat.step()
    assert strat.stopped and strat.stop_reason == "trader's flatten"
    assert server.accounts[TEST_PUBLIC_B64].qty[SYMBOL] == pytest.approx(0.0)
    assert [o for o in server.open.values() if o["_key"] == TEST_PUBLIC_B64] == []
    killed(ex, db)
