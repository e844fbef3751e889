"""Backpack's behaviour without the HTTP: accounts, the book, matching and the endpoints' answers.

`tests/exchanges/backpack_server.py` serves it over HTTP with Backpack's signing. Every behaviour
the bot's correctness depends on cites its source. SPEC = openapi.yaml of
backpack-exchange/bpx-openapi at commit 3451298 (line numbers); CCXT = ccxt 4.5.90
python/ccxt/backpack.py (lines); REC = ccxt ts/src/test/static/response/backpack.json (recorded
real answers, by method and description). Where no source settles a behaviour, the venue can do
each plausible thing (a switch in `BackpackVenue.__init__`) and the adapter is tested against each.
"""
from __future__ import annotations

import itertools
import math
import random
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

TICK = 0.01
STEP = 0.01
MIN_QTY = 0.01
MAKER_FEE = 0.0002
TAKER_FEE = 0.0005
LEVERAGE = 10.0
# Price band of the market's price filter (SPEC 8342, 8361-8368 PriceFilter.maxMultiplier/minMultiplier, "from
# last active price"): the figures are ours, the venue publishes them per market in /markets.
BAND_MAX, BAND_MIN = 1.25, 0.75
FILLS_MAX_PAGE = 1000         # SPEC 4826: "Default `100`, maximum `1000`"
BATCH_MAX = 20                # CCXT 290-292 features createOrders max 20 (the spec gives no figure)

# (method, path) -> instruction; None = public, no signature. The instruction names: SPEC line 4 (its
# list) and each operation's "**Instruction:**" (e.g. SPEC 2410 ff. orderCancel).
ROUTES: dict[tuple[str, str], str | None] = {
    ("GET", "/api/v1/assets"): None,
    ("GET", "/api/v1/markets"): None,
    ("GET", "/api/v1/securities"): None,     # not in SPEC; CCXT 189, 661 (docs.backpack.exchange get_securities)
    ("GET", "/api/v1/ticker"): None,
    ("GET", "/api/v1/depth"): None,          # SPEC 1940
    ("GET", "/api/v1/time"): None,           # SPEC 3658 (text/plain milliseconds)
    ("GET", "/api/v1/capital"): "balanceQuery",
    ("GET", "/api/v1/capital/collateral"): "collateralQuery",
    ("GET", "/api/v1/position"): "positionQuery",
    ("GET", "/api/v1/orders"): "orderQueryAll",
    ("GET", "/api/v1/order"): "orderQuery",   # SPEC 2224
    ("POST", "/api/v1/order"): "orderExecute",
    ("POST", "/api/v1/orders"): "orderExecute",
    ("DELETE", "/api/v1/order"): "orderCancel",
    ("DELETE", "/api/v1/orders"): "orderCancelAll",
    ("GET", "/wapi/v1/history/fills"): "fillHistoryQueryAll",
    ("GET", "/wapi/v1/history/orders"): "orderHistoryQueryAll",
}


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _fmt(x: float) -> str:
    return f"{x:.8f}".rstrip("0").rstrip(".") or "0"


def _on_grid(x: float, unit: float) -> bool:
    return abs(x / unit - round(x / unit)) < 1e-6


@dataclass
class Account:
    collateral: float = 10_000.0
    qty: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    entry: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    realized: dict[str, float] = field(default_factory=lambda: defaultdict(float))

    def apply_fill(self, symbol: str, side: int, qty: float, price: float, fee: float) -> None:
        q, e = self.qty[symbol], self.entry[symbol]
        if q == 0 or (q > 0) == (side > 0):
            self.entry[symbol] = (abs(q) * e + qty * price) / (abs(q) + qty)
        else:
            closed = min(qty, abs(q))
            pnl = closed * (price - e) * (1 if q > 0 else -1)
            self.realized[symbol] += pnl
            self.collateral += pnl
            if qty > abs(q):
                self.entry[symbol] = price
        self.qty[symbol] = round(q + side * qty, 8)
        if self.qty[symbol] == 0:
            self.entry[symbol] = 0.0
        self.collateral -= fee


