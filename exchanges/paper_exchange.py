"""The embedded paper exchange: a simulated perpetual market with a real matching engine.

Rules (the same for a live paper bot and for the backtest):
- the fill model (`fill_model`) is stated, not implied. "touch" (the default): a resting buy
  fills when the price trades at or below its limit, at its limit price, paying the maker fee; a
  resting sell symmetrically. That is optimistic about queue position: on a venue, orders ahead
  at the same price fill first and the price may turn without reaching ours. "through" is the
  conservative model: a resting order fills only when the price trades through its limit by one
  tick (still at its limit price). Simulated prices are rounded to the tick first. When one step
  gaps through several orders the nearest price fills first; `max_fill_qty` (optional) caps what
  one order fills per step, so partial fills happen;
- market orders, and limit orders that cross without postOnly, fill at once at the last price
  and pay the taker fee; a postOnly order that would cross is rejected (PostOnlyRejected);
- reduceOnly orders never grow the position (rejected, or trimmed when they fill);
- opening orders need margin: notional / leverage, against equity less the margin of the
  position and of the other resting opening orders (InsufficientMargin);
- one perpetual position (signed qty, average entry, realized PnL), fees, and optional funding
  (`funding_rate` charged every `funding_interval_h` hours on the position's notional).

The account lives in the instance database (tables paper_*), committed with every change, so a
restarted bot finds its balance, position and resting orders where it left them. Without a
database (the backtest) it lives in memory. The market is one simulated price; the symbol is a
label taken from the bot's config.
"""
from __future__ import annotations

import bisect
import copy
import json
import math
from collections import OrderedDict
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from exchanges.base import (Balance, Exchange, Fill, InsufficientMargin, InvalidOrder, Market, Order,
                            OrderNotFound, OrderRequest, Position, PostOnlyRejected, Ticker, is_multiple)
from exchanges.paper_prices import PriceSource, build_price_source, wall_clock_ms
from exchanges.ticks import from_steps

if TYPE_CHECKING:                     # numpy is imported only by the backtest fast path
    import numpy as np

EPS = 1e-9
MARGIN_RESYNC = 256     # changes to the running margin sums before they are summed afresh (bounds float drift)
MARGIN_TOLERANCE = 1e-9     # relative: a running-sum answer this close to the line is checked exactly
SCAN_TICKS = 160        # ticks of a backtest stretch looked at one by one before numpy takes over: numpy
                        # costs ~15 us a stretch (its window and the drawdown), a tick ~0.1 us in Python
FILL_MODELS = ("touch", "through")
DONE_KEPT = 4096        # orders done that a paper venue without a database still answers fetch_order for
PAPER_SCHEMA = """
CREATE TABLE IF NOT EXISTS paper_account (id INTEGER PRIMARY KEY CHECK (id = 1), data TEXT);
CREATE TABLE IF NOT EXISTS paper_orders (id TEXT PRIMARY KEY, status TEXT, data TEXT);
CREATE TABLE IF NOT EXISTS paper_fills (trade_id TEXT PRIMARY KEY, timestamp INTEGER, data TEXT);
CREATE INDEX IF NOT EXISTS paper_fills_ts ON paper_fills(timestamp);
"""


def _split_symbol(symbol: str) -> tuple[str, str]:
    """'SOL_USDC_PERP' or 'SOL/USDC:USDC' -> ('SOL', 'USDC')."""
    parts = symbol.replace("/", "_").replace(":", "_").split("_")
    return parts[0], parts[1] if len(parts) > 1 else "USDC"


