"""The exchange interface every bot trades through.

Strategies see only this module's types, so the paper exchange and a real one (through ccxt) are
interchangeable. Prices and quantities are floats already rounded to the market's tick and step:
each the float nearest to an exact decimal multiple (exchanges/ticks.py), checked with
`is_multiple`.
Times are milliseconds since the epoch. Sides are 'buy' and 'sell'. A position's qty is signed:
positive long, negative short.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, Sequence

from exchanges.ticks import is_multiple  # noqa: F401  (exact multiples of a tick: part of the interface)


# ---- errors: each one has a defined reaction in the bot -------------------------------------
class ExchangeError(Exception):
    """Anything the exchange refused or failed to do."""


class AuthenticationError(ExchangeError):
    """Bad or missing keys: retrying cannot help, the bot stops with a clear message."""


class InsufficientMargin(ExchangeError):
    """Not enough margin for this order: skip the level."""


class InvalidOrder(ExchangeError):
    """Price or quantity the market refuses (tick, step, minimum, price band): skip the level."""


class PostOnlyRejected(InvalidOrder):
    """A postOnly order that would have crossed the book: retry next loop at the same level."""


class PriceOutOfBand(InvalidOrder):
    """A price outside the venue's band around its last price: retry that level once the price has moved."""


class OrderNotFound(ExchangeError):
    """Cancel or query of an order the exchange does not know (already filled or cancelled)."""


