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


def walk_csv(tmp_path, n: int, seed: int):
    steps = np.random.default_rng(seed).standard_normal(n) * 0.003
    prices = 150 * np.exp(np.cumsum(steps))
    path = tmp_path / f"walk{seed}.csv"
    path.write_text("".join(f"{1700000000 + i},{p:.4f}\n" for i, p in enumerate(prices)))
    return path


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

    fast_ex = PaperExchange(CsvReplay(csv), max_fill_qty=0.3)
    fast = PerpGridStrategy(fast_ex, params, "bt", log=lambda _m: None)
    report = run_backtest(fast_ex, fast, 10 ** 9)

    slow_ex = PaperExchange(CsvReplay(csv), max_fill_qty=0.3)
    slow = PerpGridStrategy(slow_ex, params, "bt", log=lambda _m: None)
    slow.start()
    while not slow.stopped and slow_ex.step():
        slow.step()

    def trades(ex):
        """The fills; a market close's client id carries the wall-clock second, so only its level counts."""
        return [(f.side, f.price, f.qty, MARKET_LEVEL if client_ids.decode(f.client_id).level == MARKET_LEVEL
                 else f.client_id) for f in ex.fetch_fills("SOL_USDC_PERP", 0)]

    assert report.fills >= 7
    assert end in (report.stop_reason or report.state)
    assert trades(fast_ex) == trades(slow_ex)
    assert fast.totals.grid_profit == pytest.approx(slow.totals.grid_profit)
    assert (fast.state, fast_ex.pos_qty) == (slow.state, slow_ex.pos_qty)
    assert report.total_pnl == pytest.approx(slow_ex.equity() - 10000)


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
