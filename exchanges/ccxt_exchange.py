"""Real exchanges through ccxt: any ccxt exchange id, Backpack first.

This is the only module that imports ccxt, and `exchanges.create_exchange` imports it only for a
config that names a real exchange, so paper bots and the CLI never pay ccxt's import time.
The adapter maps the user's symbols (SOL_USDC_PERP) to ccxt's (SOL/USDC:USDC), ccxt's errors to
the interface's (each has a defined reaction in the bot), retries idempotent reads itself, and
takes every request from the account's budget shared by all bots on this machine.
Fills carry their order's client id on every venue (ccxt's unified trade has none): the adapter
keeps the client id of each order it sees in the instance database (exchanges/order_client_ids.py)
and asks the venue for an unknown order once.
"""
from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Sequence

from exchanges.ccxt_loader import exchange_class, package

package()   # `ccxt` without its hundred exchanges, before the imports below (exchanges/ccxt_loader.py)
from ccxt.base import errors  # noqa: E402
from ccxt.base.decimal_to_precision import TICK_SIZE  # noqa: E402
from ccxt.base.exchange import Exchange as CcxtClient  # noqa: E402

from core.masking import Masker
from exchanges import api_keys, base
from exchanges.base import (Balance, Exchange, ExchangeError, Fill, Market, Order, OrderRequest, Position,
                            Ticker)
from exchanges.order_client_ids import OrderClientIds
from exchanges.rate_limit import Budget, SharedRateLimiter
from exchanges.ticks import floor_to, round_to

# Per-account budgets. Backpack publishes no figure (its openapi.yaml has none): 1,200 a minute is
# the pace ccxt keeps for it (python/ccxt/backpack.py `'rateLimit': 50`, 20 a second), which is
# conservative for a key shared by several bots; `exchange_config.rate_limit` overrides it. Other
# exchanges fall back to ccxt's own pacing (`rateLimit` ms).
ACCOUNT_BUDGETS: dict[str, tuple[float, float]] = {"backpack": (1200, 60)}
POST_ONLY_HINTS = ("post only", "post-only", "postonly", "immediately match", "would take")
PRICE_BAND_HINTS = ("too far from the last active price",)
CLOCK_HINTS = ("request has expired",)            # Backpack's 401 for a timestamp outside the window
UNAVAILABLE_CODES = ("MAINTENANCE", "TRADING_PAUSED", "SERVER_ERROR", "TIMEOUT")
FILLS_PAGE = 1000                                 # Backpack's maximum page of fill history
DEFAULT_BATCH = 20
CANCEL_LOOKS = 4                                  # looks at the book after a cancel answered 202
CANCEL_WORKERS = 8              # cancels in flight at once when a stop clears the book
FIRST_LATENCY_S = 0.5           # assumed per request until one was timed
LATENCY_WEIGHT = 0.2            # of the newest request in the moving average
MAX_LISTED = 60                 # symbols named when the config's symbol is not listed
RECENT_ORDERS = 1000    # orders of the history read to find a client id (Backpack's page maximum, SPEC 5144)
ORDER_STATUS = {"open": "open", "closed": "filled", "canceled": "canceled", "cancelled": "canceled",
                "expired": "canceled", "rejected": "rejected"}


def venue_error(text: str) -> tuple[str, str]:
    """(code, message) of a venue's JSON error that ccxt put after the exchange id, else ('', '')."""
    start = text.find("{")
    try:
        body = json.loads(text[start:]) if start >= 0 else {}
    except ValueError:
        return "", ""
    return (str(body.get("code") or ""), str(body.get("message") or "")) if isinstance(body, dict) else ("", "")