class BackpackVenue:
    """The exchange's state and answers; `dispatch` answers one authenticated request."""

    def __init__(self, *, price: float | None = None, center: float = 150.0, amplitude: float = 2.0,
                 period: float = 20.0) -> None:
        self.center, self.amplitude, self.period = center, amplitude, period
        self.fixed_price = price
        self.t0 = time.time()
        self.lock = threading.RLock()
        self.accounts: dict[str, Account] = defaultdict(Account)
        self.orders: list[dict] = []               # every order ever accepted, in order
        self.open: dict[str, dict] = {}            # id -> order of the book
        self.fills: list[dict] = []
        self.duplicates: list[dict] = []           # an order placed at a level already resting
        self.omit_fill_client_ids = False                # fills without clientId, like most venues' trades
        # Fill history order when the client names none. REC fetchMyTrades "Fetch my trades with limit
        # 3": newest first. `fill_sort_forced` makes the server ignore the client's sortDirection too.
        self.fill_sort_default = "Desc"
        self.fill_sort_forced: str | None = None
        self.partial_fill_qty: float | None = None       # most that one price sample fills of an order
        self.market_liquidity: float | None = None       # most a market order finds before it expires
        self.market_expiry_reason = "InsufficientLiquidity"   # or "PriceImpact"
        self.post_only_expires = False                   # postOnly taker: Expired(PostOnlyTaker), not a 400
        self.position_404 = True                         # flat answers 404 "Position not found" (SPEC 2807)
        self.maintenance_until = 0.0
        self.clock_offset_ms = 0                         # the venue's clock minus ours
        self.read_only_keys: set[str] = set()            # keys without trading rights: FORBIDDEN
        self.accept_cancels_later = 0                    # next cancels answered 202, executed later
        self.pending_cancels: list[tuple[float, str, dict]] = []
        self.cancel_delay = 0.3                          # how much later an accepted cancel is done
        self.ticker_empty = False                        # ticker answers 204 without a body (SPEC 1893)
        # Fills reach the history this many seconds after they happen, stamped with the time they
        # happened (no source gives a figure; the bot must not skip a fill listed behind its cursor).
        self.fill_listing_delay = 0.0
        # And each fill up to this many seconds more, at random: a fill can then be listed after
        # fills that happened later than it (behind a client's cursor), as an indexer would.
        self.fill_listing_jitter = 0.0
        self._jitter = random.Random(9)
        self.batch_max = BATCH_MAX
        self.canned: dict[str, Any] = {}                 # "METHOD /path" -> a recorded answer to give as is
        self.errors: dict[str, int] = defaultdict(int)   # error code -> answers given (batch items included)
        self._ids = itertools.count(1_000_000)
        self._trade_ids = itertools.count(1)
        self._matched_until = time.time()

    # ---- controls for tests --------------------------------------------------------------
    def price_at(self, t: float) -> float:
        if self.fixed_price is not None:
            return self.fixed_price
        raw = self.center + self.amplitude * math.sin(2 * math.pi * (t - self.t0) / self.period)
        return round(round(raw / TICK) * TICK, 8)

    def set_price(self, price: float) -> None:
        with self.lock:
            self._match(time.time())
            self.fixed_price = price
            self._match(time.time())

    def maintenance(self, seconds: float) -> None:
        """Answer 503 MAINTENANCE to everything for `seconds` (SPEC 2477 and every order route)."""
        self.maintenance_until = time.time() + seconds

    def now_ms(self) -> int:
        """The venue's clock: ours plus `clock_offset_ms` (a skewed client is the same as a skewed venue)."""
        return int(time.time() * 1000) + self.clock_offset_ms

    def system_close(self, key: str, symbol: str, price: float, kind: str = "LiquidatePositionOnBook") -> dict:
        """The venue closes the whole position itself: a liquidation or an ADL (SPEC SystemOrderType
        9232, OrderFill.systemOrderType 8165; listed by /fills by default since 2025-04-22,
        SPEC line 4 changelog). No client id: the bot never placed this order."""
        with self.lock:
            qty = self.accounts[key].qty[symbol]
            assert qty != 0, "nothing to close"
            order = {"_key": key, "id": str(next(self._ids)), "clientId": None, "symbol": symbol,
                     "side": "Ask" if qty > 0 else "Bid", "orderType": "Market", "timeInForce": "IOC",
                     "price": _fmt(price), "quantity": _fmt(abs(qty)), "executedQuantity": "0",
                     "executedQuoteQuantity": "0", "status": "New", "postOnly": False, "reduceOnly": True,
                     "selfTradePrevention": "RejectTaker", "createdAt": int(time.time() * 1000),
                     "systemOrderType": kind}
            self.orders.append(order)
            self._fill(order, price, maker=False, ts=time.time())
            return order

    def trade_many(self, key: str, symbol: str, count: int, start: float) -> None:
        """`count` fills of small market buys, one millisecond apart from `start`: a busy window
        (more fills than one page of the history) without `count` round trips."""
        with self.lock:
            for i in range(count):
                order = {"_key": key, "id": str(next(self._ids)), "clientId": i + 1, "symbol": symbol, "side": "Bid",
                         "orderType": "Market", "timeInForce": "GTC", "price": "150", "quantity": _fmt(STEP),
                         "executedQuantity": "0", "executedQuoteQuantity": "0", "status": "New", "postOnly": False,
                         "reduceOnly": False, "selfTradePrevention": "RejectTaker",
                         "createdAt": int(start * 1000) + i, "expiryReason": None}
                self.orders.append(order)
                self._fill(order, 150.0, maker=False, ts=start + i / 1000)

    # ---- matching --------------------------------------------------------------------------
    def _match(self, now: float) -> None:
        """Trade the resting book against the price path since the last match (50 ms samples)."""
        t = self._matched_until
        while True:
            t = min(t + 0.05, now)
            price = self.price_at(t)
            for order in list(self.open.values()):
                limit = float(order["price"])
                if (order["side"] == "Bid" and price <= limit) or (order["side"] == "Ask" and price >= limit):
                    self._fill(order, limit, maker=True, ts=t, most=self.partial_fill_qty)
            if t >= now:
                break
        self._matched_until = now

    def _fill(self, order: dict, price: float, *, maker: bool, ts: float, most: float | None = None) -> None:
        """Fill the rest of `order`, or at most `most` of it: then it stays `PartiallyFilled` (SPEC
        OrderStatus 8224) on the book."""
        rest = float(order["quantity"]) - float(order["executedQuantity"])
        qty = round(min(rest, most), 8) if most is not None else rest
        if qty <= 0:
            return
        fee = qty * price * (MAKER_FEE if maker else TAKER_FEE)
        self.accounts[order["_key"]].apply_fill(order["symbol"], 1 if order["side"] == "Bid" else -1, qty, price, fee)
        order["executedQuantity"] = _fmt(float(order["executedQuantity"]) + qty)
        order["executedQuoteQuantity"] = _fmt(float(order["executedQuoteQuantity"]) + qty * price)
        if float(order["executedQuantity"]) >= float(order["quantity"]) - 1e-9:
            order["status"] = "Filled"
            self.open.pop(order["id"], None)
        else:
            order["status"] = "PartiallyFilled"
        stamp = datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
        listed = (time.time() + self._jitter.uniform(0, self.fill_listing_jitter)) * 1000
        self.fills.append({
            "_key": order["_key"], "_ms": int(ts * 1000), "_listed": listed, "tradeId": next(self._trade_ids), "orderId": order["id"],
            "clientId": order["clientId"], "symbol": order["symbol"], "side": order["side"], "price": _fmt(price),
            "quantity": _fmt(qty), "fee": _fmt(fee), "feeSymbol": "USDC", "isMaker": maker,
            "systemOrderType": order.get("systemOrderType"), "timestamp": stamp,
        })

    # ---- endpoints -------------------------------------------------------------------------
    def markets(self) -> list[dict]:
        """SPEC 1828 get_markets, Market 7525 with PriceFilter 8342 and QuantityFilter 8411."""
        def market(symbol: str, base: str, kind: str, step: float = STEP) -> dict:
            return {"symbol": symbol, "baseSymbol": base, "quoteSymbol": "USDC", "marketType": kind,
                    "orderBookState": "Open", "createdAt": "2025-01-21T06:34:54.691858",
                    "filters": {"price": {"tickSize": _fmt(TICK), "minPrice": "0.01", "maxPrice": "100000",
                                          "maxMultiplier": _fmt(BAND_MAX), "minMultiplier": _fmt(BAND_MIN)},
                                "quantity": {"stepSize": _fmt(step), "minQuantity": _fmt(MIN_QTY if step == STEP else step),
                                             "maxQuantity": None}}}
        return [market("SOL_USDC_PERP", "SOL", "PERP"), market("SOL_USDC", "SOL", "SPOT"),
                market("BTC_USDC_PERP", "BTC", "PERP"), market("ETH_USDC_PERP", "ETH", "PERP", 0.0001),
                market("ETH_USDC", "ETH", "SPOT", 0.0001)]  # ETH: the markets of ccxt's recorded answers

    def depth(self, symbol: str) -> dict:
        """A book around the price: the account's resting orders plus one tick of outside liquidity on
        each side. SPEC 6860 Depth: both sides ascending by price (its example), `timestamp` in
        microseconds, `lastUpdateId` a string."""
        price = self.price_at(time.time())
        bids: dict[str, float] = defaultdict(float, {_fmt(price - TICK): 100.0})
        asks: dict[str, float] = defaultdict(float, {_fmt(price + TICK): 100.0})
        for o in self.open.values():
            if o["symbol"] == symbol:
                side = bids if o["side"] == "Bid" else asks
                side[o["price"]] += float(o["quantity"]) - float(o["executedQuantity"])
        level = lambda book: [[p, _fmt(q)] for p, q in sorted(book.items(), key=lambda kv: float(kv[0]))]
        return {"asks": level(asks), "bids": level(bids), "lastUpdateId": str(next(self._ids)),
                "timestamp": int(time.time() * 1_000_000)}

    def ticker(self, symbol: str) -> dict:
        """SPEC 9241 Ticker; the fields of REC fetchTicker "Fetch ticker" (no bid, no ask)."""
        last = _fmt(self.price_at(time.time()))
        return {"symbol": symbol, "firstPrice": last, "lastPrice": last, "high": last, "low": last,
                "volume": "0", "quoteVolume": "0", "priceChange": "0", "priceChangePercent": "0", "trades": "0"}

    def execute(self, key: str, req: dict) -> dict:
        """SPEC 2402 execute_order: the order (REC createOrder answers) or a 400 with an ApiErrorCode
        (SPEC 5964). The texts are ours where no source quotes the venue's, except the price band's."""
        symbol = req.get("symbol")
        if symbol not in {m["symbol"] for m in self.markets()}:
            raise ApiError(400, "INVALID_MARKET", f"Invalid market symbol {symbol}")
        side, kind = req.get("side"), req.get("orderType")
        qty = float(req.get("quantity") or 0)
        if side not in ("Bid", "Ask") or kind not in ("Limit", "Market"):
            raise ApiError(400, "INVALID_CLIENT_REQUEST", "side must be Bid/Ask and orderType Limit/Market")
        if qty < MIN_QTY or not _on_grid(qty, STEP):
            raise ApiError(400, "INVALID_QUANTITY", f"Quantity {qty} is below the minimum or off the step size")
        client_id = req.get("clientId")
        if client_id is not None and not (isinstance(client_id, int) and 0 <= client_id < 2**32):
            raise ApiError(400, "INVALID_CLIENT_REQUEST", "clientId must be an unsigned 32-bit integer")
        now = time.time()
        market_price = self.price_at(now)
        price = float(req["price"]) if kind == "Limit" else market_price
        if kind == "Limit" and not _on_grid(price, TICK):
            raise ApiError(400, "INVALID_PRICE", f"Price {price} is not a multiple of the tick size")
        if kind == "Limit" and not BAND_MIN * market_price <= price <= BAND_MAX * market_price:
            # CCXT 519: {"code":"INVALID_PRICE","message":"Price is too far from the last active price"}
            raise ApiError(400, "INVALID_PRICE", "Price is too far from the last active price")
        crosses = (side == "Bid" and price >= market_price) or (side == "Ask" and price <= market_price)
        if req.get("postOnly") and crosses and not self.post_only_expires:
            raise ApiError(400, "INVALID_ORDER", "Order would immediately match and take.")
        account = self.accounts[key]
        position = account.qty[symbol]
        if req.get("reduceOnly") and (position == 0 or (position > 0) == (side == "Bid") or qty > abs(position) + 1e-9):
            raise ApiError(400, "INVALID_ORDER", "Reduce only order not reduced.")   # SPEC 8156 ReduceOnlyNotReduced
        resting = sum(float(o["quantity"]) * float(o["price"]) for o in self.open.values() if o["_key"] == key)
        if not req.get("reduceOnly") and (resting + qty * price + abs(position) * market_price) / LEVERAGE > account.collateral:
            raise ApiError(400, "INSUFFICIENT_MARGIN", "Insufficient margin")
        order = {
            "_key": key, "id": str(next(self._ids)), "clientId": client_id, "symbol": symbol, "side": side,
            "orderType": kind, "timeInForce": "GTC", "price": _fmt(price), "quantity": _fmt(qty),
            "executedQuantity": "0", "executedQuoteQuantity": "0", "status": "New",
            "postOnly": bool(req.get("postOnly")), "reduceOnly": bool(req.get("reduceOnly")),
            "selfTradePrevention": "RejectTaker", "createdAt": int(now * 1000), "expiryReason": None,
        }
        if any(o["_key"] == key and o["symbol"] == symbol and o["side"] == side and o["price"] == order["price"]
               for o in self.open.values()):
            self.duplicates.append(order)
        self.orders.append(order)
        if crosses and req.get("postOnly"):
            # The other plausible answer (no source settles which): accepted, then Expired with
            # SPEC 8138 OrderExpiryReason `PostOnlyTaker`.
            order.update(status="Expired", expiryReason="PostOnlyTaker")
        elif crosses and self._own_resting_order_in_the_way(key, symbol, side, price):
            # selfTradePrevention defaults to RejectTaker (SPEC 7352): the taker expires unfilled with
            # SPEC 8138 `SelfTradePrevention`, the account's resting order stays.
            order.update(status="Expired", expiryReason="SelfTradePrevention")
        elif crosses:
            self._fill(order, market_price, maker=False, ts=now, most=self.market_liquidity)
            if order["status"] != "Filled":
                # What the book could not give expires (SPEC 8138 `InsufficientLiquidity`, or
                # `PriceImpact` past the PriceFilter's impact multipliers, SPEC 8369: which one the
                # venue names is not settled, `market_expiry_reason` picks), filled part kept: REC
                # createOrder shows a market order answering with its executedQuantity.
                order.update(status="Expired", expiryReason=self.market_expiry_reason)
        else:
            self.open[order["id"]] = order
        return order

    def _own_resting_order_in_the_way(self, key: str, symbol: str, side: str, price: float) -> bool:
        """Whether a taker at `price` would first meet a resting order of the same account."""
        return any(o["_key"] == key and o["symbol"] == symbol and o["side"] != side
                   and (float(o["price"]) <= price if side == "Bid" else float(o["price"]) >= price)
                   for o in self.open.values())

    def cancel(self, key: str, req: dict) -> dict:
        """SPEC 2482 cancel_order: the cancelled order (REC cancelOrder), or 404 RESOURCE_NOT_FOUND."""
        if req.get("orderId") is not None and req.get("clientId") is not None:
            raise ApiError(400, "INVALID_CLIENT_REQUEST", "Specify one of orderId or clientId")   # SPEC 2409-2410
        for order in list(self.open.values()):
            if order["_key"] == key and order["symbol"] == req.get("symbol") and (
                    order["id"] == str(req.get("orderId")) or
                    (req.get("clientId") is not None and order["clientId"] == req.get("clientId"))):
                order["status"] = "Cancelled"
                return self.open.pop(order["id"])
        raise ApiError(404, "RESOURCE_NOT_FOUND", "Order not found")

    def open_order(self, key: str, query: dict) -> dict:
        """SPEC 2211-2310 get_order: the order only while it rests on the book; one of orderId or
        clientId (both: 400), else 404 "Order not found" (ccxt's fetch_order asks here when the
        order history has no such order: CCXT fetch_order, its open-order fallback)."""
        if query.get("orderId") is not None and query.get("clientId") is not None:
            raise ApiError(400, "INVALID_CLIENT_REQUEST", "Specify one of orderId or clientId")
        for order in self.open.values():
            if order["_key"] == key and order["symbol"] == query.get("symbol") and (
                    order["id"] == str(query.get("orderId")) or
                    (query.get("clientId") is not None and str(order["clientId"]) == str(query.get("clientId")))):
                return order
        raise ApiError(404, "RESOURCE_NOT_FOUND", "Order not found")

    def cancel_all(self, key: str, req: dict) -> list[dict]:
        """SPEC 2732 cancel_open_orders: the cancelled orders, [] when none (REC cancelAllOrders)."""
        gone = [o for o in self.open.values() if o["_key"] == key and o["symbol"] == req.get("symbol")]
        for order in gone:
            order["status"] = "Cancelled"
            self.open.pop(order["id"])
        return gone

    def positions(self, key: str, query: dict) -> list[dict]:
        """Open positions, or one with `symbol` (SPEC 2781). Nothing open answers 404 "Position
        not found" (SPEC 2807); `position_404 = False` answers [] instead (the other plausible way)."""
        account, mark = self.accounts[key], self.price_at(time.time())
        out = []
        for symbol, qty in account.qty.items():
            if qty == 0 or ("symbol" in query and symbol != query["symbol"]):
                continue
            entry = account.entry[symbol]
            out.append({"symbol": symbol, "positionId": symbol, "netQuantity": _fmt(qty),
                        "netExposureQuantity": _fmt(abs(qty)), "netCost": _fmt(qty * entry),
                        "entryPrice": _fmt(entry), "markPrice": _fmt(mark), "pnlRealized": _fmt(account.realized[symbol]),
                        "pnlUnrealized": _fmt(qty * (mark - entry)), "estLiquidationPrice": "0",
                        "imf": "0.02", "mmf": "0.0125"})
        if not out and self.position_404:
            raise ApiError(404, "RESOURCE_NOT_FOUND", "Position not found")
        return out

    def capital(self, key: str) -> dict:
        """SPEC 1541 get_balances: per asset available/locked/staked (REC fetchBalance)."""
        account = self.accounts[key]
        locked = sum(float(o["quantity"]) * float(o["price"]) / LEVERAGE for o in self.open.values() if o["_key"] == key)
        return {"USDC": {"available": _fmt(account.collateral - locked), "locked": _fmt(locked), "staked": "0"}}

    def fill_history(self, key: str, query: dict) -> list[dict]:
        """SPEC 4734-4860: `from`/`to` in ms, `limit` (default 100, maximum 1000), `offset`,
        `fillType` (no filter = every fill, liquidations and ADL included, since 2025-04-22: SPEC line 4
        changelog; `User` = the client's own orders only), `sortDirection` Asc|Desc."""
        since, until = int(query.get("from", 0)), int(query.get("to", 2**62))
        limit = int(query.get("limit", 100))
        if limit > FILLS_MAX_PAGE:
            raise ApiError(400, "INVALID_CLIENT_REQUEST", f"limit must be at most {FILLS_MAX_PAGE}")
        offset = int(query.get("offset", 0))
        kind = query.get("fillType")
        listed_until = (time.time() - self.fill_listing_delay) * 1000
        mine = [f for f in self.fills if f["_key"] == key and since <= f["_ms"] <= until and f["_listed"] <= listed_until
                and ("symbol" not in query or f["symbol"] == query["symbol"])
                and (kind is None or (kind == "User") == (f["systemOrderType"] is None))]
        order = self.fill_sort_forced or query.get("sortDirection") or self.fill_sort_default
        mine.sort(key=lambda f: (f["_ms"], f["tradeId"]), reverse=order == "Desc")
        page = mine[offset:offset + limit]
        if self.omit_fill_client_ids:
            return [{k: v for k, v in f.items() if k != "clientId"} for f in page]
        return page

    def order_history(self, key: str, query: dict) -> list[dict]:
        """SPEC 5232 get_order_history with its `orderId` filter: every order ever accepted. Newest
        first is ours (REC fetchOrders has one order); ccxt's fetch_order filters by id, so the
        order does not matter to the adapter."""
        mine = [o for o in reversed(self.orders) if o["_key"] == key
                and ("symbol" not in query or o["symbol"] == query["symbol"])
                and ("orderId" not in query or o["id"] == query["orderId"])]
        return mine[:int(query.get("limit", 100))]

    def _later(self, key: str, method: str, params: dict) -> None:
        """A cancel answered 202 "accepted but not yet executed" (SPEC 2463, 2713): done a little later."""
        self.pending_cancels.append((time.time() + self.cancel_delay, method, {"_key": key, **params}))

    def _run_pending(self) -> None:
        due = [p for p in self.pending_cancels if p[0] <= time.time()]
        self.pending_cancels = [p for p in self.pending_cancels if p[0] > time.time()]
        for _, method, params in due:
            key = params.pop("_key")
            try:
                self.cancel(key, params) if method == "orderCancel" else self.cancel_all(key, params)
            except ApiError:
                pass                                  # filled meanwhile

    def batch(self, key: str, params: Any) -> list[dict]:
        """SPEC 6174-6190 BatchCommandOrderResult: one item per order, `{"operation": "Ok", ...order}`
        or `{"operation": "Err", "code", "message"}`. A payload that does not parse (not a list, too
        long, an unknown market, side or type) fails as a whole with 400 (SPEC 2552; the text is
        the one CCXT 542 quotes)."""
        if not isinstance(params, list) or not 0 < len(params) <= self.batch_max:
            raise ApiError(400, "INVALID_CLIENT_REQUEST", f"a batch holds 1 to {self.batch_max} orders")
        symbols = {m["symbol"] for m in self.markets()}
        for req in params:
            if req.get("symbol") not in symbols or req.get("side") not in ("Bid", "Ask") \
                    or req.get("orderType") not in ("Limit", "Market"):
                raise ApiError(400, "INVALID_CLIENT_REQUEST", 'parse request payload error: failed to parse '
                               '"MarketSymbol": Invalid market symbol (occurred while parsing "OrderExecutePayload")')
        results = []
        for req in params:
            try:
                results.append({"operation": "Ok", **self.execute(key, req)})
            except ApiError as exc:
                self.errors[exc.code] += 1
                results.append({"operation": "Err", "code": exc.code, "message": exc.message})
        return results

    def dispatch(self, method: str, path: str, key: str | None, query: dict, body: Any) -> Any:
        self._match(time.time())
        self._run_pending()
        if f"{method} {path}" in self.canned:
            return self.canned[f"{method} {path}"]
        if path == "/api/v1/assets":
            return [{"symbol": s, "displayName": s, "coingeckoId": None, "tokens": []} for s in ("SOL", "BTC", "USDC")]
        if path == "/api/v1/markets":
            return self.markets()
        if path == "/api/v1/securities":
            return []
        if path == "/api/v1/ticker":
            return None if self.ticker_empty else self.ticker(query.get("symbol", ""))
        if path == "/api/v1/depth":
            return self.depth(query.get("symbol", ""))
        if path == "/api/v1/time":
            return self.now_ms()
        assert key is not None
        params = body if body is not None else query
        if key in self.read_only_keys and ROUTES[(method, path)] in ("orderExecute", "orderCancel", "orderCancelAll"):
            # SPEC 5964 ApiErrorCode FORBIDDEN; 403 as SPEC 3976 answers it.
            raise ApiError(403, "FORBIDDEN", "API key does not have the required permissions")
        if path == "/api/v1/capital":
            return self.capital(key)
        if path == "/api/v1/capital/collateral":              # SPEC 1613 get_collateral
            account, mark = self.accounts[key], self.price_at(time.time())
            equity = account.collateral + sum(q * (mark - account.entry[s]) for s, q in account.qty.items())
            locked = float(self.capital(key)["USDC"]["locked"])
            return {"netEquity": _fmt(equity), "netEquityAvailable": _fmt(equity - locked),
                    "netEquityLocked": _fmt(locked)}
        if path == "/api/v1/position":
            return self.positions(key, query)
        if path == "/api/v1/orders" and method == "GET":
            return [o for o in self.open.values() if o["_key"] == key
                    and ("symbol" not in query or o["symbol"] == query["symbol"])]
        if path == "/api/v1/order" and method == "GET":
            return self.open_order(key, query)
        if path == "/api/v1/order" and method == "POST":
            return self.execute(key, params)
        if path == "/api/v1/orders" and method == "POST":
            return self.batch(key, params)
        if method == "DELETE" and self.accept_cancels_later > 0:
            self.accept_cancels_later -= 1
            self._later(key, ROUTES[(method, path)] or "", params)
            return None
        if path == "/api/v1/order" and method == "DELETE":
            return self.cancel(key, params)
        if path == "/api/v1/orders" and method == "DELETE":
            return self.cancel_all(key, params)
        if path == "/wapi/v1/history/orders":
            return self.order_history(key, query)
        return self.fill_history(key, query)
