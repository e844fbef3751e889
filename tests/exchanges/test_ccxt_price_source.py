"""Paper trading with live public prices: the price source against the local server's ticker."""
from __future__ import annotations

import pytest

from exchanges import ccxt_price_source
from exchanges.base import ExchangeUnavailable
from tests.exchanges.backpack_server import BackpackServer

SYMBOL = "SOL_USDC_PERP"


def test_follows_the_public_ticker_without_keys_and_polls_at_most_once_per_interval():
    with BackpackServer(price=150.0) as server:
        source = ccxt_price_source.from_config({"exchange": "backpack", "symbol": SYMBOL, "base_url": server.url,
                                                "min_interval": 0})
        assert source.next()[1] == 150.0
        server.set_price(152.5)
        ts, price = source.next()
        assert price == 152.5 and ts > 0
        assert server.signed_ok == 0 and server.hits["GET /api/v1/ticker"] == 2
        source.min_interval = 3600
        server.set_price(153.0)
        assert source.next()[1] == 152.5 and server.hits["GET /api/v1/ticker"] == 2
        assert source.state() == {"kind": "live", "exchange": "backpack", "symbol": SYMBOL, "price": 152.5}
        assert server.hits["GET /api/v1/depth"] == 0             # the price alone: no book asked
        source.close()


def test_an_empty_ticker_takes_the_price_from_the_book():
    """Backpack may answer its ticker 204 without a body (openapi.yaml)."""
    with BackpackServer(price=150.0) as server:
        server.ticker_empty = True
        source = ccxt_price_source.from_config({"exchange": "backpack", "symbol": SYMBOL, "base_url": server.url,
                                                "min_interval": 0})
        assert source.next()[1] == pytest.approx(150.0) and server.hits["GET /api/v1/depth"] == 1
        source.close()


def test_survives_a_venue_outage_with_the_last_price_but_not_without_one():
    with BackpackServer(price=150.0) as server:
        source = ccxt_price_source.from_config({"exchange": "backpack", "symbol": SYMBOL, "base_url": server.url,
                                                "min_interval": 0})
        source.exchange.backoff = 0.01
        source.restore({"kind": "live", "symbol": SYMBOL, "price": 149.0})
        assert source.next()[1] == 150.0
    # server gone
    assert source.next()[1] == 150.0
    fresh = ccxt_price_source.LivePriceSource(source.exchange, SYMBOL)
    with pytest.raises(ExchangeUnavailable, match="price source backpack SOL_USDC_PERP"):
        fresh.next()


@pytest.mark.parametrize("source, message", [
    ({"exchange": "backpack"}, "price_source needs"),
    ("backpack", "price_source needs"),
    ("backpack:", "price_source needs"),
    ({"exchange": "nope", "symbol": SYMBOL}, "'nope' is not an exchange ccxt knows"),
])
def test_bad_config_names_the_field(source, message):
    with pytest.raises(ValueError, match=message):
        ccxt_price_source.from_config(source)


def test_bad_symbol_is_refused_at_once_listing_the_markets():
    with BackpackServer(price=150.0) as server:
        with pytest.raises(ValueError, match="'DOGE_USDC_PERP' is not a market on backpack.*SOL_USDC_PERP"):
            ccxt_price_source.from_config({"exchange": "backpack", "symbol": "DOGE_USDC_PERP", "base_url": server.url})


def test_paper_exchange_fills_against_the_live_price():
    """The paper exchange's seam: `price_source` in its config -> simulated fills at real prices."""
    from exchanges.base import OrderRequest
    from exchanges.paper_exchange import PaperExchange

    with BackpackServer(price=150.0) as server:
        paper = PaperExchange.from_config({"price_source": {"exchange": "backpack", "symbol": SYMBOL,
                                                            "base_url": server.url, "min_interval": 0}},
                                          instance_id="paper_live")
        assert paper.fetch_ticker(SYMBOL).last == 150.0
        paper.place_order(OrderRequest(SYMBOL, "buy", 1.0, 149.0, client_id=1))
        server.set_price(148.5)
        paper.step()
        fills = paper.fetch_fills(SYMBOL, 0)
        assert [(f.price, f.qty, f.client_id) for f in fills] == [(149.0, 1.0, 1)]
        assert paper.fetch_position(SYMBOL).qty == 1.0
        assert server.signed_ok == 0                       # public data only: no keys involved
        paper.close()


def test_string_form_exchange_colon_symbol():
    """The published schema types price_source as a string: "backpack:SOL_USDC_PERP" means the same."""
    assert ccxt_price_source.parse_source("backpack:SOL_USDC_PERP") == {"exchange": "backpack", "symbol": SYMBOL}
    assert ccxt_price_source.parse_source({"exchange": "backpack", "symbol": SYMBOL, "min_interval": 2}) == {
        "exchange": "backpack", "symbol": SYMBOL, "min_interval": 2}
    with pytest.raises(ValueError, match="'nope' is not an exchange ccxt knows"):
        ccxt_price_source.from_config(f"nope:{SYMBOL}")
