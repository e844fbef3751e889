"""Real exchanges through ccxt: any ccxt exchange id, Backpack first.

This is the only module that imports ccxt, and `exchanges.create_exchange` imports it only for a
config that names a real exchange, so paper bots and the CLI never pay ccxt's import time.
The adapter maps the user's symbols (SOL_USDC_PERP) to ccxt's (SOL/USDC:USDC), ccxt's errors to
the interface's (each has a defined reaction in the bot), retries idempotent reads itself, and
takes every request from the account's budget shared by all bots on this machine.
Fills carry their order's client id on every venue (ccxt's unified trade has none): the adapter
keeps the client id of each order it sees in the instance database and asks the venue for an
unknown order once.
"""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterable, Sequence

import ccxt

from core.masking import Masker
from core.paths import project_home
from exchanges import api_keys, base
from exchanges.base import (Balance, Exchange, ExchangeError, Fill, Market, Order, OrderRequest, Position,
                            Ticker)
from exchanges.rate_limit import Budget, SharedRateLimiter
from exchanges.ticks import floor_to, round_to

# Documented per-account budgets; other exchanges fall back to ccxt's own pacing (`rateLimit` ms).
ACCOUNT_BUDGETS: dict[str, tuple[float, float]] = {"backpack": (2000, 60)}
POST_ONLY_HINTS = ("post only", "post-only", "postonly", "immediately match", "would take")
NOT_FOUND_HINTS = ("resource_not_found", "not found")
CANCEL_WORKERS = 8              # cancels in flight at once when a stop clears the book
FIRST_LATENCY_S = 0.5           # assumed per request until one was timed
LATENCY_WEIGHT = 0.2            # of the newest request in the moving average
MAX_LISTED = 60                 # symbols named when the config's symbol is not listed
ORDER_STATUS = {"open": "open", "closed": "filled", "canceled": "canceled", "cancelled": "canceled",
                "expired": "canceled", "rejected": "rejected"}


CLIENT_IDS_SCHEMA = """
CREATE TABLE IF NOT EXISTS ccxt_client_ids (
    exchange TEXT, order_id TEXT, client_id INTEGER, recorded_ms INTEGER, PRIMARY KEY (exchange, order_id));
"""
CLIENT_IDS_KEEP_MS = 30 * 86_400_000     # older rows go at start; a fill of such an order asks fetch_order
CLIENT_IDS_IN_MEMORY = 20_000            # the rest is read back from the database when a fill needs it


class OrderClientIds:
    """Order id -> client id of every order the adapter has seen, kept in the instance database.

    ccxt's unified trade has no client id, so a fill is matched to its order's client id here.
    `None` is an answer too (an order without one of our ids: manual, or never ours), so nothing
    is asked of the venue twice. Without a database the map lives as long as the object.
    """

    def __init__(self, exchange: str, db: Any = None) -> None:
        self.exchange = exchange
        self.db = db
        self._memory: dict[str, int | None] = {}
        if db is not None:
            db.ensure_schema(CLIENT_IDS_SCHEMA)
            with db.transaction() as conn:
                conn.execute("DELETE FROM ccxt_client_ids WHERE exchange=? AND recorded_ms<?",
                             (exchange, int(time.time() * 1000) - CLIENT_IDS_KEEP_MS))

    def lookup(self, order_id: str) -> tuple[bool, int | None]:
        """(known, client id) of an order id."""
        if order_id in self._memory:
            return True, self._memory[order_id]
        if self.db is None:
            return False, None
        rows = self.db.query("SELECT client_id FROM ccxt_client_ids WHERE exchange=? AND order_id=?",
                             (self.exchange, order_id))
        if not rows:
            return False, None
        self._keep(order_id, rows[0]["client_id"])
        return True, rows[0]["client_id"]

    def remember(self, pairs: Iterable[tuple[str, int | None]]) -> None:
        """Record (order id, client id) pairs; a known client id is never replaced by None."""
        new = {}
        for order_id, client_id in pairs:
            if not order_id or order_id == "None":
                continue
            known, old = self.lookup(order_id)
            if not known or (old is None and client_id is not None):
                new[order_id] = client_id
        if not new:
            return
        for order_id, client_id in new.items():
            self._keep(order_id, client_id)
        if self.db is not None:
            now = int(time.time() * 1000)
            with self.db.transaction() as conn:
                conn.executemany("INSERT INTO ccxt_client_ids VALUES (?,?,?,?) ON CONFLICT(exchange, order_id) "
                                 "DO UPDATE SET client_id=excluded.client_id, recorded_ms=excluded.recorded_ms",
                                 [(self.exchange, oid, cid, now) for oid, cid in new.items()])

    def _keep(self, order_id: str, client_id: int | None) -> None:
        self._memory.pop(order_id, None)
        self._memory[order_id] = client_id
        if len(self._memory) > CLIENT_IDS_IN_MEMORY:
            del self._memory[next(iter(self._memory))]


