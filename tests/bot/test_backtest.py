"""The backtest's fast path changes nothing: it trades exactly like a tick-by-tick live loop."""
from __future__ import annotations

import numpy as np
import pytest

from exchanges import client_ids
from exchanges.paper_exchange import PaperExchange
from exchanges.paper_prices import CsvReplay
from strategies.backtest import run_backtest
from strategies.grid_params import GridParams
from strategies.perp_grid_strategy import MARKET_LEVEL, PerpGridStrategy
from tests.bot.helpers import move, paper


def walk_csv(tmp_path, n: int, seed: int, volatility: float = 0.003):
    steps = np.random.default_rng(seed).standard_normal(n) * volatility
    prices = 150 * np.exp(np.cumsum(steps))
    path = tmp_path / f"walk{seed}.csv"
    path.write_text("".join(f"{1700000000 + i},{p:.4f}\n" for i, p in enumerate(prices)))
    return path


def fast_and_slow(csv, params: GridParams, **exchange):
    """The same grid on the same prices twice: by run_backtest (skipping ticks in bulk, each turn
    visiting only the cells that may want something), and stepping the strategy on every tick as
    a live loop does (every cell each turn; with its drawdown over every tick)."""
    fast_ex = PaperExchange(CsvReplay(csv), **exchange)
    fast = PerpGridStrategy(fast_ex, params, "bt", log=lambda _m: None)
    report = run_backtest(fast_ex, fast, 10 ** 9)

    slow_ex = PaperExchange(CsvReplay(csv), **exchange)
    slow = PerpGridStrategy(slow_ex, params, "bt", log=lambda _m: None)
    slow.start_equity = peak = slow_ex.equity()
    max_dd = 0.0
    slow.start()
    while not slow.stopped and slow_ex.step():
        slow.step()
        peak = max(peak, slow_ex.equity())
        max_dd = max(max_dd, peak - slow_ex.equity())
    assert fast.incremental and not slow.incremental    # the backtest's turns against the live ones
    return report, fast_ex, fast, slow_ex, slow, max_dd


def fills(ex: PaperExchange) -> list[tuple]:
    """Every fill, every field; a market close's client id carries the wall-clock second, so
    only its level counts."""
    return [(f.trade_id, f.order_id, f.side, f.price, f.qty, f.fee, f.is_maker, f.timestamp,
             MARKET_LEVEL if client_ids.decode(f.client_id).level == MARKET_LEVEL else f.client_id)
            for f in ex.fetch_fills("SOL_USDC_PERP", 0)]


def assert_same_run(report, fast_ex, fast, slow_ex, slow, slow_dd) -> None:
    assert fills(fast_ex) == fills(slow_ex)
    assert fast.totals == slow.totals
    assert (fast.state, fast.stop_reason, fast_ex.pos_qty) == (slow.state, slow.stop_reason, slow_ex.pos_qty)
    assert (fast_ex.balance, fast_ex.funding, fast.levels) == (slow_ex.balance, slow_ex.funding, slow.levels)
    assert report.total_pnl == pytest.approx(slow_ex.equity() - slow.start_equity)
    # skipped ticks are priced by numpy's rounding, stepped ones by the exact one: an ulp apart at most
    assert report.max_drawdown == pytest.approx(slow_dd, rel=1e-9, abs=1e-9)


@pytest.mark.parametrize("seed, lower, upper, overrides, end", [
    (1, 110.0, 190.0, {"boundary_tolerance": 0.2}, "running"),
    (1, 140.0, 160.0, {}, "left the range"),
    (2, 110.0, 190.0, {"grid_type": "long", "max_position": 2.0, "stop_loss": 10.0}, "stop loss"),
    (14, 110.0, 190.0, {"grid_type": "long", "max_position": 2.0, "take_profit": 8.0}, "take profit"),
    (4, 110.0, 190.0, {"grid_type": "short", "max_position": 2.0, "mode": "geometric"}, "running"),
    (3, 140.0, 160.0, {"boundary_action": "adjust_range", "max_position": 3.0}, "running"),
])
def test_fast_backtest_equals_the_tick_by_tick_loop(tmp_path, seed, lower, upper, overrides, end):
    csv = walk_csv(tmp_path, 5000, seed)
    params = GridParams("SOL_USDC_PERP", lower, upper, 21, 0.5, **overrides)
    report, fast_ex, fast, slow_ex, slow, slow_dd = run = fast_and_slow(csv, params, max_fill_qty=0.3)
    assert report.fills >= 7
    assert end in (report.stop_reason or report.state)
    assert_same_run(*run)


