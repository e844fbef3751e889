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

from dataclasses import replace

import pytest

from database.db import Database
from exchanges import client_ids
from exchanges.paper_exchange import PaperExchange
from exchanges.paper_prices import RandomWalk
from strategies.backtest import run_backtest
from strategies.grid_params import GridParams
from strategies.grid_state import STATE_KEY
from strategies.perp_grid_strategy import PerpGridStrategy
from strategies.reconfigure import apply_params
from tests.bot.helpers import StepPrices, grid, move, paper, resting
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
    again.step()                                # listed now: carried, not booked on the new level 0 ...
    assert again.owned() == ex.fetch_position(SYMBOL).qty == 0.8
    # ... where it offsets the hand-over: the change gave the buy's 0.4 a cell and a closing order
    assert (again.cells[0].held, again.cells[3].held, again.cells[3].cost, again.carried) == (0.4, 0.4, 100.0, 0.0)
    assert ("sell", 105.0, 0.4) in resting(ex)
    assert buy_100 not in again.book.foreign and again.book.foreign_left == {}
    assert db.load_state(STATE_KEY)["foreign"] == []


def restarted_with_the_buy_at_101_gone(tmp_path, back_to: float | None = None) -> tuple[LateFills, PerpGridStrategy]:
    """The buy at 101 fills (the venue lists it 2 steps late), the price goes `back_to` if given,
    and the bot is killed and started again: the restart finds the buy gone, its fill unlisted."""
    db = Database(tmp_path / "bot.db")
    ex = LateFills(StepPrices(102.4), lag=2)
    strat = grid(ex, store=db)
    strat.start()
    move(ex, ex.source, 101.0)
    strat.step()
    if back_to is not None:
        move(ex, ex.source, back_to)
    again = grid(ex, store=db)
    again.start()
    return ex, again


def test_an_order_a_restart_found_gone_is_handed_over_and_its_fill_carried_when_listed_after_a_range_change(tmp_path):
    """The restart finds the buy at 101 gone (it filled; the venue lists the fill 2 steps late),
    then a range change makes every cell of the new layout short: booked on the cell its client
    id's level names, the buy would be a short holding, -1 in the books against +1 on the venue
    (found by tests/bot/test_late_fill_properties.py). The venue's record says it filled, so the
    change hands what it bought to the first cell that can close it; the fill, listed later, is
    carried and offsets that."""
    ex, again = restarted_with_the_buy_at_101_gone(tmp_path)
    apply_params(again, again.params.with_range(100.5, 104.5))
    assert [c.side for c in again.cells] == ["long"] + ["short"] * 3     # cell 0 took the buy's 1
    assert (again.cells[0].held, again.cells[0].cost, again.carried) == (1.0, 101.0, -1.0)
    for _ in range(2):
        move(ex, ex.source, 101.0)
        again.step()
    assert again.totals.fill_count == 1
    assert again.owned() == ex.fetch_position(SYMBOL).qty == 1.0 and again.carried == 0.0
    assert [c.held for c in again.cells] == [1.0, 0.0, 0.0, 0.0] and ("sell", 101.5, 1.0) in resting(ex)
    assert again.book.foreign == set() and again.book.gone_orders == {}


def test_a_kept_order_a_restart_found_gone_books_on_the_cell_it_left_not_the_one_its_id_names(tmp_path):
    """A range change keeps the buy at 101 under its old level's client id (level 1) on cell 0
    (101..102); cell 1 is now 102..103, short. The buy fills, listed 2 steps late, and a restart
    finds it gone: booked on cell 1 it would be a short holding, -1 in the books against +1 on the
    venue
    (found by tests/bot/test_late_fill_properties.py)."""
    db = Database(tmp_path / "bot.db")
    ex = LateFills(StepPrices(102.4), lag=2)
    strat = grid(ex, store=db)
    strat.start()
    apply_params(strat, strat.params.with_range(101.0, 105.0))
    kept = strat.cells[0].open_order
    assert client_ids.decode(kept.client_id).level == 1 and strat.cells[1].side == "short"
    move(ex, ex.source, 101.0)                  # the kept buy fills, listed 2 steps late
    strat.step()
    again = grid(ex, store=db)                  # killed and started again: the buy is gone, unlisted
    again.start()
    for _ in range(2):
        move(ex, ex.source, 101.0)
        again.step()
    assert again.totals.fill_count == 1
    assert again.owned() == ex.fetch_position(SYMBOL).qty == 1.0
    assert (again.cells[0].held, again.cells[1].held, again.carried) == (1.0, 0.0, 0.0)
    assert again.book.gone_orders == {}


