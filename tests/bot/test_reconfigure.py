"""strategies/reconfigure.py: a live change replaces only the orders that must change.

Grid lines 100..104 (quantity 1) at price 102.4: buys at 100 and 101, sells at 103 and 104.
"""
from dataclasses import replace

import pytest

from exchanges.base import ExchangeUnavailable
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
