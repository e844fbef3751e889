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
from strategies.backtest_kernel import RC_END, RC_ENSURE, RC_STEP, Kernel, not_plain, why_no_kernel
from strategies.perp_grid_strategy import PerpGridStrategy


FILL_MODEL_TEXT = {
    "touch": "a resting order fills when the price reaches its limit, at the limit (optimistic: "
             "no queue ahead of it)",
    "through": "a resting order fills only when the price trades one tick through its limit, at "
               "the limit (conservative)",
}

ENGINE_TEXT = {
    "kernel": "compiled, for the grid's turns and re-centring; the live code for the rest (equal fill by fill)",
    "general": "the live code on every turn",
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
    engine: str = "general"     # "kernel": strategies/backtest_kernel.py ran the turns it models ...
    turns: int = 0              # turns taken in all ...
    kernel_turns: int = 0       # ... and those the kernel took, with this many range changes
    kernel_range_changes: int = 0
    engine_note: str = ""       # why the kernel did not run, when it did not

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
            f"engine         {self.engine}"
            + (f" ({self.kernel_turns:,} of {self.turns:,} turns, {self.kernel_range_changes:,} range changes)"
               if self.engine == "kernel" else "") + f": {ENGINE_TEXT[self.engine]}"
            + (f" (no kernel: {self.engine_note})" if self.engine_note else ""),
        ])


def run_backtest(exchange: PaperExchange, strategy: PerpGridStrategy, max_ticks: int,
                 kernel: bool = True) -> BacktestReport:
    """Run until `max_ticks` ticks are consumed, the prices run out, or the strategy stops.

    The compiled kernel (strategies/backtest_kernel.py) runs every stretch it models when `kernel`
    allows it (the tests run both ways); the loop below runs the rest, one turn at a time."""
    import numpy  # noqa: F401  (the price blocks need it: imported before the clock starts)

    fast = Kernel.for_run(exchange, strategy) if kernel else None    # built first where it is stale: untimed
    engine = "kernel" if fast is not None else "general"
    note = "" if fast is not None or not kernel else why_no_kernel(exchange, strategy)
    start_equity = exchange.equity()
    start_price = exchange.price
    t0 = time.perf_counter()
    strategy.incremental = True     # turns visit only the cells that may want something
    strategy.start()
    loop = _Loop(exchange, strategy, start_equity)
    while loop.ticks < max_ticks and not strategy.stopped:
        if fast is not None and not_plain(exchange, strategy) is None:
            why, loop.ticks, loop.peak, loop.max_dd = fast.run(loop.ticks, max_ticks, loop.peak, loop.max_dd)
            if why == RC_END:
                break
            if why == RC_STEP:          # the turn is the general path's (a range change, say)
                strategy.step()
            elif why == RC_ENSURE:      # fills booked, risk checked: its orders are the general path's
                try:
                    strategy._ensure_all()
                finally:
                    strategy._save()
            if why in (RC_STEP, RC_ENSURE):
                loop.turned()
                if exchange.exhausted:
                    break
                continue
        if not loop.iteration(max_ticks):
            break
    seconds = time.perf_counter() - t0
    s = strategy.summary()
    in_kernel, kernel_changes = (fast.turns, fast.range_changes) if fast is not None else (0, 0)
    return BacktestReport(loop.ticks, seconds, start_price, exchange.price, s["grid_profit"], exchange.realized,
                          exchange.unrealized(), exchange.equity() - start_equity, s["fees"], exchange.funding, s["volume"],
                          s["fill_count"], s["cycles"], loop.max_dd, exchange.pos_qty, s["state"], s["stop_reason"],
                          exchange.fill_model, exchange.tick_size, engine, loop.turns + in_kernel, in_kernel,
                          kernel_changes, note)


class _Loop:
    """The backtest's turns one at a time (the general path), and the drawdown over every tick."""

    def __init__(self, exchange: PaperExchange, strategy: PerpGridStrategy, start_equity: float) -> None:
        self.exchange, self.strategy = exchange, strategy
        self.ticks = 0
        self.turns = 0              # turns taken here (the kernel counts its own)
        self.peak, self.max_dd = start_equity, 0.0

    def iteration(self, max_ticks: int) -> bool:
        """One turn on the next tick that can change something; False once the prices ran out."""
        import numpy as np

        exchange, strategy = self.exchange, self.strategy
        low, high = strategy.wake_prices()
        cash, qty, entry = exchange.balance, exchange.pos_qty, exchange.entry
        prices = exchange.advance(low, high, max_ticks - self.ticks, strategy.wake_ms())
        if prices is None or len(prices) == 0:
            return False
        self.ticks += len(prices)
        peak, max_dd = self.peak, self.max_dd
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
        self.peak, self.max_dd = peak, max_dd
        strategy.step()
        self.turned()
        return not exchange.exhausted

    def turned(self) -> None:
        """A turn ended: the equity after it counts too."""
        self.turns += 1
        equity_now = self.exchange.equity()
        self.peak = max(self.peak, equity_now)
        self.max_dd = max(self.max_dd, self.peak - equity_now)
