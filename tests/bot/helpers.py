"""Test helpers for the bot: a price source the test steers, and a paper exchange around it."""
from __future__ import annotations

from exchanges.paper_exchange import PaperExchange
from strategies.grid_params import GridParams
from strategies.perp_grid_strategy import PerpGridStrategy


class StepPrices:
    """A PriceSource whose next price the test sets: `move(p)` then `exchange.step()`."""

    def __init__(self, price: float) -> None:
        self.price = price
        self.ts = 1_000_000

    @property
    def start_ms(self) -> int:
        """The simulated clock starts here (PaperExchange reads it), not at the wall clock."""
        return self.ts

    def next(self) -> tuple[int, float]:
        self.ts += 1000
        return self.ts, self.price

    def state(self) -> dict:
        return {"kind": "steered", "price": self.price, "ts": self.ts}

    def restore(self, state: dict) -> None:
        self.price, self.ts = state["price"], state["ts"]


def paper(price: float, db=None, **kwargs) -> tuple[PaperExchange, StepPrices]:
    source = StepPrices(price)
    return PaperExchange(source, db=db, **kwargs), source


def move(exchange: PaperExchange, source: StepPrices, price: float) -> None:
    source.price = price
    exchange.step()


def cancel_nth(exchange: PaperExchange, symbol: str, n: int) -> None:
    """Cancel one open order, the n-th (modulo how many rest), if any rests: a random operation's cancel."""
    orders = exchange.fetch_open_orders(symbol)
    if orders:
        exchange.cancel_order(symbol, order_id=orders[n % len(orders)].id)


def grid(exchange: PaperExchange, store=None, adopt_position: bool = False, **overrides) -> PerpGridStrategy:
    """A strategy on lines 100, 101, 102, 103, 104 (quantity 1) unless overridden."""
    values = dict(symbol="SOL_USDC_PERP", lower=100.0, upper=104.0, num=5, quantity=1.0)
    values.update(overrides)
    return PerpGridStrategy(exchange, GridParams(**values), "test_bot", store=store, log=lambda _m: None,
                            adopt_position=adopt_position)


def resting(exchange: PaperExchange) -> list[tuple[str, float, float]]:
    """(side, price, remaining) of every resting order, sorted."""
    return sorted((o.side, o.price, round(o.remaining, 10)) for o in exchange.fetch_open_orders("SOL_USDC_PERP"))


def flatten_leaves_the_account_flat(strat: PerpGridStrategy, exchange: PaperExchange) -> None:
    """The trader's flatten, with up to 20 turns for fills the venue lists late: the grid stops for
    that reason with nothing resting and the account flat (tests hold no position of their own)."""
    import pytest

    strat.flatten("trader's flatten")
    for _ in range(20):
        if strat.stopped:
            break
        move(exchange, exchange.source, exchange.source.price)
        strat.step()
    assert strat.stop_reason == "trader's flatten"
    assert exchange.fetch_open_orders("SOL_USDC_PERP") == [] and exchange.pos_qty == pytest.approx(0.0, abs=1e-9)