class RateLimited(ExchangeError):
    """HTTP 429 or the shared budget is spent: wait `retry_after` seconds, then go on."""

    def __init__(self, message: str = "rate limited", retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ExchangeUnavailable(ExchangeError):
    """Timeout, network loss, 5xx: retry with backoff, never crash-loop."""


# ---- data ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Market:
    symbol: str                 # as the user writes it, e.g. SOL_USDC_PERP
    base: str
    quote: str
    tick_size: float
    step_size: float
    min_qty: float
    maker_fee: float = 0.0002
    taker_fee: float = 0.0005


@dataclass(frozen=True)
class Ticker:
    symbol: str
    last: float
    bid: float
    ask: float
    timestamp: int


@dataclass
class Order:
    id: str
    symbol: str
    side: str                   # 'buy' | 'sell'
    type: str                   # 'limit' | 'market'
    price: float                # limit price; average fill price for market orders
    qty: float
    filled_qty: float = 0.0
    status: str = "open"        # 'open' | 'filled' | 'canceled' | 'rejected'
    client_id: int | None = None
    post_only: bool = False
    reduce_only: bool = False
    timestamp: int = 0

    @property
    def remaining(self) -> float:
        return max(0.0, self.qty - self.filled_qty)


@dataclass(frozen=True)
class Fill:
    trade_id: str               # unique per exchange: a replay never counts twice
    order_id: str
    symbol: str
    side: str
    price: float
    qty: float
    fee: float                  # in quote currency, positive = paid
    is_maker: bool
    timestamp: int
    client_id: int | None = None
    # Set for a fill of an order the venue placed on the account itself (a liquidation, an ADL:
    # Backpack's systemOrderType), never by the bot: it has no client id and moves the position.
    system_order: str | None = None


@dataclass(frozen=True)
class Position:
    symbol: str
    qty: float = 0.0            # signed
    entry_price: float = 0.0
    unrealized_pnl: float = 0.0
    realized_pnl: float = 0.0


@dataclass(frozen=True)
class Balance:
    asset: str
    total: float
    free: float
    used: float = 0.0


@dataclass(frozen=True)
class OrderRequest:
    """One order of a batch; `type` 'limit' needs a price."""

    symbol: str
    side: str
    qty: float
    price: float | None = None
    type: str = "limit"
    post_only: bool = True
    reduce_only: bool = False
    client_id: int | None = None
    extra: dict = field(default_factory=dict)


# ---- the interface ---------------------------------------------------------------------------
class Exchange(abc.ABC):
    """One account on one venue. Implementations: paper (default) and ccxt."""

    name: str = "abstract"
    leverage: float = 1.0       # margin = notional / leverage (what check_params assumes for max_position)

    @abc.abstractmethod
    def market(self, symbol: str) -> Market: ...

    @abc.abstractmethod
    def fetch_ticker(self, symbol: str) -> Ticker: ...

    @abc.abstractmethod
    def place_order(self, request: OrderRequest) -> Order:
        """Place one limit or market order; raises the errors above."""

    def place_orders(self, requests: Sequence[OrderRequest]) -> list[Order | ExchangeError]:
        """Batch placement where the venue has it; one result (order or error) per request."""
        results: list[Order | ExchangeError] = []
        for req in requests:
            try:
                results.append(self.place_order(req))
            except (InvalidOrder, InsufficientMargin) as exc:
                results.append(exc)
        return results

    @abc.abstractmethod
    def cancel_order(self, symbol: str, order_id: str | None = None, client_id: int | None = None) -> Order | None:
        """Cancel by exchange id or client id; OrderNotFound if it is already gone.

        Returns the cancelled order as the venue answered it (its `filled_qty` is what it filled
        up to the cancel, which the fill history may list later), or None where the venue's
        answer has no order."""

    def cancel_orders(self, symbol: str, order_ids: Sequence[str]) -> list[Order | ExchangeError | None]:
        """Cancel these orders (by exchange id); one result per id: when cancelled, the order as
        `cancel_order` answered it (None where the venue's answer has none), else the error
        (OrderNotFound: already gone). The answer matters after a stop: what an order filled
        before the cancel may be listed later, and the bot waits for it. Never a cancel-all, which
        would take the trader's manual orders too. One request after another here; a venue
        adapter overrides it to cancel concurrently within its request budget."""
        return [self._cancel_one(symbol, order_id) for order_id in order_ids]

    def _cancel_one(self, symbol: str, order_id: str) -> Order | ExchangeError | None:
        """One of `cancel_orders`' results."""
        try:
            return self.cancel_order(symbol, order_id=order_id)
        except ExchangeError as exc:
            return exc

    def cancel_seconds(self, count: int) -> float:
        """About how long `cancel_orders` takes for `count` orders: what a stopping bot asks its
        supervisor for (a simulated exchange answers at once)."""
        return 0.0

    @abc.abstractmethod
    def cancel_all_orders(self, symbol: str) -> int:
        """Cancel every open order of this symbol; returns how many."""

    @abc.abstractmethod
    def fetch_open_orders(self, symbol: str) -> list[Order]: ...

    @abc.abstractmethod
    def fetch_order(self, symbol: str, order_id: str) -> Order:
        """The venue's record of one order, open or done: its status and what it filled
        (executedQuantity), which tells an order cancelled elsewhere (or whose cancel's answer
        was lost) from one that filled before its fills are listed. OrderNotFound when the venue
        has no record of it."""

    @abc.abstractmethod
    def fetch_order_by_client_id(self, symbol: str, client_id: int) -> Order:
        """The venue's latest order under this client id, open or done (as `fetch_order`): what
        became of a placement whose answer was lost, when it no longer rests. OrderNotFound when
        the venue has none among its recent orders."""

    @abc.abstractmethod
    def fetch_position(self, symbol: str) -> Position: ...

    @abc.abstractmethod
    def fetch_balance(self) -> Balance:
        """The margin (quote) asset."""

    @abc.abstractmethod
    def fetch_fills(self, symbol: str, since_ms: int) -> list[Fill]:
        """Fills at or after `since_ms`, oldest first."""

    def commits_with(self, store: Any) -> bool:
        """Whether this venue keeps its own records in `store`'s transactions (the paper exchange
        on the bot's database). An order placed in a turn then rolls back with the turn's books if
        the bot is killed before the turn commits, so it needs no placements journal
        (`Database.note_sending`, one fsync per placing turn). A real venue never does."""
        return False

    def close(self) -> None:
        """Release connections and files."""
