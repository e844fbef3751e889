"""A range change's cancelled orders: their client ids are `foreign` (a fill listed later is carried,
never booked on the new layout's cell of the same level) only while such a fill can still come.

Each level and role has 2,048 client ids (an 11-bit sequence), and a new order never takes a
foreign one (tests/bot/test_client_id_reuse.py). Kept forever, the foreign ids of every range
change fill a level's ids up: a bot with adjust_range would stop trading level after level after
a few weeks. An order the venue confirmed cancelled, with every fill it made booked, can trade no
more, so its id is free again.

Grid lines 100..104 (quantity 1) at price 102.4: buys at 100 and 101, sells at 103 and 104.
"""
from __future__ import annotations

from database.db import Database
from exchanges import client_ids
from exchanges.paper_exchange import PaperExchange
from exchanges.paper_prices import RandomWalk
from strategies.backtest import run_backtest
from strategies.grid_params import GridParams
from strategies.grid_state import STATE_KEY
from strategies.perp_grid_strategy import PerpGridStrategy
from strategies.reconfigure import apply_params
from tests.bot.helpers import StepPrices, grid, move, paper
from tests.bot.test_money_safety import LateFills

SYMBOL = "SOL_USDC_PERP"


def test_an_order_a_range_change_cancelled_unfilled_leaves_no_foreign_id(tmp_path):
    db = Database(tmp_path / "bot.db")
    ex, _ = paper(102.4, db=db)
    strat = grid(ex, store=db)
    strat.start()
    buy_100 = strat.cells[0].open_order.client_id
    apply_params(strat, strat.params.with_range(101.0, 105.0))     # the buy at 100 is cancelled, unfilled
    assert buy_100 not in {o.client_id for o in ex.fetch_open_orders(SYMBOL)}
    assert strat.book.foreign == set()
    assert db.load_state(STATE_KEY)["foreign"] == []


def test_a_trading_grid_with_adjust_range_keeps_no_foreign_id_of_orders_it_saw_cancelled():
    said: list[str] = []
    ex = PaperExchange(RandomWalk(150.0, 0.002, 3), balance=10000, leverage=10)
    params = GridParams(SYMBOL, lower=140.0, upper=160.0, num=20, quantity=0.5, boundary_action="adjust_range")
    strat = PerpGridStrategy(ex, params, "test_bot", log=said.append)
    run_backtest(ex, strat, 30_000)
    changes = sum("re-centring the grid" in m for m in said)
    assert changes >= 10, changes               # the walk left the range again and again
    assert strat.totals.fill_count > 1000 and strat.book.foreign == set()


def test_a_cancelled_orders_fill_listed_later_is_carried_and_then_its_id_is_free(tmp_path):
    db = Database(tmp_path / "bot.db")
    ex = LateFills(StepPrices(102.4), db=db, max_fill_qty=0.4, lag=2)
    strat = grid(ex, store=db)
    strat.start()
    buy_100 = strat.cells[0].open_order.client_id
    move(ex, ex.source, 100.0)                  # the buys at 101 and 100 fill 0.4 each, listed 2 steps late
    move(ex, ex.source, 102.4)
    strat.step()
    assert strat.owned() == 0.0 and ex.fetch_position(SYMBOL).qty == 0.8
    apply_params(strat, strat.params.with_range(101.0, 105.0))
    # the buy at 100 is cancelled with 0.4 filled that no listed fill shows yet
    assert buy_100 in strat.book.foreign
    again = grid(ex, store=db)                  # a restart in between: the books know it still
    again.start()
    assert buy_100 in again.book.foreign
    move(ex, ex.source, 102.4)
    again.step()                                # listed now: carried, not booked on the new level 0
    assert again.owned() == ex.fetch_position(SYMBOL).qty == 0.8
    assert again.cells[0].held == 0.4 and again.carried == 0.4
    assert buy_100 not in again.book.foreign and again.book.foreign_left == {}
    assert db.load_state(STATE_KEY)["foreign"] == []


def test_an_abandoned_orders_id_is_free_once_its_fill_is_listed():
    ex = LateFills(StepPrices(102.4))
    strat = grid(ex)
    strat.start()
    move(ex, ex.source, 100.0)                  # the buys at 100 and 101 fill; the venue lists them later
    strat.step()
    buys = {strat.cells[0].open_order.client_id, strat.cells[1].open_order.client_id}
    apply_params(strat, strat.params.with_range(101.0, 105.0))
    assert buys <= strat.book.foreign           # gone unlisted with their cells: foreign until listed
    move(ex, ex.source, 100.0)                  # listed now
    strat.step()
    assert ex.fetch_position(SYMBOL).qty == 2.0 and strat.owned() == 2.0
    assert not buys & strat.book.foreign
    assert all(client_ids.decode(c).level < len(strat.cells) for c in buys)
