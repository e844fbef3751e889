"""strategies/reconfigure.py: a live change replaces only the orders that must change.

Grid lines 100..104 (quantity 1) at price 102.4: buys at 100 and 101, sells at 103 and 104.
"""
from dataclasses import replace

import pytest

from exchanges import client_ids
from exchanges.base import ExchangeUnavailable
from strategies.perp_grid_strategy import AdjustFailed
from strategies.reconfigure import apply_params
from tests.bot.helpers import grid, move, paper, resting
from tests.bot.test_strategy import INITIAL, FailingAt, StepPrices

SYMBOL = "SOL_USDC_PERP"


def ids_by_price(ex) -> dict[float, str]:
    return {o.price: o.id for o in ex.fetch_open_orders(SYMBOL)}


def test_a_range_move_keeps_the_orders_of_the_levels_both_ranges_share():
    ex, _ = paper(102.4)
    strat = grid(ex)
    strat.start()
    before = ids_by_price(ex)
    outcome = apply_params(strat, strat.params.with_range(101.0, 105.0))
    after = ids_by_price(ex)
    assert resting(ex) == [("buy", 101.0, 1.0), ("sell", 103.0, 1.0), ("sell", 104.0, 1.0), ("sell", 105.0, 1.0)]
    assert {p: after[p] for p in (101.0, 103.0, 104.0)} == {p: before[p] for p in (101.0, 103.0, 104.0)}
    assert (outcome.kept, outcome.cancelled, outcome.placed) == (3, 1, 1)


def test_a_kept_order_that_fills_after_the_move_is_booked_on_its_moved_cell():
    ex, src = paper(102.4)
    strat = grid(ex)
    strat.start()
    apply_params(strat, strat.params.with_range(101.0, 105.0))    # cell 101..102 moves from index 1 to 0
    move(ex, src, 101.0)
    strat.step()
    assert strat.cells[0].held == 1.0 and strat.carried == 0.0      # not booked on index 1 (102..103)
    assert ("sell", 102.0, 1.0) in resting(ex)                      # its closing order
    move(ex, src, 102.0)
    strat.step()
    assert strat.totals.cycles == 1 and strat.owned() == 0.0 and ex.fetch_position(SYMBOL).qty == 0


def test_a_quantity_change_replaces_only_the_opening_orders():
    ex, src = paper(102.4)
    strat = grid(ex)
    strat.start()
    move(ex, src, 101.0)                        # cell 1 opens: its closing sell at 102 holds 1
    strat.step()
    close_id = ids_by_price(ex)[102.0]
    apply_params(strat, replace(strat.params, quantity=2.0))
    assert resting(ex) == [("buy", 100.0, 2.0), ("sell", 102.0, 1.0), ("sell", 103.0, 2.0), ("sell", 104.0, 2.0)]
    assert ids_by_price(ex)[102.0] == close_id  # the close is for what the cell holds: untouched


def test_risk_limits_change_without_touching_any_order():
    ex, _ = paper(102.4)
    strat = grid(ex)
    strat.start()
    before = ids_by_price(ex)
    apply_params(strat, replace(strat.params, stop_loss=5.0, take_profit=9.0, boundary_action="emergency_close",
                                boundary_tolerance=0.02))
    assert ids_by_price(ex) == before and strat.params.stop_loss == 5.0 and strat.params.take_profit == 9.0


def test_an_invalid_change_changes_nothing():
    ex, _ = paper(102.4)
    strat = grid(ex)
    strat.start()
    before = ids_by_price(ex)
    with pytest.raises(ValueError, match="lower must be below upper"):
        apply_params(strat, strat.params.with_range(105.0, 101.0))
    assert ids_by_price(ex) == before and strat.params.lower == 100.0


def test_a_failed_change_rolls_back_keeping_the_shared_levels():
    ex = FailingAt(StepPrices(102.4), fail={106.0: ExchangeUnavailable("timeout")})
    strat = grid(ex)
    strat.start()
    kept = ids_by_price(ex)[104.0]
    with pytest.raises(ValueError, match="restored"):
        apply_params(strat, replace(strat.params, lower=101.0, upper=106.0, num=6))  # lines 101..106
    assert strat.params.upper == 104.0 and resting(ex) == INITIAL
    assert ids_by_price(ex)[104.0] == kept      # a level both grids share was never touched


def test_a_lowered_max_position_cancels_the_farthest_opening_orders():
    ex, _ = paper(102.4)
    strat = grid(ex)
    strat.start()
    apply_params(strat, replace(strat.params, max_position=1.0))
    assert resting(ex) == [("buy", 101.0, 1.0), ("sell", 103.0, 1.0)]     # the nearest of each side stay