def batch_limit(client: CcxtClient, market: dict[str, Any]) -> int:
    """The most orders one `createOrders` call takes, from ccxt's `features`.

    ccxt's features are per market type, then per settlement for derivatives
    (`features["swap"]["linear"]`), and None where the venue states nothing for that kind; then the
    figure of any kind the venue states (the batch endpoint is one for all), else DEFAULT_BATCH.
    """
    features = client.features or {}
    kind = features.get(market.get("type") or "spot") or {}
    if isinstance(kind, dict) and ("linear" in kind or "inverse" in kind):
        kind = kind.get("inverse" if market.get("inverse") else "linear") or {}
    candidates = [kind] + [v for v in features.values() if isinstance(v, dict)]
    candidates += [s for v in features.values() if isinstance(v, dict) for s in v.values() if isinstance(s, dict)]
    for entry in candidates:
        most = ((entry or {}).get("createOrders") or {}).get("max")
        if most:
            return int(most)
    return DEFAULT_BATCH


def build_client(exchange_id: str, config: dict[str, Any], *, api_key: str = "", secret: str = "") -> CcxtClient:
    """A ccxt client for `exchange_id`, pointed at `urls`/`base_url` when the config gives them."""
    try:
        cls = exchange_class(exchange_id)
    except ValueError:
        raise ValueError(f"metadata.exchange: '{exchange_id}' is not an exchange ccxt knows "
                         f"(use 'paper' or a ccxt id such as 'backpack')") from None
    options: dict[str, Any] = {"timeout": int(config.get("timeout_ms", 10_000)), "enableRateLimit": True}
    if api_key:
        options.update(apiKey=api_key, secret=secret)
    client = cls(options)
    api_urls = client.urls.get("api")
    if config.get("base_url"):
        url = str(config["base_url"]).rstrip("/")
        client.urls["api"] = {k: url for k in api_urls} if isinstance(api_urls, dict) else url
    if config.get("urls"):
        client.urls["api"] = {**(client.urls["api"] if isinstance(client.urls["api"], dict) else {}),
                              **config["urls"]}
    return client


def resolve_market(client: CcxtClient, symbol: str) -> dict[str, Any]:
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


def _unit(client: CcxtClient, precision: Any) -> float:
    """ccxt gives precision as a tick (TICK_SIZE mode) or as a number of digits: make it a tick."""
    if precision is None:
        return 0.0
    if client.precisionMode == TICK_SIZE:
        return float(precision)
    return 10.0 ** -int(precision)


