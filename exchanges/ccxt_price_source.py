"""Live public prices for the paper exchange: simulated fills against the real market, no keys.

`exchange_config.price_source: {"exchange": "backpack", "symbol": "SOL_USDC_PERP"}` (optional
`base_url`/`urls`, `timeout_ms`, `min_interval` seconds), or the short form
`"price_source": "backpack:SOL_USDC_PERP"`, makes the paper exchange take its price
from that venue's public ticker instead of its random walk. `exchanges.paper_prices` imports this
module only when such a source is configured, so ccxt is loaded only then. The source follows the
paper exchange's `PriceSource` protocol: `next()`, `state()`, `restore()`.
"""
from __future__ import annotations

import time
from typing import Any

from exchanges.base import ExchangeError, ExchangeUnavailable
from exchanges.ccxt_exchange import CcxtExchange, build_client


class LivePriceSource:
    """Polls a venue's public ticker, at most once per `min_interval` seconds.

    While the venue is briefly unreachable it repeats the last known price (a paper bot should
    not die on a network blip); with no price at all yet it raises ExchangeUnavailable.
    """

    def __init__(self, exchange: CcxtExchange, symbol: str, *, min_interval: float = 1.0) -> None:
        self.exchange = exchange          # built without keys: public endpoints only
        self.symbol = symbol
        self.min_interval = min_interval
        self.price: float | None = None
        self._fetched_at = float("-inf")

    def next(self) -> tuple[int, float]:
        now = time.monotonic()
        if self.price is None or now - self._fetched_at >= self.min_interval:
            try:
                self.price = self.exchange.fetch_last(self.symbol)
                self._fetched_at = now
            except ExchangeError as exc:
                if self.price is None:
                    raise ExchangeUnavailable(f"price source {self.exchange.name} {self.symbol}: {exc}") from exc
        return int(time.time() * 1000), self.price

    def state(self) -> dict:
        return {"kind": "live", "exchange": self.exchange.name, "symbol": self.symbol, "price": self.price}

    def restore(self, state: dict) -> None:
        """Keep the last price as a fallback until the venue answers again."""
        if state.get("price") is not None and state.get("symbol") == self.symbol:
            self.price = float(state["price"])

    def close(self) -> None:
        self.exchange.close()


def parse_source(source: Any) -> dict[str, Any]:
    """`{"exchange": .., "symbol": ..}` or the short string form `"exchange:symbol"`."""
    if isinstance(source, str) and ":" in source:
        exchange, _, symbol = source.partition(":")
        source = {"exchange": exchange.strip(), "symbol": symbol.strip()}
    if not isinstance(source, dict) or not source.get("exchange") or not source.get("symbol"):
        raise ValueError("exchange_config.price_source needs {\"exchange\": <ccxt id>, \"symbol\": <market>} "
                         f"or \"<ccxt id>:<market>\", got {source!r}")
    return source


def from_config(source: dict[str, Any] | str) -> LivePriceSource:
    """Build from `exchange_config.price_source`; ValueError names the bad field or value."""
    spec = parse_source(source)
    exchange = CcxtExchange(build_client(str(spec["exchange"]), spec), instance_id="price_source")
    exchange.market(str(spec["symbol"]))      # a bad symbol fails now, listing the venue's markets
    return LivePriceSource(exchange, str(spec["symbol"]), min_interval=float(spec.get("min_interval", 1.0)))
