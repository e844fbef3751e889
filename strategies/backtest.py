"""Backtest: the live strategy against the paper exchange, as fast as the machine allows.

Nothing is simplified: the same PerpGridStrategy places the same orders on the same
PaperExchange matching engine. The only difference from a live loop is that ticks on which a
turn could not change anything (no resting order crossed, no wake price or wake time reached)
are consumed in bulk instead of one turn each (see PaperExchange.advance,
PerpGridStrategy.wake_prices and wake_ms); tests/bot/test_backtest.py holds the result equal,
fill by fill, to stepping every tick. Equity between turns is computed from the skipped prices,
so the maximum drawdown covers every tick.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from exchanges.paper_exchange import PaperExchange
from strategies.perp_grid_strategy import PerpGridStrategy


FILL_MODEL_TEXT = {
    "touch": "a resting order fills when the price reaches its limit, at the limit (optimistic: "
             "no queue ahead of it)",
    "through": "a resting order fills only when the price trades one tick through its limit, at "
               "the limit (conservative)",
}


@dataclass
class BacktestReport:
    ticks: int
    seconds: float
    start_price: float
    end_price: float
    grid_profit: float
    realized_pnl: float
    unrealized_pnl: float
    total_pnl: float
    fees: float
    funding: float              # funding paid (positive) or received (negative) over the run
    volume: float
    fills: int
    cycles: int
    max_drawdown: float
    final_position: float
    state: str
    stop_reason: str
    fill_model: str = "touch"
    tick_size: float = 0.0

    @property
    def ticks_per_second(self) -> float:
        return self.ticks / self.seconds if self.seconds > 0 else float("inf")

    def text(self) -> str:
        return "\n".join([
            "=== backtest report ===",
            f"ticks          {self.ticks:,} in {self.seconds:.3f} s ({self.ticks_per_second:,.0f} ticks/s)",
            f"fill model     {self.fill_model}: {FILL_MODEL_TEXT[self.fill_model]}; prices rounded to the tick "
            f"{self.tick_size:g}",
            f"price          {self.start_price:.4f} -> {self.end_price:.4f}",
            f"grid profit    {self.grid_profit:.4f}",
            f"realized PnL   {self.realized_pnl:.4f}",
            f"unrealized PnL {self.unrealized_pnl:.4f}",
            f"total PnL      {self.total_pnl:.4f} (equity change, after fees)",
            f"fees           {self.fees:.4f}",
            f"funding        {abs(self.funding):.4f} {'paid' if self.funding >= 0 else 'received'}",
            f"volume         {self.volume:.2f}",
            f"fills          {self.fills} ({self.cycles} closed cycles)",
            f"max drawdown   {self.max_drawdown:.4f}",
            f"final position {self.final_position:g}",
            f"state          {self.state}{' (' + self.stop_reason + ')' if self.stop_reason else ''}",
        ])


def run_backtest(exchange: PaperExchange, strategy: PerpGridStrategy, max_ticks: int) -> BacktestReport:
    """Run until `max_ticks` ticks are consumed, the prices run out, or the strategy stops."""
    import numpy as np

    start_equity = exchange.equity()
    start_price = exchange.price
    peak, max_dd = start_equity, 0.0
    t0 = time.perf_counter()
    strategy.incremental = True     # turns visit only the cells that may want something
    strategy.start()
    ticks = 0
    while ticks < max_ticks and not strategy.stopped:
        low, high = strategy.wake_prices()
        cash, qty, entry = exchange.balance, exchange.pos_qty, exchange.entry
        prices = exchange.advance(low, high, max_ticks - ticks, strategy.wake_ms())
        if prices is None or len(prices) == 0:
            break
        ticks += len(prices)
        if isinstance(prices, list):              # a short stretch: numpy's overhead is more than its ticks
            for price in prices[:-1]:             # ticks skipped with the position unchanged
                equity = cash + qty * (price - entry)
                if equity > peak:
                    peak = equity
                elif peak - equity > max_dd:
                    max_dd = peak - equity
        elif prices.size > 1:
            equity = cash + qty * (prices[:-1] - entry)
            running = np.maximum.accumulate(np.maximum(equity, peak))
            max_dd = max(max_dd, float((running - equity).max()))
            peak = float(running[-1])
        strategy.step()
        equity_now = exchange.equity()
        peak = max(peak, equity_now)
        max_dd = max(max_dd, peak - equity_now)
        if exchange.exhausted:
            break
    seconds = time.perf_counter() - t0
    s = strategy.summary()
    return BacktestReport(ticks, seconds, start_price, exchange.price, s["grid_profit"], exchange.realized,
                          exchange.unrealized(), exchange.equity() - start_equity, s["fees"], exchange.funding, s["volume"],
                          s["fill_count"], s["cycles"], max_dd, exchange.pos_qty, s["state"], s["stop_reason"],
                          exchange.fill_model, exchange.tick_size)
