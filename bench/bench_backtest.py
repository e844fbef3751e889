#!/usr/bin/env python3
"""Backtest throughput: 1,000,000-tick random walk, 50-level neutral grid (the bar: >= 500,000/s).

Runs the real PerpGridStrategy on the real PaperExchange (strategies/backtest.py); prints the
figures, asserts nothing. Usage: python bench/bench_backtest.py [ticks] [repeats]
"""
from __future__ import annotations

import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from exchanges.paper_exchange import PaperExchange  # noqa: E402
from exchanges.paper_prices import RandomWalk  # noqa: E402
from strategies.backtest import run_backtest  # noqa: E402
from strategies.grid_params import GridParams  # noqa: E402
from strategies.perp_grid_strategy import PerpGridStrategy  # noqa: E402

VOLATILITY = 0.0005      # per tick: a fill every few hundred ticks on this grid
LOWER, UPPER = 120.0, 180.0


def once(ticks: int, seed: int):
    exchange = PaperExchange(RandomWalk(150.0, VOLATILITY, seed), balance=10000, leverage=10)
    params = GridParams("SOL_USDC_PERP", lower=LOWER, upper=UPPER, num=50, quantity=0.5, max_position=20,
                        boundary_action="adjust_range")
    strategy = PerpGridStrategy(exchange, params, "bench", log=lambda _m: None)
    return run_backtest(exchange, strategy, ticks)


def main() -> None:
    ticks = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    reports = [once(ticks, seed) for seed in range(1, repeats + 1)]
    rates = [r.ticks_per_second for r in reports]
    print(f"backtest: {ticks:,}-tick random walk (volatility {VOLATILITY}/tick), 50-level neutral grid {LOWER:g}..{UPPER:g}, "
          f"{repeats} seeds")
    for r in reports:
        print(f"  {r.ticks:,} ticks in {r.seconds:.3f} s = {r.ticks_per_second:,.0f} ticks/s; fills {r.fills}, "
              f"grid profit {r.grid_profit:.2f}, total PnL {r.total_pnl:.2f}, max drawdown {r.max_drawdown:.2f}")
    print(f"median {statistics.median(rates):,.0f} ticks/s (bar: 500,000)")


if __name__ == "__main__":
    main()