def test_an_opening_order_cancelled_with_a_piece_unlisted_is_handed_over_by_a_later_range_change():
    """A new order size cancels the buy at 101 (same layout) after it filled 0.4 that the venue
    lists 2 steps late; a range change follows at once. Its client id (level 1) names the short
    cell 102..103 of the new layout: the piece is carried, not booked as a short
    (found by tests/bot/test_late_fill_properties.py). The cancel's answer said what it filled, so
    the change hands that to the new cell 101..102, with a closing order, and the carried piece
    offsets it once listed."""
    ex = LateFills(StepPrices(102.4), max_fill_qty=0.4, lag=2)
    strat = grid(ex)
    strat.start()
    move(ex, ex.source, 101.0)                  # the buy at 101 fills 0.4, listed 2 steps late
    move(ex, ex.source, 101.5)
    strat.step()
    apply_params(strat, replace(strat.params, quantity=0.5))   # the buy of size 1 is cancelled
    apply_params(strat, strat.params.with_range(101.0, 105.0))
    assert strat.cells[1].side == "short"
    for _ in range(2):
        move(ex, ex.source, 101.5)
        strat.step()
    assert strat.owned() == ex.fetch_position(SYMBOL).qty == 0.4
    assert strat.carried == 0.0 and strat.book.foreign == set() and strat.book.gone_orders == {}
    assert (strat.cells[0].side, strat.cells[0].held, strat.cells[1].held) == ("long", 0.4, 0.0)
    assert ("sell", 102.0, 0.4) in resting(ex)


def test_a_gone_buy_whose_fill_is_not_listed_is_not_bought_again_nor_its_id_taken():
    """Two orders under one client id could not be told apart once a range change makes the id
    foreign: the second one's fill would be booked on the new layout's cell (found by
    tests/bot/test_late_fill_properties.py). Its level does not buy again at all until the fill is
    listed (tests/exchanges/test_gone_unlisted_on_backpack.py): it would buy the level twice."""
    db_less = LateFills(StepPrices(102.4), lag=3)
    strat = grid(db_less)
    strat.start()
    move(db_less, db_less.source, 101.0)        # the buy at 101 fills, listed 3 steps late
    strat.step()
    strat.book.reconcile()                      # as a restart would: the buy is found gone
    gone_id = next(iter(strat.book.gone_orders.values()))[0]
    cell = strat.cells[1]
    cell.seq = client_ids.decode(gone_id).seq - 1   # stands in for 2,047 more orders on the level
    move(db_less, db_less.source, 101.5)        # below the level's line: a buy at 101 could rest
    strat.step()
    assert cell.open_order is None and strat.book.taken(gone_id)
    assert ("buy", 101.0, 1.0) not in resting(db_less)
    for _ in range(3):                          # the fill is listed: the cell holds it and closes it
        move(db_less, db_less.source, 101.5)
        strat.step()
    assert cell.held == 1.0 and ("sell", 102.0, 1.0) in resting(db_less)
    assert ("buy", 101.0, 1.0) not in resting(db_less)


def test_a_kept_cells_gone_order_books_its_late_fill_on_that_cell_at_its_new_index(tmp_path):
    """The restart finds the buy at 101 gone (filled, listed 2 steps late); a range change then
    keeps its cell 101..102 at index 0. The fill books there, so the cell holds it and closes it at
    102, instead of being carried with no closing order while the cell buys again."""
    ex, again = restarted_with_the_buy_at_101_gone(tmp_path, back_to=102.4)
    cell = again.cells[1]
    apply_params(again, again.params.with_range(101.0, 105.0))
    assert again.cells[0] is cell and cell.side == "long"
    for _ in range(2):
        move(ex, ex.source, 102.4)
        again.step()
    assert again.owned() == ex.fetch_position(SYMBOL).qty == 1.0
    assert (cell.held, again.carried) == (1.0, 0.0) and again.book.foreign == set()
    move(ex, ex.source, 101.5)                  # below 102: its closing sell may rest now
    again.step()
    assert ("sell", 102.0, 1.0) in resting(ex)