class CcxtExchange(Exchange):
    """One account on one ccxt exchange."""

    def __init__(self, client: CcxtClient, *, instance_id: str, limiter: SharedRateLimiter | None = None,
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
        limiter = SharedRateLimiter.for_account(name, api_key, budget)
        return cls(client, instance_id=instance_id, limiter=limiter, masker=Masker([api_key, secret]), db=db)

    # ---- plumbing ------------------------------------------------------------------------
    def _retry_after(self) -> float:
        headers = self.client.last_response_headers or {}
        try:
            return max(0.1, float(headers.get("Retry-After") or 1.0))
        except (TypeError, ValueError):
            return 1.0

    def translate(self, exc: errors.BaseError, *, order_call: bool = False) -> ExchangeError:
        """ccxt's exception -> the interface's, whose class decides the bot's reaction.

        The venue's own error code goes first where ccxt's class would mislead: Backpack's
        MAINTENANCE is a plain ExchangeError in ccxt (wait and retry, not stop), FORBIDDEN (a key
        without trading rights) an OperationRejected (fatal, not a level to skip) and
        RESOURCE_NOT_FOUND an ExchangeNotAvailable, which means "no such order" only on an order
        call (`order_call`): elsewhere (a flat position, an unknown route) it is no order's business.
        """
        text = self.masker(str(exc))
        low = text.lower()
        code, _ = venue_error(text)
        if code in UNAVAILABLE_CODES:
            return base.ExchangeUnavailable(text)
        if code == "FORBIDDEN":
            return base.AuthenticationError(text)
        if code == "RESOURCE_NOT_FOUND" or (isinstance(exc, errors.ExchangeNotAvailable) and "not found" in low):
            return base.OrderNotFound(text) if order_call else ExchangeError(text)
        if any(h in low for h in PRICE_BAND_HINTS):
            return base.PriceOutOfBand(text)
        if isinstance(exc, (errors.DDoSProtection, errors.RateLimitExceeded)):
            retry_after = self._retry_after()
            if self.limiter is not None:
                self.limiter.penalize(retry_after)
            return base.RateLimited(text, retry_after=retry_after)
        if isinstance(exc, errors.AuthenticationError):
            return base.AuthenticationError(text)
        if isinstance(exc, errors.InsufficientFunds):
            return base.InsufficientMargin(text)
        if isinstance(exc, errors.OrderNotFound):
            return base.OrderNotFound(text)
        if isinstance(exc, errors.OrderImmediatelyFillable) or (
                isinstance(exc, (errors.InvalidOrder, errors.BadRequest)) and any(h in low for h in POST_ONLY_HINTS)):
            return base.PostOnlyRejected(text)
        if isinstance(exc, (errors.InvalidOrder, errors.BadRequest, errors.OperationRejected)):
            return base.InvalidOrder(text)
        if isinstance(exc, errors.OperationFailed):   # NetworkError, RequestTimeout, ExchangeNotAvailable, BadResponse
            return base.ExchangeUnavailable(text)
        return ExchangeError(text)

    def _call(self, fn: Callable[..., Any], *args: Any, order_call: bool = False) -> Any:
        """A request that changes state: one attempt, errors translated (its time kept in
        `latency`, for `cancel_seconds`).

        A request refused for its timestamp ("Request has expired": our clock is off by more than
        the window) never reached the book, so the adapter resynchronises with the venue's clock and
        sends it once more; a key error stays fatal.
        """
        for attempt in (0, 1):
            started = time.monotonic()
            try:
                return fn(*args)
            except errors.AuthenticationError as exc:
                if attempt == 0 and any(h in str(exc).lower() for h in CLOCK_HINTS) and self._resync_clock():
                    continue
                raise self.translate(exc, order_call=order_call) from exc
            except errors.BaseError as exc:
                raise self.translate(exc, order_call=order_call) from exc
            finally:
                self.latency += LATENCY_WEIGHT * (time.monotonic() - started - self.latency)
        raise AssertionError("unreachable")

    def _resync_clock(self) -> bool:
        """Set ccxt's `timeDifference` from Backpack's clock (whose "Request has expired" CLOCK_HINTS
        match); False elsewhere or when the clock cannot be read.

        Not ccxt's `load_time_difference`: Backpack's /api/v1/time answers a bare number, which
        ccxt 4.5's `fetch_time` cannot read and replaces by the local clock (a difference of 0).
        """
        if self.client.id != "backpack":
            return False
        try:
            before = self.client.milliseconds()
            server = int(self.client.publicGetApiV1Time())
        except (errors.BaseError, TypeError, ValueError):
            return False
        self.client.options["timeDifference"] = (before + self.client.milliseconds()) // 2 - server
        return True

    def _read(self, fn: Callable[..., Any], *args: Any, order_call: bool = False) -> Any:
        """An idempotent read: short backoff retries on transient errors before giving up."""
        for attempt in range(self.read_attempts):
            try:
                return self._call(fn, *args, order_call=order_call)
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
        """Last price and the touch. Backpack's ticker has no bid or ask (ccxt's recorded answers):
        the touch comes from the order book (the depth endpoint); see `fetch_last` for the price."""
        unified = self._market(symbol)["symbol"]
        t = self._read(self.client.fetch_ticker, unified)
        bid, ask = t.get("bid"), t.get("ask")
        if (bid is None or ask is None) and self.client.has.get("fetchOrderBook"):
            book_bid, book_ask = self._touch(unified)
            bid, ask = bid or book_bid, ask or book_ask
        last = self._last(t, symbol, bid, ask)
        return Ticker(symbol=symbol, last=last, bid=float(bid or last), ask=float(ask or last),
                      timestamp=int(t.get("timestamp") or time.time() * 1000))

    def fetch_last(self, symbol: str) -> float:
        """The last price alone (one request where the ticker has one): for price sources."""
        unified = self._market(symbol)["symbol"]
        return self._last(self._read(self.client.fetch_ticker, unified), symbol, None, None)

    def _touch(self, unified: str) -> tuple[float | None, float | None]:
        book = self._read(self.client.fetch_order_book, unified, 5)
        return (book["bids"][0][0] if book.get("bids") else None, book["asks"][0][0] if book.get("asks") else None)

    def _last(self, t: dict[str, Any], symbol: str, bid: float | None, ask: float | None) -> float:
        """The ticker's last price; Backpack may answer the ticker 204 without a body (openapi.yaml):
        then the mid of the book."""
        last = t.get("last") or t.get("close")
        if last is None and (bid is None or ask is None) and self.client.has.get("fetchOrderBook"):
            bid, ask = self._touch(self._market(symbol)["symbol"])
        if last is None and bid is not None and ask is not None:
            last = (float(bid) + float(ask)) / 2
        if last is None:
            raise base.ExchangeUnavailable(f"{self.name} has no price for {symbol} now (empty ticker and book)")
        return float(last)

    def place_order(self, request: OrderRequest) -> Order:
        o = self._call(self.client.create_order, *self._order_args(request))
        order = self._order(o, request.symbol, request)
        self._remember([order])
        refusal = self._expired_post_only(o, order)
        if refusal is not None:
            raise refusal
        return order

    @staticmethod
    def _expired_post_only(raw: dict[str, Any], order: Order) -> ExchangeError | None:
        """A postOnly order the venue accepted and expired at once because it would have taken
        (Backpack's expiryReason PostOnlyTaker) is the same refusal as a 400: retry next loop."""
        reason = str((raw.get("info") or {}).get("expiryReason") or "")
        if order.status == "canceled" and order.filled_qty == 0 and reason == "PostOnlyTaker":
            return base.PostOnlyRejected(f"postOnly order {order.id} expired: it would have taken ({reason})")
        return None

    def place_orders(self, requests: Sequence[OrderRequest]) -> list[Order | ExchangeError]:
        """One `createOrders` call per chunk where ccxt has it; results in the order of `requests`."""
        if len(requests) < 2 or not self.client.has.get("createOrders"):
            return super().place_orders(requests)
        chunk = batch_limit(self.client, self._market(requests[0].symbol))
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
        """One element of a batch answer: an order, or an error object the venue put in its place
        (Backpack: `{"operation": "Err", "code", "message"}`, else `{"operation": "Ok", ...order}`)."""
        if isinstance(item, dict) and (item.get("operation") == "Err" or (item.get("code") and not item.get("id"))):
            code = str(item.get("code") or "")
            error_class = self.client.exceptions.get("exact", {}).get(code, errors.ExchangeError)
            body = json.dumps({"code": code, "message": item.get("message")})
            return self.translate(error_class(f"{self.client.id} {body}"))
        raw = self.client.parse_order(item, self._market(request.symbol))
        order = self._order(raw, request.symbol, request)
        return self._expired_post_only(raw, order) or order

    def cancel_order(self, symbol: str, order_id: str | None = None, client_id: int | None = None) -> Order | None:
        if order_id is None and client_id is None:
            raise ValueError("cancel_order needs an order_id or a client_id")
        m = self._market(symbol)
        if self.client.id == "backpack":
            # The raw call: ccxt's cancelOrder always sends an orderId (Backpack cancels by clientId
            # on its own) and turns a 202 without a body into an empty order.
            request = {"symbol": m["id"], **({"orderId": order_id} if order_id is not None else {"clientId": client_id})}
            answer = self._call(self.client.privateDeleteApiV1Order, request, order_call=True)
            if isinstance(answer, dict) and answer:
                answer = self.client.parse_order(answer, m)
        else:
            params = {} if order_id is not None else {"clientOrderId": client_id}
            answer = self._call(self.client.cancel_order, order_id, m["symbol"], params, order_call=True)
        if not answer:
            self._confirm_gone(symbol, order_id, client_id)
            return None
        # the strategy sizes a replacement from the filled quantity: only an answer that states it counts
        stated = isinstance(answer, dict) and answer.get("id") is not None and answer.get("filled") is not None
        return self._order(answer, symbol) if stated else None

    def _confirm_gone(self, symbol: str, order_id: str | None, client_id: int | None) -> int:
        """After "202 accepted but not yet executed" (Backpack's openapi.yaml): wait until the
        order(s) left the book, a few short looks; still there means not done (ExchangeUnavailable:
        the bot cancels again next loop). Returns how many were still open at the first look."""
        first = None
        for attempt in range(CANCEL_LOOKS):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            left = [o for o in self.fetch_open_orders(symbol)
                    if (order_id is None and client_id is None) or o.id == order_id
                    or (client_id is not None and o.client_id == client_id)]
            first = len(left) if first is None else first
            if not left:
                return first
        raise base.ExchangeUnavailable(f"{self.name} accepted the cancel of {symbol} orders but has not done it yet")

    def cancel_orders(self, symbol: str, order_ids: Sequence[str]) -> list[Order | ExchangeError | None]:
        """Cancel by id, CANCEL_WORKERS requests at a time (each still takes its token from the
        shared budget): 119 orders at 120 ms took 14 s one by one, longer than a stop may take.
        Venues without a cancel-by-ids batch (Backpack) leave concurrency as the only way that
        never touches the trader's manual orders."""
        if len(order_ids) < 2:
            return super().cancel_orders(symbol, order_ids)
        self._market(symbol)                # loaded once, before the threads share the cache
        with ThreadPoolExecutor(max_workers=min(CANCEL_WORKERS, len(order_ids))) as pool:
            return list(pool.map(lambda order_id: self._cancel_one(symbol, order_id), order_ids))

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
        m = self._market(symbol)
        if self.client.id != "backpack":
            return len(self._call(self.client.cancel_all_orders, m["symbol"]) or [])
        # The raw call: a 202 has no body, which ccxt's cancelAllOrders cannot parse.
        answer = self._call(self.client.privateDeleteApiV1Orders, {"symbol": m["id"]})
        if isinstance(answer, list):
            return len(answer)
        return self._confirm_gone(symbol, None, None)

    def fetch_open_orders(self, symbol: str) -> list[Order]:
        orders = [self._order(o, symbol) for o in self._read(self.client.fetch_open_orders, self._market(symbol)["symbol"])]
        self._remember(orders)
        return orders

    def fetch_order(self, symbol: str, order_id: str) -> Order:
        """Backpack: ccxt reads the order history (GET /wapi/v1/history/orders, its orderId filter),
        which keeps orders that are done with their status and executedQuantity."""
        if not self.client.has.get("fetchOrder"):
            raise base.OrderNotFound(f"{self.client.id} cannot look up one order")
        unified = self._market(symbol)["symbol"]
        order = self._order(self._read(self.client.fetch_order, order_id, unified, order_call=True), symbol)
        self._remember([order])
        return order

    def fetch_order_by_client_id(self, symbol: str, client_id: int) -> Order:
        """The open orders first, then the venue's recent order history (Backpack:
        /wapi/v1/history/orders has no clientId filter, SPEC 5068-5232; its newest RECENT_ORDERS
        orders of the symbol are read and the latest under the id is taken)."""
        mine = [o for o in self.fetch_open_orders(symbol) if o.client_id == client_id]
        if not mine and self.client.has.get("fetchOrders"):
            unified = self._market(symbol)["symbol"]
            recent = [self._order(o, symbol) for o in self._read(self.client.fetch_orders, unified, None, RECENT_ORDERS)]
            mine = [o for o in recent if o.client_id == client_id]
        if not mine:
            raise base.OrderNotFound(f"no recent order with client id {client_id}")
        order = max(mine, key=lambda o: o.timestamp)
        self._remember([order])
        return order

    def fetch_position(self, symbol: str) -> Position:
        """The venue's position, the truth. Backpack answers a flat one with 404 "Position not found"
        (openapi.yaml, /api/v1/position): that is a flat position, not an error."""
        m = self._market(symbol)
        unified = m["symbol"]
        params = {"symbol": m["id"]} if self.client.id == "backpack" else {}
        try:
            positions = self._read(self.client.fetch_positions, [unified], params)
        except ExchangeError as exc:
            if venue_error(str(exc))[0] == "RESOURCE_NOT_FOUND" and "position" in str(exc).lower():
                return Position(symbol=symbol)
            raise
        for p in positions:
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
        """Every fill at or after `since_ms`, of every kind, oldest first.

        Each fill carries its order's client id (see `_fill_client_id`): the strategy books fills
        by client id and would drop one without it. A fill of an order the venue placed itself (a
        liquidation, an ADL) carries `system_order` and no client id.
        """
        m = self._market(symbol)
        trades = self._backpack_trades(m, since_ms) if self.client.id == "backpack" else self._paged_trades(m, since_ms)
        seen = {str(t["id"]): self._fill(t, symbol, m["symbol"]) for t in trades}
        return sorted((f for f in seen.values() if f.timestamp >= since_ms), key=lambda f: (f.timestamp, f.trade_id))

    def _backpack_trades(self, m: dict[str, Any], since_ms: int) -> list[dict[str, Any]]:
        """Backpack's fill history, page by page by offset (1,000 at most a page).

        Not ccxt's fetchMyTrades: it asks `fillType=User`, which hides liquidation and ADL fills
        (listed by default since 2025-04-22, openapi.yaml changelog). The adapter asks oldest first
        (`sortDirection=Asc`) but does not rely on it: the venue answered newest first when no
        direction was named (ccxt's recorded answers), and offsets over one window cover it in
        either order; a fill arriving while paging can only repeat one, kept once by its id.
        """
        trades: list[dict[str, Any]] = []
        offset = 0
        while True:
            request = {"symbol": m["id"], "from": since_ms, "limit": FILLS_PAGE, "offset": offset, "sortDirection": "Asc"}
            page = self._read(self.client.privateGetWapiV1HistoryFills, request)
            page = page if isinstance(page, list) else []
            trades.extend(self.client.parse_trades(page, m))
            if len(page) < FILLS_PAGE:
                return trades
            offset += len(page)

    def _paged_trades(self, m: dict[str, Any], since_ms: int) -> list[dict[str, Any]]:
        """Other venues: ccxt's fetchMyTrades, paging on by time until a short page."""
        trades: list[dict[str, Any]] = []
        since = since_ms
        while True:
            page = self._read(self.client.fetch_my_trades, m["symbol"], since, FILLS_PAGE)
            trades.extend(page)
            if len(page) < FILLS_PAGE:
                return trades
            newest = max(int(t["timestamp"]) for t in page)
            if newest <= since:
                return trades
            since = newest

    def _fill(self, t: dict[str, Any], symbol: str, unified: str) -> Fill:
        """ccxt's unified trade -> the interface's Fill."""
        fee = (t.get("fee") or {}).get("cost")
        system = (t.get("info") or {}).get("systemOrderType")
        return Fill(trade_id=str(t["id"]), order_id=str(t.get("order")), symbol=symbol, side=t["side"],
                    price=float(t["price"]), qty=float(t["amount"]), fee=float(fee or 0.0),
                    is_maker=t.get("takerOrMaker") == "maker", timestamp=int(t["timestamp"]),
                    client_id=None if system else self._fill_client_id(t, unified),
                    system_order=str(system) if system else None)

    def close(self) -> None:
        session = getattr(self.client, "session", None)
        if session is not None:
            session.close()