def build_client(exchange_id: str, config: dict[str, Any], *, api_key: str = "", secret: str = "") -> ccxt.Exchange:
    """A ccxt client for `exchange_id`, pointed at `urls`/`base_url` when the config gives them."""
    if exchange_id not in ccxt.exchanges:
        raise ValueError(f"metadata.exchange: '{exchange_id}' is not an exchange ccxt knows "
                         f"(use 'paper' or a ccxt id such as 'backpack')")
    options: dict[str, Any] = {"timeout": int(config.get("timeout_ms", 10_000)), "enableRateLimit": True}
    if api_key:
        options.update(apiKey=api_key, secret=secret)
    client = getattr(ccxt, exchange_id)(options)
    api_urls = client.urls.get("api")
    if config.get("base_url"):
        url = str(config["base_url"]).rstrip("/")
        client.urls["api"] = {k: url for k in api_urls} if isinstance(api_urls, dict) else url
    if config.get("urls"):
        client.urls["api"] = {**(client.urls["api"] if isinstance(client.urls["api"], dict) else {}),
                              **config["urls"]}
    return client


def resolve_market(client: ccxt.Exchange, symbol: str) -> dict[str, Any]:
    """The ccxt market for a symbol as the user writes it: exchange id, unified, or BASE_QUOTE[_PERP]."""
    client.load_markets()
    by_id = client.markets_by_id.get(symbol) or []
    if by_id:
        return next((m for m in by_id if m.get("swap")), by_id[0])
    if symbol in client.markets:
        return client.markets[symbol]
    parts = symbol.replace("-", "_").upper().split("_")
    if len(parts) == 3 and parts[2] in ("PERP", "SWAP") and f"{parts[0]}/{parts[1]}:{parts[1]}" in client.markets:
        return client.markets[f"{parts[0]}/{parts[1]}:{parts[1]}"]
    if len(parts) == 2 and f"{parts[0]}/{parts[1]}" in client.markets:
        return client.markets[f"{parts[0]}/{parts[1]}"]
    perps = sorted(m["id"] for m in client.markets.values() if m.get("swap"))
    listed = ", ".join(perps[:MAX_LISTED]) + (f" and {len(perps) - MAX_LISTED} more" if len(perps) > MAX_LISTED else "")
    raise ValueError(f"metadata.symbol: '{symbol}' is not a market on {client.id}; its perpetuals: {listed or 'none'}")


def _unit(client: ccxt.Exchange, precision: Any) -> float:
    """ccxt gives precision as a tick (TICK_SIZE mode) or as a number of digits: make it a tick."""
    if precision is None:
        return 0.0
    if client.precisionMode == ccxt.TICK_SIZE:
        return float(precision)
    return 10.0 ** -int(precision)