def test_a_fill_is_never_booked_on_a_cell_whose_side_changed_since_its_order_left():
    """Found by tests/bot/test_late_fill_properties.py: the buy at 97.25 was cancelled by a range
    change with 0.3 filled and not listed; its cell was kept, but the same change handed it a short
    lot (the sell at 101's piece, carried) and it turned short. The buy's piece, listed later, must
    not be booked as a short opening: a fill whose side is not the one its cell's role trades is
    carried. Since range changes hand over an unlisted piece that the venue confirmed, the sell's
    piece gets a closing order at once instead (asserted here) and is never carried, so this
    sequence no longer turns that cell; the books must still equal the venue's list."""
    ex = LateFills(StepPrices(100.0), max_fill_qty=0.3, lag=2)
    strat = grid(ex, lower=95.0, upper=105.0, num=11, quantity=0.5, max_position=3.0,
                 boundary_action="adjust_range")
    strat.start()
    for op, at in (("move", 101.0), ("range", 95.25), ("move", 97.25), ("move", 100.0), ("range", 94.25)):
        if op == "move":
            move(ex, ex.source, at)
            strat.step()
        else:
            strat.adjust_grid_range(at, at + 10.0)
            if at == 95.25:                     # the sell at 101 was cancelled with 0.3 unlisted
                assert [(c.side, c.held, c.cost) for c in strat.cells if c.held] == [("short", 0.3, 101.0)]
    for _ in range(3):
        move(ex, ex.source, 100.0)
        strat.step()
    listed = ex.fetch_fills(SYMBOL, 0)
    assert strat.totals.fill_count == len(listed) == 5
    assert strat.owned() == pytest.approx(sum(f.qty if f.side == "buy" else -f.qty for f in listed), abs=1e-9)


def test_a_flatten_after_a_range_change_cancelled_an_order_with_a_piece_unlisted_leaves_the_account_flat():
    """Found by tests/bot/test_late_fill_properties.py (flattens): the range change cancels the sell at 101 after it sold
    0.3 that the venue lists a step late. The close took that short for the trader's own (neither
    the grid's books nor its orders gone from the book counted it) and left it on the account."""
    ex = LateFills(StepPrices(100.0), max_fill_qty=0.3, lag=1)
    strat = grid(ex, lower=95.0, upper=105.0, num=11, quantity=0.5, max_position=3.0,
                 boundary_action="adjust_range")
    strat.start()
    move(ex, ex.source, 101.0)                  # the sell at 101 fills 0.3, listed a step late
    strat.step()
    strat.adjust_grid_range(95.25, 105.25)      # and is cancelled
    assert ex.pos_qty == -0.3 and strat.owned() == 0.0
    strat.flatten("trader's flatten")
    for _ in range(5):
        if strat.stopped:
            break
        move(ex, ex.source, 101.0)
        strat.step()
    assert strat.stopped and strat.stop_reason == "trader's flatten"
    assert ex.pos_qty == 0.0 and ex.fetch_open_orders(SYMBOL) == []


@pytest.mark.parametrize("saved_by", ["this build", "an older build"])
def test_a_gone_buy_read_back_from_the_saved_state_is_handed_over_as_it_was_saved(tmp_path, saved_by):
    """What a gone opening order opened (`gone_orders`' fourth element) survives a restart, so the
    range change after it still hands the buy's 1 over. A state saved before entries had that
    element still loads; the change then leaves the fill to be carried when listed, as it did."""
    ex, again = restarted_with_the_buy_at_101_gone(tmp_path)
    [entry] = again.book.gone_orders.values()
    assert entry[3] == ["buy", 101.0]
    if saved_by == "an older build":
        state = again.store.load_state(STATE_KEY)
        state["gone_orders"] = {oid: gone[:3] for oid, gone in state["gone_orders"].items()}
        again.store.save_state(STATE_KEY, state)
    third = grid(ex, store=again.store)         # killed and started once more
    third.start()
    handed = saved_by == "this build"
    assert list(third.book.gone_orders.values()) == [entry if handed else entry[:3] + [None]]
    apply_params(third, third.params.with_range(100.5, 104.5))
    assert (third.cells[0].held, third.carried) == ((1.0, -1.0) if handed else (0.0, 0.0))
    for _ in range(2):
        move(ex, ex.source, 101.0)
        third.step()
    assert third.owned() == ex.fetch_position(SYMBOL).qty == 1.0
    assert (third.cells[0].held, third.carried) == ((1.0, 0.0) if handed else (0.0, 1.0))
