"""The books' records: one order of ours on a cell (`OrderRef`), a cell (`Cell`), the grid's totals,
and the tolerances and time limits the books keep. Plain data: strategies/order_book.py keeps them
straight against the exchange, strategies/grid_state.py saves and reads them back.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from exchanges import client_ids

EPS = 1e-9
MARKET_LEVEL = client_ids.MAX_LEVEL     # level of market orders that close the whole position
FILL_LOOKBACK_MS = 60_000               # late fills of a real venue still get read once
VANISHED_MS = 120_000                   # an order gone from the book this long without a fill was not filled


@dataclass
class OrderRef:
    """One order of ours on a cell, with two filled amounts never mixed: `filled` is what the books
    booked of it (its listed fills, each once: what moved the cell's holding), `executed` what the
    venue last said it filled (executedQuantity, at placement or a reconcile), which counts pieces
    its fill history may list only later. A piece in both is one piece, so neither is added to the
    other: the order traded the larger of the two."""

    id: str
    client_id: int | None
    price: float
    qty: float
    filled: float = 0.0
    executed: float = 0.0

    @property
    def traded(self) -> float:
        """What the order filled as far as we know (the page's and the store's filled_qty)."""
        return max(self.filled, self.executed)

    @property
    def remaining(self) -> float:
        """What can still fill on the venue: what rests, for max_position."""
        return max(0.0, self.qty - self.traded)

    @property
    def to_book(self) -> float:
        """What this order will still add to the books: its rest and its pieces not listed yet. A
        closing order fits its cell when this equals the cell's `to_close`."""
        return max(0.0, self.qty - self.filled)


@dataclass
class Cell:
    index: int
    side: str                   # 'long' | 'short'
    held: float = 0.0           # position opened by this cell and not yet closed
    open_fees: float = 0.0      # fees paid opening `held`, booked pro rata when it closes
    seq: int = 0
    blocked: str | None = None  # 'invalid' / 'band' until retry_at, 'margin' / 'exposure' until a fill
    rejections: int = 0         # refusals in a row (InvalidOrder): the backoff doubles with each
    retry_at: int = 0           # exchange time (ms) before which a refused level is not sent again
    reject_price: float = 0.0   # the price at a price-band refusal: retried only once it moved
    cost: float | None = None   # open price of an adopted holding (None: the cell's own opening level)
    unbooked: dict[str, float] = field(default_factory=dict)    # gone close id -> filled, fill not listed yet
    open_order: OrderRef | None = None
    close_order: OrderRef | None = None

    @property
    def direction(self) -> int:
        return 1 if self.side == "long" else -1

    def snapshot(self) -> "Cell":
        """An independent copy (its order refs and unbooked closes too), for a snapshot to go back to.
        (Field by field: copy.copy of a dataclass goes through pickling's protocol, and every
        range change snapshots every cell.)"""
        twin = _clone(self)
        twin.unbooked, twin.open_order, twin.close_order = (dict(self.unbooked), _clone(self.open_order),
                                                            _clone(self.close_order))
        return twin

    @property
    def to_close(self) -> float:
        """What the closing order must hold: the holding less what cancelled closes already sold."""
        if not self.unbooked:
            return self.held
        return max(0.0, round(self.held - sum(self.unbooked.values()), 10))


def _clone(obj):
    """A shallow copy of a plain dataclass instance (None stays None)."""
    if obj is None:
        return None
    twin = object.__new__(type(obj))
    twin.__dict__.update(obj.__dict__)
    return twin


@dataclass
class Totals:
    grid_profit: float = 0.0
    fees: float = 0.0
    volume: float = 0.0
    fill_count: int = 0
    cycles: int = 0


def average_entry(qty: float, entry: float, signed: float, price: float) -> float:
    """The average entry after a trade of `signed` at `price` on a position `qty` at `entry`, as a
    perpetual account keeps it: growing averages, shrinking keeps it, flipping starts at the price."""
    after = qty + signed
    if abs(after) <= EPS:
        return 0.0
    if abs(qty) <= EPS or (qty > 0) != (after > 0):
        return price
    if abs(after) > abs(qty):
        return (abs(qty) * entry + abs(signed) * price) / abs(after)
    return entry