def test_the_pages_range_adjustment_keeps_the_orders_of_shared_levels_too():
    ex, _ = paper(102.4)
    strat = grid(ex)
    strat.start()
    before = ids_by_price(ex)
    strat.adjust_grid_range(101.0, 105.0)
    after = ids_by_price(ex)
    assert all(after[p] == before[p] for p in (101.0, 103.0, 104.0)) and 100.0 not in after


def test_a_moved_grid_survives_a_crash_and_its_kept_orders_still_book_on_their_moved_cells(tmp_path):
    from database.db import Database

    db = Database(tmp_path / "bot.db")
    ex, src = paper(102.4)
    strat = grid(ex, store=db)
    strat.start()
    apply_params(strat, strat.params.with_range(101.0, 105.0))    # buy at 101 (client id level 1) -> cell 0
    before = ids_by_price(ex)
    again = grid(ex, store=db)                  # killed, restarted: the config file still says 100..104
    again.start()
    assert (again.grid_dict()["lower"], again.grid_dict()["upper"]) == (101.0, 105.0)
    assert ids_by_price(ex) == before           # every order adopted, none placed twice
    move(ex, src, 101.0)
    again.step()
    assert again.cells[0].held == 1.0 and again.owned() == 1.0 == ex.fetch_position(SYMBOL).qty
    assert ("sell", 102.0, 1.0) in resting(ex)


def test_a_held_unit_of_a_vanished_cell_gets_a_closing_order_and_a_shared_cell_keeps_its_own():
    ex, src = paper(102.4)
    strat = grid(ex)
    strat.start()
    move(ex, src, 100.0)                        # cells 100..101 and 101..102 each hold 1
    strat.step()
    close_102 = ids_by_price(ex)[102.0]         # cell 101..102's closing sell
    apply_params(strat, strat.params.with_range(101.0, 105.0))    # cell 100..101 vanishes
    assert ids_by_price(ex)[102.0] == close_102                 # the shared cell keeps its close
    assert strat.owned() == 2.0 == ex.fetch_position(SYMBOL).qty and strat.carried == 0
    # the unit bought at 100 closes on a new cell: the nearest free one above the price (104..105;
    # 102..103 and 103..104 keep their resting opening sells, ids and queue place)
    assert resting(ex) == [("sell", 102.0, 1.0), ("sell", 103.0, 1.0), ("sell", 104.0, 1.0), ("sell", 105.0, 1.0)]
    assert (strat.cells[3].side, strat.cells[3].held, strat.cells[3].cost) == ("long", 1.0, 100.0)


def test_a_change_the_venue_fails_before_any_placement_is_in_doubt_then_the_old_grid_is_whole():
    from tests.bot.test_money_safety import Outage

    ex = Outage(StepPrices(102.4))
    strat = grid(ex)
    strat.start()
    before = ids_by_price(ex)
    ex.down = True                              # the first cancel fails, and so does the way back
    with pytest.raises(AdjustFailed) as failed:
        strat.adjust_grid_range(101.0, 105.0)
    assert failed.value.outcome == "in doubt" and "up to 0 orders of the new grid" in str(failed.value)
    assert strat.params.lower == 100.0 and not strat.book.foreign
    ex.down = False
    strat.step()
    assert resting(ex) == INITIAL and ids_by_price(ex) == before    # nothing was touched


def test_a_fill_listed_after_its_cell_vanished_is_booked_with_its_true_sign():
    from tests.bot.test_money_safety import LateFills

    ex = LateFills(StepPrices(102.4))
    strat = grid(ex)
    strat.start()
    move(ex, ex.source, 100.0)                  # the buys at 100 and 101 fill; the venue lists them later
    strat.step()
    buys = {strat.cells[0].open_order.client_id, strat.cells[1].open_order.client_id}
    apply_params(strat, strat.params.with_range(101.0, 105.0))
    # at 100 every cell of 101..105 is short: both long cells vanish with their fills unlisted
    assert buys <= strat.book.foreign           # gone unlisted with their cells: foreign until listed
    move(ex, ex.source, 100.0)                  # listed now
    strat.step()
    assert ex.fetch_position(SYMBOL).qty == 2.0 and strat.owned() == 2.0     # never booked as shorts
    # and their ids are free again (tests/bot/test_foreign_ids.py), though they name cells of the new layout
    assert not buys & strat.book.foreign
    assert all(client_ids.decode(c).level < len(strat.cells) for c in buys)