class CcxtExchange(Exchange):
    """One account on one ccxt exchange."""

    def __init__(self, client: ccxt.Exchange, *, instance_id: str, limiter: SharedRateLimiter | None = None,
                 read_attempts: int = 3, backoff: float = 0.25, masker: Masker | None = None,
                 db: Any = None) -> None:
        self.client = client
        self.name = client.id
        self.instance_id = instance_id
        self.limiter = limiter
        self.read_attempts = read_attempts
        self.backoff = backoff
        self.masker = masker or Masker()
        self._markets: dict[str, dict[str, Any]] = {}
        self.client_ids = OrderClientIds(client.id, db)
        self.latency = FIRST_LATENCY_S      # seconds per request, a moving average of what we saw
        if limiter is not None:
            client.throttle = limiter.acquire   # every request, public or private, takes a shared token

    @classmethod
    def from_config(cls, name: str, config: dict[str, Any], *, instance_id: str, db: Any = None) -> "CcxtExchange":
        """Build from the instance's expanded exchange_config; keys may also come from the env.

        Refuses to build without keys (AuthenticationError naming what is missing): a real exchange
        cannot trade anonymously, and retrying cannot make a key appear.
        """
        api_key, secret = api_keys(name, config)
        client = build_client(name, config, api_key=api_key, secret=secret)
        limits = config.get("rate_limit") or {}
        requests, per_seconds = ACCOUNT_BUDGETS.get(name, (1000.0 / client.rateLimit, 1.0))
        budget = Budget(requests=float(limits.get("requests", requests)),
                        per_seconds=float(limits.get("per_seconds", per_seconds)),
                        max_wait=float(limits.get("max_wait", 5.0)))
        limiter = SharedRateLimiter.for_account(project_home(), name, api_key, budget)
        return cls(client, instance_id=instance_id, limiter=limiter, masker=Masker([api_key, secret]), db=db)

    # ---- plumbing ------------------------------------------------------------------------
    def _retry_after(self) -> float:
        headers = self.client.last_response_headers or {}
        try:
            return max(0.1, float(headers.get("Retry-After") or 1.0))
        except (TypeError, ValueError):
            return 1.0

    def translate(self, exc: ccxt.BaseError) -> ExchangeError:
        """ccxt's exception -> the interface's, whose class decides the bot's reaction."""
        text = self.masker(str(exc))
        low = text.lower()
        if isinstance(exc, (ccxt.DDoSProtection, ccxt.RateLimitExceeded)):
            retry_after = self._retry_after()
            if self.limiter is not None:
                self.limiter.penalize(retry_after)
            return base.RateLimited(text, retry_after=retry_after)
        if isinstance(exc, ccxt.AuthenticationError):
            return base.AuthenticationError(text)
        if isinstance(exc, ccxt.InsufficientFunds):
            return base.InsufficientMargin(text)
        if isinstance(exc, ccxt.OrderNotFound) or (
                isinstance(exc, ccxt.ExchangeNotAvailable) and any(h in low for h in NOT_FOUND_HINTS)):
            return base.OrderNotFound(text)
        if isinstance(exc, ccxt.OrderImmediatelyFillable) or (
                isinstance(exc, (ccxt.InvalidOrder, ccxt.BadRequest)) and any(h in low for h in POST_ONLY_HINTS)):
            return base.PostOnlyRejected(text)
        if isinstance(exc, (ccxt.InvalidOrder, ccxt.BadRequest, ccxt.OperationRejected)):
            return base.InvalidOrder(text)
        if isinstance(exc, ccxt.OperationFailed):   # NetworkError, RequestTimeout, ExchangeNotAvailable, BadResponse
            return base.ExchangeUnavailable(text)
        return ExchangeError(text)

    def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """A request that changes state: exactly one attempt, errors translated (its time kept
        in `latency`, for `cancel_seconds`)."""
        started = time.monotonic()
        try:
            return fn(*args)
        except ccxt.BaseError as exc:
            raise self.translate(exc) from exc
        finally:
            self.latency += LATENCY_WEIGHT * (time.monotonic() - started - self.latency)

    def _read(self, fn: Callable[..., Any], *args: Any) -> Any:
        """An idempotent read: short backoff retries on transient errors before giving up."""
        for attempt in range(self.read_attempts):
            try:
                return self._call(fn, *args)
            except (base.ExchangeUnavailable, base.RateLimited) as err:
                pause = err.retry_after if isinstance(err, base.RateLimited) else self.backoff * 2 ** attempt
                if attempt == self.read_attempts - 1 or pause > 2.0:
                    raise
                time.sleep(pause)
        raise AssertionError("unreachable")

    def _market(self, symbol: str) -> dict[str, Any]:
        if symbol not in self._markets:
            self._markets[symbol] = self._read(resolve_market, self.client, symbol)
        return self._markets[symbol]

    # ---- conversions -----------------------------------------------------------------------
    @staticmethod
    def _client_id(raw: Any) -> int | None:
        try:
            return int(raw) if raw is not None and str(raw) != "" else None
        except (TypeError, ValueError):
            return None                          # not one of ours (some venues use strings)

    def _order(self, o: dict[str, Any], symbol: str, request: OrderRequest | None = None) -> Order:
        price = o.get("price") or o.get("average") or (request.price if request else None) or 0.0
        client_id = self._client_id(o.get("clientOrderId"))
        return Order(
            id=str(o["id"]), symbol=symbol, side=o.get("side") or (request.side if request else ""),
            type=o.get("type") or (request.type if request else "limit"), price=float(price),
            qty=float(o.get("amount") or (request.qty if request else 0.0)), filled_qty=float(o.get("filled") or 0.0),
            status=ORDER_STATUS.get(str(o.get("status")), "open"),
            client_id=client_id if client_id is not None else (request.client_id if request else None),
            post_only=bool(o.get("postOnly") if o.get("postOnly") is not None else (request and request.post_only)),
            reduce_only=bool(o.get("reduceOnly") if o.get("reduceOnly") is not None else (request and request.reduce_only)),
            timestamp=int(o.get("timestamp") or 0),
        )

    def _remember(self, orders: Sequence[Order | ExchangeError]) -> None:
        """Feed the order id -> client id map with every order the venue told us about."""
        self.client_ids.remember((o.id, o.client_id) for o in orders if isinstance(o, Order))

    def _fill_client_id(self, trade: dict[str, Any], unified: str) -> int | None:
        """A fill's client id: Backpack's raw field, else its order's, asking the venue once per order."""
        raw = self._client_id((trade.get("info") or {}).get("clientId"))
        if raw is not None or trade.get("order") is None:
            return raw
        order_id = str(trade["order"])
        known, client_id = self.client_ids.lookup(order_id)
        if known or not self.client.has.get("fetchOrder"):
            return client_id
        try:
            order = self._read(self.client.fetch_order, order_id, unified)
        except (base.ExchangeUnavailable, base.RateLimited, base.AuthenticationError):
            raise                                # may pass: the fill is read again next turn
        except ExchangeError:
            order = {}                           # forgotten, or not to be looked up: asking again won't help
        client_id = self._client_id(order.get("clientOrderId"))
        self.client_ids.remember([(order_id, client_id)])
        return client_id

    def _order_args(self, req: OrderRequest) -> tuple[str, str, str, float, float | None, dict[str, Any]]:
        params: dict[str, Any] = {}
        if req.post_only and req.type == "limit":
            params["postOnly"] = True
        if req.reduce_only:
            params["reduceOnly"] = True
        if req.client_id is not None:
            params["clientOrderId"] = req.client_id
        params.update(req.extra)
        # ccxt formats from the float's repr and truncates amounts to the step: float noise
        # (0.7 - 0.4 = 0.29999999999999993) went out one step short. The nearest float to the
        # exact multiple prints as that decimal (exchanges/ticks.py).
        m = self._market(req.symbol)
        qty = floor_to(req.qty, _unit(self.client, m["precision"].get("amount")))
        price = req.price if req.type == "limit" else None
        if price is not None:
            price = round_to(price, _unit(self.client, m["precision"].get("price")))
        return m["symbol"], req.type, req.side, qty, price, params

    # ---- the interface ---------------------------------------------------------------------
    def market(self, symbol: str) -> Market:
        m = self._market(symbol)
        step = _unit(self.client, m["precision"].get("amount"))
        return Market(
            symbol=symbol, base=m["base"], quote=m.get("settle") or m["quote"],
            tick_size=_unit(self.client, m["precision"].get("price")), step_size=step,
            min_qty=float(m["limits"]["amount"].get("min") or step),
            maker_fee=float(m["maker"]) if m.get("maker") is not None else Market.maker_fee,
            taker_fee=float(m["taker"]) if m.get("taker") is not None else Market.taker_fee,
        )

    def fetch_ticker(self, symbol: str) -> Ticker:
        t = self._read(self.client.fetch_ticker, self._market(symbol)["symbol"])
        last = float(t.get("last") or t.get("close"))
        return Ticker(symbol=symbol, last=last, bid=float(t.get("bid") or last), ask=float(t.get("ask") or last),
                      timestamp=int(t.get("timestamp") or time.time() * 1000))

    def place_order(self, request: OrderRequest) -> Order:
        o = self._call(self.client.create_order, *self._order_args(request))
        order = self._order(o, request.symbol, request)
        self._remember([order])
        return order

    def place_orders(self, requests: Sequence[OrderRequest]) -> list[Order | ExchangeError]:
        """One `createOrders` call per chunk where ccxt has it; results in the order of `requests`."""
        if len(requests) < 2 or not self.client.has.get("createOrders"):
            return super().place_orders(requests)
        chunk = int(((self.client.features or {}).get("default", {}).get("createOrders") or {}).get("max") or 20)
        results: list[Order | ExchangeError] = []
        for start in range(0, len(requests), chunk):
            batch = list(requests[start:start + chunk])
            calls = []
            for req in batch:
                sym, kind, side, qty, price, params = self._order_args(req)
                calls.append({"symbol": sym, "type": kind, "side": side, "amount": qty, "price": price, "params": params})
            self.client.enableLastJsonResponse = True
            try:
                self._call(self.client.create_orders, calls)
            except (base.InvalidOrder, base.InsufficientMargin) as exc:
                results.extend(exc for _ in batch)
                continue
            raw = self.client.last_json_response
            answers = [self._batch_item(req, item) for req, item in zip(batch, raw if isinstance(raw, list) else [])]
            self._remember(answers)
            results.extend(answers)
        return results

    def _batch_item(self, request: OrderRequest, item: dict[str, Any]) -> Order | ExchangeError:
        """One element of a batch answer: an order, or an error object the venue put in its place."""
        if isinstance(item, dict) and item.get("code") and not item.get("id"):
            error_class = self.client.exceptions.get("exact", {}).get(item["code"], ccxt.ExchangeError)
            return self.translate(error_class(f"{self.client.id} {item.get('code')}: {item.get('message')}"))
        return self._order(self.client.parse_order(item, self._market(request.symbol)), request.symbol, request)

    def cancel_order(self, symbol: str, order_id: str | None = None, client_id: int | None = None) -> None:
        if order_id is None and client_id is None:
            raise ValueError("cancel_order needs an order_id or a client_id")
        m = self._market(symbol)
        if order_id is None and self.client.id == "backpack":
            # ccxt's cancelOrder always sends an orderId; Backpack cancels by clientId on its own.
            self._call(self.client.privateDeleteApiV1Order, {"symbol": m["id"], "clientId": client_id})
        else:
            params = {} if order_id is not None else {"clientOrderId": client_id}
            self._call(self.client.cancel_order, order_id, m["symbol"], params)

    def cancel_orders(self, symbol: str, order_ids: Sequence[str]) -> list[ExchangeError | None]:
        """Cancel by id, CANCEL_WORKERS requests at a time (each still takes its token from the
        shared budget): 119 orders at 120 ms took 14 s one by one, longer than a stop may take.
        Venues without a cancel-by-ids batch (Backpack) leave concurrency as the only way that
        never touches the trader's manual orders."""
        if len(order_ids) < 2:
            return super().cancel_orders(symbol, order_ids)
        self._market(symbol)                # loaded once, before the threads share the cache

        def cancel(order_id: str) -> ExchangeError | None:
            try:
                self.cancel_order(symbol, order_id=order_id)
                return None
            except ExchangeError as exc:
                return exc

        with ThreadPoolExecutor(max_workers=min(CANCEL_WORKERS, len(order_ids))) as pool:
            return list(pool.map(cancel, order_ids))

    def cancel_seconds(self, count: int) -> float:
        """Rounds of CANCEL_WORKERS requests at the latency seen so far, plus the wait for tokens
        beyond the budget's burst."""
        rounds = -(-count // CANCEL_WORKERS)
        wait = 0.0
        if self.limiter is not None:
            budget = self.limiter.budget
            wait = max(0.0, count - budget.capacity) / budget.rate
        return rounds * self.latency + wait

    def cancel_all_orders(self, symbol: str) -> int:
        return len(self._call(self.client.cancel_all_orders, self._market(symbol)["symbol"]) or [])

    def fetch_open_orders(self, symbol: str) -> list[Order]:
        orders = [self._order(o, symbol) for o in self._read(self.client.fetch_open_orders, self._market(symbol)["symbol"])]
        self._remember(orders)
        return orders

    def fetch_position(self, symbol: str) -> Position:
        unified = self._market(symbol)["symbol"]
        for p in self._read(self.client.fetch_positions, [unified]):
            if p.get("symbol") != unified:
                continue
            info = p.get("info") or {}
            if info.get("netQuantity") is not None:
                qty = float(info["netQuantity"])
            else:
                qty = float(p.get("contracts") or 0.0) * (-1.0 if p.get("side") == "short" else 1.0)
            return Position(symbol=symbol, qty=qty, entry_price=float(p.get("entryPrice") or 0.0),
                            unrealized_pnl=float(p.get("unrealizedPnl") or 0.0),
                            realized_pnl=float(p.get("realizedPnl") or 0.0))
        return Position(symbol=symbol)

    def fetch_balance(self) -> Balance:
        if self.client.id == "backpack":
            # Perpetual margin on Backpack is the whole account's net equity (unrealized PnL
            # included), which the collateral endpoint reports; /capital lists spot holdings only.
            c = self._read(self.client.privateGetApiV1CapitalCollateral)
            if c.get("netEquity") is not None:
                total, free = float(c["netEquity"]), float(c.get("netEquityAvailable") or c["netEquity"])
                return Balance(asset="USDC", total=total, free=free, used=float(c.get("netEquityLocked") or total - free))
        balances = self._read(self.client.fetch_balance)
        markets = list(self._markets.values())
        asset = (markets[0].get("settle") or markets[0]["quote"]) if markets else "USDC"
        entry = balances.get(asset) or {}
        free, used = float(entry.get("free") or 0.0), float(entry.get("used") or 0.0)
        return Balance(asset=asset, total=float(entry.get("total") or free + used), free=free, used=used)

    def fetch_fills(self, symbol: str, since_ms: int) -> list[Fill]:
        """Every fill at or after `since_ms`, paging on by time until a short page.

        Each fill carries its order's client id (see `_fill_client_id`): the strategy books fills
        by client id and would drop one without it.
        """
        m = self._market(symbol)
        limit = 1000
        seen: dict[str, Fill] = {}
        since = since_ms
        while True:
            trades = self._read(self.client.fetch_my_trades, m["symbol"], since, limit)
            for t in trades:
                fee = (t.get("fee") or {}).get("cost")
                seen[str(t["id"])] = Fill(
                    trade_id=str(t["id"]), order_id=str(t.get("order")), symbol=symbol, side=t["side"],
                    price=float(t["price"]), qty=float(t["amount"]), fee=float(fee or 0.0),
                    is_maker=t.get("takerOrMaker") == "maker", timestamp=int(t["timestamp"]),
                    client_id=self._fill_client_id(t, m["symbol"]))
            if len(trades) < limit:
                break
            newest = max(int(t["timestamp"]) for t in trades)
            if newest <= since:
                break
            since = newest
        return sorted((f for f in seen.values() if f.timestamp >= since_ms), key=lambda f: (f.timestamp, f.trade_id))

    def close(self) -> None:
        session = getattr(self.client, "session", None)
        if session is not None:
            session.close()