# The demo template's grid (20 levels 140..160, max_position 10, adjust_range) trading thousands of
# times, with partial fills and funding every 30 minutes of the walk; one account runs out of
# margin for its next range (the demo's own end, kept identical), one has no max_position and
# a balance that refuses hundreds of openings for margin.
@pytest.mark.parametrize("seed, ticks, exchange, overrides, fills_at_least, end", [
    (4, 12000, {"balance": 10000}, {"max_position": 10.0}, 1000, "running"),
    (5, 20000, {"balance": 1000}, {"max_position": 10.0}, 2000, "adjust_range failed (max_position"),
    (2, 8000, {"balance": 250}, {}, 500, "running"),
])
def test_fast_backtest_equals_the_tick_by_tick_loop_on_a_grid_that_trades(tmp_path, seed, ticks, exchange, overrides,
                                                                          fills_at_least, end):
    csv = walk_csv(tmp_path, ticks, seed, volatility=0.002)
    params = GridParams("SOL_USDC_PERP", 140.0, 160.0, 20, 0.5, boundary_action="adjust_range",
                        boundary_tolerance=0.01, **overrides)
    run = fast_and_slow(csv, params, max_fill_qty=0.3, funding_rate=0.0001, funding_interval_h=0.5, **exchange)
    report, fast_ex, fast, slow_ex, slow, _ = run
    assert report.fills >= fills_at_least and report.funding != 0
    assert end in (report.stop_reason or report.state)
    assert_same_run(*run)


def test_the_through_fill_model_trades_the_same_fast_and_slow_and_fills_less(tmp_path):
    """A walk one tick at a time touches every line before it crosses it: the touch model fills
    on each touch, the through model only when the next tick goes on."""
    prices = 150 + np.cumsum(np.random.default_rng(5).choice([-0.01, 0.01], 5000))
    csv = tmp_path / "ticks.csv"
    csv.write_text("".join(f"{1700000000 + i},{p:.2f}\n" for i, p in enumerate(prices)))
    params = GridParams("SOL_USDC_PERP", 148.0, 152.0, 21, 0.5, boundary_tolerance=0.2)
    reports = {}
    for model in ("touch", "through"):
        fast_ex = PaperExchange(CsvReplay(csv), fill_model=model)
        reports[model] = run_backtest(fast_ex, PerpGridStrategy(fast_ex, params, "bt", log=lambda _m: None), 10 ** 9)
        slow_ex = PaperExchange(CsvReplay(csv), fill_model=model)
        slow = PerpGridStrategy(slow_ex, params, "bt", log=lambda _m: None)
        slow.start()
        while not slow.stopped and slow_ex.step():
            slow.step()
        assert [(f.side, f.price, f.client_id) for f in fast_ex.fetch_fills("SOL_USDC_PERP", 0)] == \
               [(f.side, f.price, f.client_id) for f in slow_ex.fetch_fills("SOL_USDC_PERP", 0)]
        assert f"fill model     {model}" in reports[model].text()
    assert 0 < reports["through"].fills < reports["touch"].fills


def test_a_turn_visits_only_the_cells_that_want_something_not_the_whole_grid():
    """On a 49-cell grid a turn looks only at the cells without the order they need (the
    strategy's `_unsettled`: the price's own cell, the cells a fill touched), never all 49, and
    every other cell does rest its order: the grid trades as the full scan did."""
    ex, src = paper(150.0)
    strat = PerpGridStrategy(ex, GridParams("SOL_USDC_PERP", 120.0, 180.0, 50, 0.5), "bt", log=lambda _m: None)
    strat.incremental = True            # as run_backtest sets it
    strat.start()
    path = [round(150.0 - 0.37 * i, 2) for i in range(30)] + [round(139.0 + 0.41 * i, 2) for i in range(50)]
    for price in path:
        move(ex, src, price)
        strat.step()
        assert len(strat._unsettled) <= 2
        assert len(ex.fetch_open_orders("SOL_USDC_PERP")) == 49 - len(strat._unsettled)
    assert strat.totals.fill_count >= 20 and strat.totals.cycles >= 5
