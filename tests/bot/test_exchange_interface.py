"""Leverage is part of the Exchange interface: every venue answers it (1x unless it says more)."""
from __future__ import annotations

from exchanges.base import Exchange
from exchanges.paper_exchange import PaperExchange
from tests.bot.helpers import StepPrices, grid


def test_leverage_is_part_of_the_interface_with_1x_by_default():
    assert Exchange.leverage == 1.0
    assert PaperExchange(StepPrices(102.4), leverage=5).leverage == 5.0


def test_a_range_adjustment_checks_margin_at_the_exchange_leverage():
    ex = PaperExchange(StepPrices(102.4), balance=1000.0, leverage=2.0)
    strat = grid(ex, max_position=15.0)     # 15 x 104 / 2 = 780 of margin: fits 1000
    strat.start()
    assert strat.adjust_grid_range(100.0, 108.0)["upper"] == 108.0     # 15 x 108 / 2 = 810


def test_is_multiple_is_the_one_step_and_tick_rule():
    from exchanges.base import is_multiple
    assert is_multiple(0.3, 0.1) and is_multiple(102.37, 0.01) and not is_multiple(0.15, 0.1)
