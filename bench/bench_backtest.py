#!/usr/bin/env python3
"""Backtest throughput on two grids, because the figure depends on how often the grid trades.

- "sparse": a 1,000,000-tick random walk (volatility 0.0005/tick) on a 50-level neutral grid
  120..180 that fills every few hundred ticks: most ticks are skipped in bulk, so this is the
  upper figure (issue 12's goal: >= 3,000,000 ticks/s).
- "demo": the demo template (config/templates/paper_perp_grid.json: 20 levels 140..160, its own
  random walk at 0.002/tick) with boundary_action adjust_range, so it keeps trading instead of
  stopping when the price leaves the range: a fill every ten ticks or so, the figure a trader
  backtesting the demo sees (issue 12's goal: >= 1,000,000 ticks/s). Asked for 1,000,000 ticks,
  seed 1 stops at 560,536 when the account can no longer margin its next range: a correct end,
  the same as stepping every tick (tests/bot/test_backtest.py), so its ticks/s counts those.

Runs the real PerpGridStrategy on the real PaperExchange (strategies/backtest.py) twice over: with
the compiled kernel for the grid's plain turns (strategies/backtest_kernel.py, what a backtest
uses) and on the general path alone (the same results, fill by fill: its peer), interleaved;
prints the figures (wall clock, and per CPU second: the machine is shared) of repeated runs of
seed 1, the goals beside the kernel's medians and the speed-up over the general path; asserts
nothing.
Usage: python bench/bench_backtest.py [sparse_ticks] [repeats] [demo_ticks]
"""
from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from exchanges.paper_exchange import PaperExchange  # noqa: E402
from exchanges.paper_prices import RandomWalk  # noqa: E402
from strategies.backtest import BacktestReport, run_backtest  # noqa: E402
from strategies.grid_params import GridParams  # noqa: E402
from strategies.perp_grid_strategy import PerpGridStrategy  # noqa: E402

SYMBOL = "SOL_USDC_PERP"
SPARSE_VOLATILITY = 0.0005      # per tick: a fill every few hundred ticks on the sparse grid
DEMO_TEMPLATE = REPO / "config" / "templates" / "paper_perp_grid.json"


def sparse_grid(seed: int) -> tuple[PaperExchange, PerpGridStrategy]:
    exchange = PaperExchange(RandomWalk(150.0, SPARSE_VOLATILITY, seed), balance=10000, leverage=10, start_ms=0)
    params = GridParams(SYMBOL, lower=120.0, upper=180.0, num=50, quantity=0.5, max_position=20,
                        boundary_action="adjust_range")
    return exchange, PerpGridStrategy(exchange, params, "bench", log=lambda _m: None)


def demo_grid(seed: int) -> tuple[PaperExchange, PerpGridStrategy]:
    """The demo template with adjust_range (tests/bot/test_backtest_kernel.py runs it too)."""
    doc = json.loads(DEMO_TEMPLATE.read_text())
    config = {**doc["exchange_config"], "seed": seed}
    config.pop("price_source", None)
    exchange = PaperExchange.from_config(config, instance_id="bench", start_ms=0)
    params = GridParams.from_strategy_config({**doc["strategy_config"], "boundary_action": "adjust_range"},
                                             doc["metadata"]["symbol"])
    return exchange, PerpGridStrategy(exchange, params, "bench", log=lambda _m: None)


def sparse(ticks: int, seed: int, kernel: bool = True) -> BacktestReport:
    return run_backtest(*sparse_grid(seed), ticks, kernel)


def demo(ticks: int, seed: int, kernel: bool = True) -> BacktestReport:
    return run_backtest(*demo_grid(seed), ticks, kernel)


SPARSE_GOAL = 3_000_000         # ticks/s, issue 12 goal 5
DEMO_GOAL = 1_000_000


def timed(run: Callable[[], BacktestReport]) -> tuple[BacktestReport, float]:
    """The report and the CPU seconds the run took: on a shared machine wall time includes the
    time other jobs held the cores, CPU time does not."""
    cpu = time.process_time()
    r = run()
    return r, time.process_time() - cpu


def medians(name: str, runs: list[tuple[BacktestReport, float]]) -> float:
    """Print each run and the medians; returns the median ticks per CPU second."""
    for r, cpu in runs:
        engine = (f"{r.engine}: {r.kernel_turns:,} of {r.turns:,} turns, {r.kernel_range_changes} range changes in it"
                  if r.engine == "kernel" else r.engine)
        print(f"  {name}: {r.ticks:,} ticks in {r.seconds:.3f} s = {r.ticks_per_second:,.0f} ticks/s ({r.ticks / cpu:,.0f} "
              f"per CPU second); fills {r.fills} (a fill every {r.ticks / max(r.fills, 1):,.0f} ticks), grid profit "
              f"{r.grid_profit:.2f}, total PnL {r.total_pnl:.2f}, {r.state} {r.stop_reason} [{engine}]".rstrip())
    median = statistics.median(r.ticks_per_second for r, _ in runs)
    median_cpu = statistics.median(r.ticks / cpu for r, cpu in runs)
    per_fill = statistics.median(cpu / max(r.fills, 1) * 1e6 for r, cpu in runs)
    print(f"  {name}: median {median:,.0f} ticks/s, {median_cpu:,.0f} per CPU second; {per_fill:,.1f} CPU us per fill")
    return median_cpu


def compare(title: str, run: Callable[[bool], BacktestReport], repeats: int, goal: int) -> None:
    """The kernel's runs and the general path's, interleaved; the goal against the kernel's median."""
    print(title)
    runs: dict[bool, list[tuple[BacktestReport, float]]] = {True: [], False: []}
    for _ in range(repeats):
        for kernel in (True, False):
            runs[kernel].append(timed(lambda: run(kernel)))
    fast = medians("kernel ", runs[True])
    slow = medians("general", runs[False])
    same = {(r.fills, r.grid_profit, r.ticks) for r, _ in runs[True] + runs[False]}
    print(f"  kernel {fast:,.0f} ticks per CPU second: {fast / goal:.2f} of the goal ({goal:,}); "
          f"{fast / slow:.1f}x the general path (general/kernel time {slow / fast:.2f}); "
          f"results {'identical' if len(same) == 1 else 'DIFFERENT'} across engines and runs")


def main() -> None:
    ticks = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    demo_ticks = int(sys.argv[3]) if len(sys.argv) > 3 else 1_000_000
    sparse(10_000, 1, True), sparse(10_000, 1, False)     # imports and the kernel loaded outside the timing
    compare(f"sparse grid: {ticks:,}-tick random walk (volatility {SPARSE_VOLATILITY}/tick, seed 1), 50-level "
            f"neutral grid 120..180, {repeats} runs each", lambda k: sparse(ticks, 1, k), repeats, SPARSE_GOAL)
    compare(f"demo grid: {DEMO_TEMPLATE.relative_to(REPO)} (seed 1) with adjust_range, {demo_ticks:,} ticks asked, "
            f"{repeats} runs each", lambda k: demo(demo_ticks, 1, k), repeats, DEMO_GOAL)


if __name__ == "__main__":
    main()