class PaperExchange(Exchange):
    """One simulated account on one simulated perpetual market."""

    name = "paper"

    def __init__(self, source: PriceSource, *, balance: float = 10000.0, leverage: float = 10.0,
                 maker_fee: float = 0.0002, taker_fee: float = 0.0005, tick_size: float = 0.01,
                 step_size: float = 0.01, min_qty: float = 0.01, max_fill_qty: float | None = None,
                 funding_rate: float = 0.0, funding_interval_h: float = 8.0, fill_model: str = "touch",
                 db: Any = None, start_ms: int | None = None) -> None:
        if leverage <= 0 or balance < 0:
            raise ValueError("paper exchange: leverage must be > 0 and balance >= 0")
        if fill_model not in FILL_MODELS:
            raise ValueError(f"exchange_config.fill_model: {fill_model!r} is invalid: one of {', '.join(FILL_MODELS)}")
        self.fill_model = fill_model
        self.source = source
        self.leverage = float(leverage)
        self.maker_fee, self.taker_fee = float(maker_fee), float(taker_fee)
        self.tick_size, self.step_size, self.min_qty = float(tick_size), float(step_size), float(min_qty)
        # a buy fills at prices <= limit - reach (a sell >= limit + reach): 0 on touch, a tick through
        self.reach = self.tick_size if fill_model == "through" else 0.0
        self.max_fill_qty = float(max_fill_qty) if max_fill_qty else None
        self.funding_rate = float(funding_rate)
        self.funding_ms = int(funding_interval_h * 3600 * 1000)
        self.db = db
        self.exhausted = False
        # account
        self.balance = float(balance)     # cash: deposits + realized - fees - funding
        self.pos_qty = 0.0
        self.entry = 0.0
        self.realized = 0.0
        self.fees = 0.0
        self.funding = 0.0
        self.order_seq = 0
        self.trade_seq = 0
        self.price = self._round_price(getattr(source, "price", 0.0) or 0.0)
        # the simulated clock: given (0 for a reproducible backtest), else a replay's own start, else now
        if start_ms is None:
            start_ms = getattr(source, "start_ms", None)
        self.ts = wall_clock_ms() if start_ms is None else int(start_ms)
        # set now, so the first stretch advance() skips stops at the first funding time too
        self.next_funding_ts = ((self.ts // self.funding_ms + 1) * self.funding_ms
                                if self.funding_rate and self.funding_ms else 0)
        self.orders: dict[str, Order] = {}
        self._fills: list[Fill] = []          # memory mode only
        self._done: OrderedDict[str, Order] = OrderedDict()     # memory mode: the latest DONE_KEPT orders done
        self._fill_ts: list[int] = []
        # the resting orders' prices per side, ascending (the best bid last, the best ask first),
        # and their client ids: every tick asks for the best prices and every placement whether
        # its client id is taken, so neither looks through all the orders
        self._prices: dict[str, list[float]] = {"buy": [], "sell": []}
        self._client_ids: set[int] = set()
        # running (qty, notional) of the resting opening orders per side: a placement decides its
        # margin from them when the answer is clear, and sums the orders exactly only near the line
        self._sums: dict[str, list[float]] = {"buy": [0.0, 0.0], "sell": [0.0, 0.0]}
        self._sums_peak = 0.0
        self._sums_changes = 0
        self._reduce_only_resting = 0       # resting reduceOnly orders: none, and nothing to drop
        if db is not None:
            db.ensure_schema(PAPER_SCHEMA)
            self._load()
        if not self.price:
            self.step()

    @classmethod
    def from_config(cls, config: dict[str, Any], *, instance_id: str, db: Any = None,
                    source: PriceSource | None = None, start_ms: int | None = None) -> "PaperExchange":
        """Build from an instance's exchange_config (see the module docstring for the keys)."""
        known = {"balance", "leverage", "maker_fee", "taker_fee", "tick_size", "step_size", "min_qty",
                 "max_fill_qty", "funding_rate", "funding_interval_h", "fill_model"}
        kwargs = {k: config[k] for k in known if config.get(k) is not None}
        return cls(source or build_price_source(config, instance_id), db=db, start_ms=start_ms, **kwargs)

    # ---- persistence -----------------------------------------------------------------------
    def _account(self) -> dict:
        return {"balance": self.balance, "pos_qty": self.pos_qty, "entry": self.entry,
                "realized": self.realized, "fees": self.fees, "funding": self.funding,
                "order_seq": self.order_seq, "trade_seq": self.trade_seq, "price": self.price,
                "ts": self.ts, "next_funding_ts": self.next_funding_ts, "source": self.source.state()}

    def _load(self) -> None:
        rows = self.db.query("SELECT data FROM paper_account WHERE id = 1")
        if not rows:
            self._save_account()
            return
        acct = json.loads(rows[0]["data"])
        for key in ("balance", "pos_qty", "entry", "realized", "fees", "funding", "price"):
            setattr(self, key, float(acct[key]))
        for key in ("order_seq", "trade_seq", "ts", "next_funding_ts"):
            setattr(self, key, int(acct[key]))
        if acct.get("source", {}).get("kind") == self.source.state().get("kind"):
            self.source.restore(acct["source"])
        for row in self.db.query("SELECT data FROM paper_orders WHERE status = 'open'"):
            self._add(Order(**json.loads(row["data"])))
        self._resum()

    def _save_account(self) -> None:
        if self.db is not None:
            with self.db.transaction() as conn:
                conn.execute("INSERT OR REPLACE INTO paper_account VALUES (1, ?)", (json.dumps(self._account()),))

    def _save_order(self, order: Order) -> None:
        if self.db is not None:
            with self.db.transaction() as conn:
                conn.execute("INSERT OR REPLACE INTO paper_orders VALUES (?, ?, ?)",
                             (order.id, order.status, json.dumps(asdict(order))))

    def _save_fill(self, fill: Fill) -> None:
        if self.db is None:
            self._fills.append(fill)
            self._fill_ts.append(fill.timestamp)
            return
        with self.db.transaction() as conn:
            conn.execute("INSERT INTO paper_fills VALUES (?, ?, ?)",
                         (fill.trade_id, fill.timestamp, json.dumps(asdict(fill))))

    # ---- market data -----------------------------------------------------------------------
    def _round_price(self, price: float) -> float:
        """The simulated price on the tick (counted in ticks as numpy does in `advance`), exactly."""
        return from_steps(round(price / self.tick_size), self.tick_size)

    def market(self, symbol: str) -> Market:
        base, quote = _split_symbol(symbol)
        return Market(symbol, base, quote, self.tick_size, self.step_size, self.min_qty,
                      self.maker_fee, self.taker_fee)

    def fetch_ticker(self, symbol: str) -> Ticker:
        return Ticker(symbol, self.price, self.price, self.price, self.ts)

    # ---- simulation ------------------------------------------------------------------------
    def step(self) -> bool:
        """Advance the price one step and match resting orders; False once a replay has ended."""
        nxt = self.source.next()
        if nxt is None:
            self.exhausted = True
            return False
        with self._batch_writes():
            self._tick(nxt[0], nxt[1])
        return True

    def _batch_writes(self) -> AbstractContextManager:
        """One database transaction around a whole step (a no-op context in memory mode)."""
        return self.db.transaction() if self.db is not None else nullcontext()

    def _tick(self, ts: int, raw_price: float) -> None:
        self.ts, self.price = int(ts), self._round_price(raw_price)
        if self.funding_rate and self.funding_ms:
            self._charge_funding()
        self._match()
        self._save_account()

    def fill_bounds(self) -> tuple[float, float]:
        """A price at or below the first bound fills the best buy, at or above the second the best
        sell (under the fill model). Half a tick inside, so float noise on tick prices never counts."""
        bid, ask = self.best_bid_ask()
        half = self.tick_size / 2
        return bid - self.reach + half, ask + self.reach - half

    def best_bid_ask(self) -> tuple[float, float]:
        """Highest resting buy and lowest resting sell (-inf / inf when none)."""
        bids, asks = self._prices["buy"], self._prices["sell"]
        return (bids[-1] if bids else float("-inf")), (asks[0] if asks else float("inf"))

    def _add(self, order: Order) -> None:
        """An order rests on the book."""
        self.orders[order.id] = order
        bisect.insort(self._prices[order.side], order.price)
        if order.client_id is not None:
            self._client_ids.add(order.client_id)

    def _remove(self, order: Order) -> bool:
        """An order leaves the book; False if it was not resting."""
        if self.orders.pop(order.id, None) is None:
            return False
        self._prices[order.side].remove(order.price)
        self._client_ids.discard(order.client_id)
        return True

    def _charge_funding(self) -> None:
        if not self.next_funding_ts:
            self.next_funding_ts = (self.ts // self.funding_ms + 1) * self.funding_ms
        while self.ts >= self.next_funding_ts:
            payment = self.pos_qty * self.price * self.funding_rate  # longs pay a positive rate
            self.balance -= payment
            self.funding += payment
            self.next_funding_ts += self.funding_ms

    def _match(self) -> None:
        buys_below, sells_above = self.fill_bounds()
        if buys_below < self.price < sells_above:
            return
        half = self.tick_size / 2
        crossed = [o for o in self.orders.values()
                   if (self.price <= o.price - self.reach + half if o.side == "buy"
                       else self.price >= o.price + self.reach - half)]
        for order in sorted(crossed, key=self._queue_key):
            qty = order.remaining if self.max_fill_qty is None else min(order.remaining, self.max_fill_qty)
            if order.reduce_only:
                qty = min(qty, self._reducible(order.side))
                if qty <= EPS:
                    self._finish(order, "canceled")
                    continue
            self._execute(order, qty, order.price, is_maker=True)
        self._drop_spent_reduce_only()

    @staticmethod
    def _queue_key(order: Order) -> tuple[float, int]:
        """The order in which one price move reaches resting orders: nearest price first.

        A move that gaps through several orders trades through the nearest first (the highest buy
        on the way down, the lowest sell on the way up); placement order decides only between
        orders at one price. Any other order books a close as an open and gets the average entry,
        realized PnL and stop-loss wrong. Resting orders never cross each other, so one move
        reaches orders of one side only.
        """
        return (-order.price if order.side == "buy" else order.price), order.timestamp

    def _drop_spent_reduce_only(self) -> None:
        """A reduceOnly order with no position left to reduce is cancelled, as venues do."""
        if not self._reduce_only_resting:       # none rests (a grid's orders never are)
            return
        for order in [o for o in self.orders.values() if o.reduce_only and self._reducible(o.side) <= EPS]:
            self._finish(order, "canceled")

    def _reducible(self, side: str) -> float:
        """How much an order of this side can reduce the position (0 if it would grow it)."""
        if side == "buy" and self.pos_qty < 0:
            return -self.pos_qty
        if side == "sell" and self.pos_qty > 0:
            return self.pos_qty
        return 0.0

    def _execute(self, order: Order, qty: float, price: float, is_maker: bool) -> Fill:
        qty = round(qty, 10)
        fee = price * qty * (self.maker_fee if is_maker else self.taker_fee)
        self._apply_trade(order.side, qty, price)
        self.balance -= fee
        self.fees += fee
        self.trade_seq += 1
        fill = Fill(f"P{self.trade_seq}", order.id, order.symbol, order.side, price, qty, fee, is_maker,
                    self.ts, order.client_id)
        before = order.remaining
        order.filled_qty = round(order.filled_qty + qty, 10)
        if order.id in self.orders:
            self._rests(order, order.remaining - before)
        if order.remaining <= EPS:
            self._finish(order, "filled")
        else:
            self._save_order(order)
        self._save_fill(fill)
        return fill

    def _finish(self, order: Order, status: str) -> None:
        order.status = status
        if self._remove(order):
            self._rests(order, -order.remaining)
        self._save_order(order)
        if self.db is None:
            self._done[order.id] = order
            if len(self._done) > DONE_KEPT:
                self._done.popitem(last=False)

    def _apply_trade(self, side: str, qty: float, price: float) -> None:
        signed = qty if side == "buy" else -qty
        old = self.pos_qty
        if old == 0 or (old > 0) == (signed > 0):
            self.entry = (abs(old) * self.entry + qty * price) / (abs(old) + qty)
        else:
            closed = min(qty, abs(old))
            pnl = closed * (price - self.entry) * (1 if old > 0 else -1)
            self.realized += pnl
            self.balance += pnl
            if qty > abs(old) + EPS:
                self.entry = price            # flipped: the rest opens at this price
        self.pos_qty = round(old + signed, 10)
        if abs(self.pos_qty) <= EPS:
            self.pos_qty, self.entry = 0.0, 0.0

    # ---- account ---------------------------------------------------------------------------
    def unrealized(self) -> float:
        return self.pos_qty * (self.price - self.entry) if self.pos_qty else 0.0

    def equity(self) -> float:
        return self.balance + self.unrealized()

    def _resting(self, side: str) -> list[tuple[float, float]]:
        """(price, remaining) of the resting orders of one side that need margin (not reduceOnly)."""
        return [(o.price, o.remaining) for o in self.orders.values() if o.side == side and not o.reduce_only]

    def _opening_notional(self, side: str, resting: list[tuple[float, float]]) -> float:
        """Notional of these resting orders of one side beyond what would merely close the position."""
        qty = sum(q for _, q in resting)
        if qty <= EPS:
            return 0.0
        opening = max(0.0, qty - self._reducible(side))
        return opening * sum(p * q for p, q in resting) / qty

    def _rests(self, order: Order, qty: float) -> None:
        """`qty` more (or less, negative) of this resting order now needs margin: the running sums follow
        (a reduceOnly order needs none: it is counted instead)."""
        if order.reduce_only:
            self._count_reduce_only()
            return
        sums = self._sums[order.side]
        sums[0] += qty
        sums[1] += qty * order.price
        self._sums_peak = max(self._sums_peak, sums[1])
        self._sums_changes += 1
        if self._sums_changes >= MARGIN_RESYNC:
            self._resum()

    def _count_reduce_only(self) -> None:
        """How many reduceOnly orders rest (most turns have none to check after a fill)."""
        self._reduce_only_resting = sum(1 for o in self.orders.values() if o.reduce_only)

    def _resum(self) -> None:
        """The running margin sums afresh from the resting orders (their float drift starts at zero)."""
        self._count_reduce_only()
        for side, sums in self._sums.items():
            resting = self._resting(side)
            sums[:] = [math.fsum(q for _, q in resting), math.fsum(p * q for p, q in resting)]
        self._sums_peak = max(s[1] for s in self._sums.values())
        self._sums_changes = 0

    def _surely_enough_margin(self, side: str, qty: float, price: float) -> bool:
        """Whether an opening order of `qty` at `price` surely has the margin, from the running sums.

        The exact check sums every resting order twice per side; it is kept for the answer near
        the line (within MARGIN_TOLERANCE of the amounts involved, far above the sums' float
        drift), so every decision, and every refusal's message, is the exact check's.
        """
        def notional(of: str, q: float, n: float) -> float:
            return max(0.0, q - self._reducible(of)) * n / q if q > EPS else 0.0

        q, n = self._sums[side]
        other = self._sums["sell" if side == "buy" else "buy"]
        without = notional(side, q, n)
        need = (notional(side, q + qty, n + qty * price) - without) / self.leverage
        position = abs(self.pos_qty) * self.entry
        equity = self.equity()
        free = equity - (position + without + notional("sell" if side == "buy" else "buy", *other)) / self.leverage
        tolerance = MARGIN_TOLERANCE * (1.0 + abs(equity) + position + self._sums_peak + qty * price)
        return need + tolerance <= free + EPS

    def _used_margin(self, buys: list[tuple[float, float]] | None = None,
                     sells: list[tuple[float, float]] | None = None) -> float:
        """Margin of the position and of the resting opening orders (`buys`/`sells`: the resting
        lists when the caller has them already: a placement reads each side once, not twice)."""
        orders = (self._opening_notional("buy", self._resting("buy") if buys is None else buys)
                  + self._opening_notional("sell", self._resting("sell") if sells is None else sells))
        return (abs(self.pos_qty) * self.entry + orders) / self.leverage

    def fetch_position(self, symbol: str) -> Position:
        return Position(symbol, self.pos_qty, self.entry, self.unrealized(), self.realized)

    def fetch_balance(self) -> Balance:
        used = self._used_margin()
        total = self.equity()
        return Balance("USDC", total, max(0.0, total - used), used)

    # ---- orders ----------------------------------------------------------------------------
    def _validate(self, req: OrderRequest) -> None:
        if req.side not in ("buy", "sell"):
            raise InvalidOrder(f"side must be buy or sell (got {req.side!r})")
        if req.qty < self.min_qty - EPS:
            raise InvalidOrder(f"quantity {req.qty} below the market minimum {self.min_qty}")
        if not is_multiple(req.qty, self.step_size):
            raise InvalidOrder(f"quantity {req.qty} is not a multiple of the step size {self.step_size}")
        if req.type == "limit":
            if req.price is None or req.price <= 0:
                raise InvalidOrder(f"limit order needs a price > 0 (got {req.price})")
            if not is_multiple(req.price, self.tick_size):
                raise InvalidOrder(f"price {req.price} is not a multiple of the tick size {self.tick_size}")
        elif req.type != "market":
            raise InvalidOrder(f"order type must be limit or market (got {req.type!r})")
        if req.client_id is not None and req.client_id in self._client_ids:
            raise InvalidOrder(f"client id {req.client_id} is already used by an open order")
        if req.reduce_only and self._reducible(req.side) <= EPS:
            raise InvalidOrder("reduceOnly order would open or grow the position")

    def place_order(self, request: OrderRequest) -> Order:
        self._validate(request)
        crosses = request.type == "market" or (
            request.price >= self.price if request.side == "buy" else request.price <= self.price)
        if crosses and request.post_only and request.type == "limit":
            raise PostOnlyRejected(f"postOnly {request.side} at {request.price} would cross the price {self.price}")
        if not request.reduce_only:
            price = request.price if request.type == "limit" and not crosses else self.price
            if not self._surely_enough_margin(request.side, request.qty, price):
                resting = {side: self._resting(side) for side in ("buy", "sell")}
                same = resting[request.side]
                need = (self._opening_notional(request.side, same + [(price, request.qty)])
                        - self._opening_notional(request.side, same)) / self.leverage
                free = self.equity() - self._used_margin(resting["buy"], resting["sell"])
                if need > free + EPS:
                    raise InsufficientMargin(f"order needs {need:.2f} margin, {max(free, 0):.2f} free")
        self.order_seq += 1
        order = Order(f"O{self.order_seq}", request.symbol, request.side, request.type,
                      float(request.price if request.type == "limit" else self.price), float(request.qty),
                      client_id=request.client_id, post_only=request.post_only,
                      reduce_only=request.reduce_only, timestamp=self.ts)
        with self._batch_writes():
            if crosses:
                qty = min(order.qty, self._reducible(order.side)) if order.reduce_only else order.qty
                order.price = self.price
                self._execute(order, qty, self.price, is_maker=False)
                if order.status == "open":       # trimmed reduceOnly remainder
                    self._finish(order, "canceled")
                self._drop_spent_reduce_only()
            else:
                self._add(order)
                self._rests(order, order.remaining)
                self._save_order(order)
            self._save_account()
        return order

    def cancel_order(self, symbol: str, order_id: str | None = None, client_id: int | None = None) -> Order:
        order = self.orders.get(order_id) if order_id else next(
            (o for o in self.orders.values() if client_id is not None and o.client_id == client_id), None)
        if order is None:
            raise OrderNotFound(f"no open order {order_id or client_id}")
        self._finish(order, "canceled")
        return copy.copy(order)         # a caller's copy (its fields are plain values)

    def cancel_all_orders(self, symbol: str) -> int:
        with self._batch_writes():
            orders = list(self.orders.values())
            for order in orders:
                self._finish(order, "canceled")
        return len(orders)

    def fetch_open_orders(self, symbol: str) -> list[Order]:
        return [copy.copy(o) for o in self.orders.values()]

    def fetch_order(self, symbol: str, order_id: str) -> Order:
        order = self.orders.get(order_id)
        if order is None and self.db is not None:
            rows = self.db.query("SELECT data FROM paper_orders WHERE id = ?", (order_id,))
            order = Order(**json.loads(rows[0]["data"])) if rows else None
        elif order is None:
            order = self._done.get(order_id)
        if order is None:
            raise OrderNotFound(f"no order {order_id}")
        return copy.copy(order)

    def fetch_order_by_client_id(self, symbol: str, client_id: int) -> Order:
        order = next((o for o in self.orders.values() if o.client_id == client_id), None)
        if order is None and self.db is not None:       # INSERT OR REPLACE: the newest row is the latest change
            rows = self.db.query("SELECT data FROM paper_orders WHERE json_extract(data, '$.client_id') = ? "
                                 "ORDER BY rowid DESC LIMIT 1", (client_id,))
            order = Order(**json.loads(rows[0]["data"])) if rows else None
        elif order is None:
            order = next((o for o in reversed(self._done.values()) if o.client_id == client_id), None)
        if order is None:
            raise OrderNotFound(f"no order with client id {client_id}")
        return copy.copy(order)

    def fetch_fills(self, symbol: str, since_ms: int) -> list[Fill]:
        if self.db is None:
            return self._fills[bisect.bisect_left(self._fill_ts, since_ms):]
        rows = self.db.query("SELECT data FROM paper_fills WHERE timestamp >= ? ORDER BY rowid", (since_ms,))
        return [Fill(**json.loads(r["data"])) for r in rows]

    def commits_with(self, store: Any) -> bool:
        return store is not None and self.db is store

    def close(self) -> None:
        closer = getattr(self.source, "close", None)
        if closer is not None:
            closer()

    # ---- backtest fast path ----------------------------------------------------------------
    def advance(self, wake_low: float, wake_high: float, max_ticks: int,
                wake_ms: int | None = None) -> "list[float] | np.ndarray | None":
        """Consume ticks up to the first one that can change anything, and step on it.

        A tick "can change anything" when it trades at or through a resting order, at or beyond
        a strategy wake price (stop levels, boundaries), or reaches a funding time or the
        strategy's wake time (`wake_ms`: a refused level's backoff ends). Ticks before it
        match nothing under the rules above, so only the price moves over them. Returns the prices
        consumed, rounded to the tick (for drawdown), or None when the source has run out.

        A grid that trades stops every few ticks, where numpy's fixed cost per call is more than
        the ticks cost: the first SCAN_TICKS of a stretch are looked at one by one in Python (and
        returned as a list), the rest in numpy windows that grow fourfold (returned as an array).
        """
        import numpy as np

        buys_below, sells_above = self.fill_bounds()
        low = max(buys_below, wake_low) + EPS
        high = min(sells_above, wake_high) - EPS
        wake_at = self.next_funding_ts if (self.funding_rate and self.funding_ms and self.next_funding_ts) else None
        if wake_ms is not None:
            wake_at = wake_ms if wake_at is None else min(wake_at, wake_ms)
        parts: list = []
        consumed = 0
        while consumed < max_ticks:
            block = self._block()
            if block is None:
                self.exhausted = True
                return np.concatenate(parts) if len(parts) > 1 else (parts[0] if parts else None)
            ts, px, rounded, ts_list, rounded_list, start = block
            end = min(px.size, start + max_ticks - consumed)
            hit = -1
            for k in range(start, min(end, start + SCAN_TICKS)):
                price = rounded_list[k]
                if price <= low or price >= high or (wake_at is not None and ts_list[k] >= wake_at):
                    hit = k
                    break
            else:
                lo, window = start + SCAN_TICKS, 256
                while lo < end:
                    hi = min(end, lo + window)
                    crossed = (rounded[lo:hi] <= low) | (rounded[lo:hi] >= high)
                    if wake_at is not None:
                        crossed |= ts[lo:hi] >= wake_at
                    idx = np.flatnonzero(crossed)
                    if idx.size:
                        hit = lo + int(idx[0])
                        break
                    lo, window = hi, window * 4
            last = hit if hit >= 0 else end - 1
            self._buf[5] = last + 1
            parts.append(rounded_list[start:last + 1] if last - start < SCAN_TICKS else rounded[start:last + 1])
            consumed += last + 1 - start
            if hit >= 0:
                self._tick(ts_list[hit], float(px[hit]))
                break
            self.ts, self.price = ts_list[last], rounded_list[last]
        if len(parts) == 1:
            return parts[0]
        return np.concatenate(parts) if parts else np.empty(0)

    def _block(self, lists: bool = True) -> "tuple | None":
        """The buffered block of the source (refilled 65,536 ticks at a time), with each price
        rounded to the tick and, for the one-by-one scan (`lists`), Python lists of both (made
        when first asked for: the backtest kernel reads the arrays only); None once the source has
        run out."""
        import numpy as np

        buf = getattr(self, "_buf", None)
        if buf is None or buf[5] >= buf[1].size:
            ts, px = self.source.batch(1 << 16, self.ts)
            if px.size == 0:
                return None
            rounded = np.round(px / self.tick_size) * self.tick_size
            buf = self._buf = [ts, px, rounded, None, None, 0]
        if lists and buf[3] is None:
            buf[3], buf[4] = buf[0].tolist(), buf[2].tolist()
        return tuple(buf)
