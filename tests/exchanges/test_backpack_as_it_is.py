"""The ccxt adapter against Backpack as its own spec and ccxt's recorded answers describe it (issue 9).

Each test names the venue behaviour it stands on; the server cites the source of each (see
tests/exchanges/backpack_server.py). Real HTTP on 127.0.0.1, real ED25519 signatures.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import ccxt
import pytest

from exchanges import base, create_exchange
from exchanges.base import OrderRequest
from exchanges.ccxt_exchange import batch_limit
from tests.exchanges.backpack_server import TEST_PUBLIC_B64, TEST_SEED_B64
from tests.exchanges.test_ccxt_exchange import SYMBOL, buy, exchange, server  # noqa: F401  (fixtures)

RECORDED = json.loads((Path(__file__).parent / "backpack_recorded.json").read_text())


# ---- 1. fill history: newest first, 1,000 a page ------------------------------------------------
@pytest.mark.parametrize("forced", [None, "Desc", "Asc"])
def test_every_fill_of_a_busy_window_is_read_whatever_the_order_of_the_pages(exchange, server, forced):
    """2,500 fills in one window: all booked once, oldest first, whether the venue honours the
    asked direction (None), or answers newest first or oldest first regardless."""
    server.fill_sort_forced = forced
    start = time.time() - 10
    server.trade_many(TEST_PUBLIC_B64, SYMBOL, 2500, start)
    fills = exchange.fetch_fills(SYMBOL, int(start * 1000))
    assert len(fills) == 2500 and len({f.trade_id for f in fills}) == 2500
    assert [f.client_id for f in fills] == list(range(1, 2501))
    assert sum(f.qty for f in fills) == pytest.approx(exchange.fetch_position(SYMBOL).qty)


# ---- 2. every fill type -------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["LiquidatePositionOnBook", "LiquidatePositionOnAdl"])
def test_liquidation_and_adl_fills_are_seen_and_marked(exchange, server, kind):
    exchange.place_order(OrderRequest(SYMBOL, "buy", 2.0, type="market", post_only=False, client_id=7))
    server.system_close(TEST_PUBLIC_B64, SYMBOL, 140.0, kind)
    fills = exchange.fetch_fills(SYMBOL, 0)
    assert [(f.side, f.qty, f.client_id, f.system_order) for f in fills] == [("buy", 2.0, 7, None),
                                                                             ("sell", 2.0, None, kind)]
    assert exchange.fetch_position(SYMBOL).qty == 0.0


# ---- 5. a flat position -------------------------------------------------------------------------
@pytest.mark.parametrize("answers_404", [True, False])
def test_a_flat_position_is_flat_whether_the_venue_answers_404_or_nothing(exchange, server, answers_404):
    server.position_404 = answers_404
    assert exchange.fetch_position(SYMBOL).qty == 0.0
    exchange.place_order(OrderRequest(SYMBOL, "sell", 1.0, type="market", post_only=False))
    assert exchange.fetch_position(SYMBOL).qty == -1.0
    assert exchange.fetch_position("BTC_USDC_PERP").qty == 0.0     # flat there, open elsewhere


# ---- 6. errors mapped to the right reaction ------------------------------------------------------
def test_maintenance_is_an_outage_reads_wait_it_out_and_orders_are_not_refused_levels(exchange, server):
    exchange.market(SYMBOL)
    server.maintenance(60)
    with pytest.raises(base.ExchangeUnavailable):
        exchange.place_order(buy(149.0))
    server.maintenance(0.3)                                          # ends while the read backs off
    assert exchange.fetch_open_orders(SYMBOL) == []
    assert server.orders == [] and server.errors["MAINTENANCE"] >= 1


def test_a_key_without_trading_rights_is_an_authentication_failure(exchange, server):
    exchange.market(SYMBOL)
    server.read_only_keys.add(TEST_PUBLIC_B64)
    with pytest.raises(base.AuthenticationError, match="FORBIDDEN"):
        exchange.place_order(buy(149.0))
    assert server.orders == []


def test_a_key_without_trading_rights_fails_a_batch_whole(exchange, server):
    exchange.market(SYMBOL)
    server.read_only_keys.add(TEST_PUBLIC_B64)
    with pytest.raises(base.AuthenticationError):
        exchange.place_orders([buy(149.0), buy(148.0)])
    assert server.orders == []


@pytest.mark.parametrize("skew_ms", [20_000, -20_000])
def test_a_clock_off_by_more_than_the_window_resyncs_and_places_once(exchange, server, skew_ms):
    exchange.market(SYMBOL)
    server.clock_offset_ms = skew_ms
    order = exchange.place_order(buy(149.0, client_id=5))
    assert order.client_id == 5 and len(server.orders) == 1
    assert exchange.fetch_open_orders(SYMBOL)[0].id == order.id
    assert server.rejected_auth == 1                                 # one refusal, then in step


# ---- 7. answers without a body -------------------------------------------------------------------
def test_an_empty_ticker_gives_the_price_from_the_book(exchange, server):
    server.ticker_empty = True
    t = exchange.fetch_ticker(SYMBOL)
    assert (t.bid, t.ask, t.last) == (149.99, 150.01, pytest.approx(150.0))


def test_a_cancel_accepted_for_later_returns_once_the_order_is_gone(exchange, server):
    order = exchange.place_order(buy(149.0, client_id=3))
    server.accept_cancels_later = 1
    exchange.cancel_order(SYMBOL, order_id=order.id)
    assert exchange.fetch_open_orders(SYMBOL) == [] and server.hits["DELETE /api/v1/order"] == 1


def test_a_cancel_all_accepted_for_later_counts_and_waits(exchange, server):
    for i in range(3):
        exchange.place_order(buy(149.0 - i, client_id=i + 1))
    server.accept_cancels_later = 1
    assert exchange.cancel_all_orders(SYMBOL) == 3
    assert exchange.fetch_open_orders(SYMBOL) == []


def test_a_cancel_the_venue_never_carries_out_is_not_reported_done(exchange, server):
    order = exchange.place_order(buy(149.0))
    server.accept_cancels_later = 1
    server.cancel_delay = 60.0
    with pytest.raises(base.ExchangeUnavailable, match="not done it yet"):
        exchange.cancel_order(SYMBOL, order_id=order.id)
    assert list(server.open) == [order.id]


# ---- 8. batches as the spec writes them -----------------------------------------------------------
def test_batch_items_ok_and_err_each_get_their_answer(exchange, server):
    results = exchange.place_orders([buy(149.0, client_id=1), buy(100.0, client_id=2), buy(150.5, client_id=3)])
    assert isinstance(results[0], base.Order) and results[0].client_id == 1
    assert type(results[1]) is base.PriceOutOfBand and type(results[2]) is base.PostOnlyRejected
    assert server.hits["POST /api/v1/orders"] == 1


def test_a_batch_refused_whole_refuses_each_order_and_places_none(exchange, server):
    server.batch_max = 2
    results = exchange.place_orders([buy(149.0 - i * 0.1, qty=0.01) for i in range(3)])
    assert all(type(r) is base.InvalidOrder for r in results) and server.orders == []


def test_batch_size_comes_from_ccxts_real_features_structure(exchange, server):
    assert batch_limit(ccxt.backpack(), {"type": "swap", "linear": True}) == 20
    shaped = ccxt.backpack()
    shaped.features = {"spot": {"createOrders": {"max": 20}}, "swap": {"linear": {"createOrders": {"max": 5}}, "inverse": None}}
    assert batch_limit(shaped, {"type": "swap", "linear": True}) == 5
    assert batch_limit(shaped, {"type": "spot"}) == 20
    exchange.client.features["spot"]["createOrders"]["max"] = 4      # as a ccxt stating 4 would
    results = exchange.place_orders([buy(140.0 - i * 0.1, qty=0.01, client_id=i) for i in range(10)])
    assert server.hits["POST /api/v1/orders"] == 3 and [r.client_id for r in results] == list(range(10))


# ---- 3. partial fills and expiries ---------------------------------------------------------------
def test_partial_fills_are_reported_on_the_order_and_as_fills(exchange, server):
    server.partial_fill_qty = 0.001                                  # 50 s of price samples to fill it all
    order = exchange.place_order(buy(149.0, qty=1.0, client_id=9))
    server.set_price(148.0)
    seen = exchange.fetch_open_orders(SYMBOL)[0]
    assert seen.id == order.id and 0 < seen.filled_qty < 1.0
    assert server.open[order.id]["status"] == "PartiallyFilled"
    server.partial_fill_qty = None
    server.set_price(147.0)
    fills = exchange.fetch_fills(SYMBOL, 0)
    assert len(fills) >= 2 and sum(f.qty for f in fills) == pytest.approx(1.0)
    assert {f.client_id for f in fills} == {9} and exchange.fetch_open_orders(SYMBOL) == []


@pytest.mark.parametrize("reason", ["InsufficientLiquidity", "PriceImpact"])
def test_a_market_order_may_expire_partly_filled(exchange, server, reason):
    server.market_liquidity, server.market_expiry_reason = 2.0, reason
    order = exchange.place_order(OrderRequest(SYMBOL, "buy", 5.0, type="market", post_only=False, client_id=4))
    assert (order.status, order.filled_qty) == ("canceled", 2.0)
    assert server.orders[-1]["expiryReason"] == reason
    assert sum(f.qty for f in exchange.fetch_fills(SYMBOL, 0)) == 2.0 == exchange.fetch_position(SYMBOL).qty


def test_a_taker_meeting_its_own_resting_order_expires_unfilled_and_the_resting_order_stays(exchange, server):
    """selfTradePrevention RejectTaker, Backpack's default."""
    resting = exchange.place_order(OrderRequest(SYMBOL, "sell", 1.0, 150.5, client_id=1))
    taker = exchange.place_order(OrderRequest(SYMBOL, "buy", 1.0, 151.0, post_only=False, client_id=2))
    assert (taker.status, taker.filled_qty) == ("canceled", 0.0)
    assert server.orders[-1]["expiryReason"] == "SelfTradePrevention"
    assert [o.id for o in exchange.fetch_open_orders(SYMBOL)] == [resting.id]
    assert exchange.fetch_fills(SYMBOL, 0) == [] and exchange.fetch_position(SYMBOL).qty == 0.0


def test_a_post_only_order_expired_as_taker_is_a_post_only_refusal(exchange, server):
    server.post_only_expires = True
    with pytest.raises(base.PostOnlyRejected):
        exchange.place_order(buy(150.5))
    results = exchange.place_orders([buy(150.5), buy(149.0)])
    assert type(results[0]) is base.PostOnlyRejected and isinstance(results[1], base.Order)
    assert server.orders[0]["status"] == "Expired" and server.orders[0]["expiryReason"] == "PostOnlyTaker"


# ---- 4. price bands ------------------------------------------------------------------------------
@pytest.mark.parametrize("price", [100.0, 200.0])
def test_a_price_outside_the_band_is_price_out_of_band(exchange, server, price):
    side = "buy" if price < 150 else "sell"
    with pytest.raises(base.PriceOutOfBand, match="too far from the last active price"):
        exchange.place_order(OrderRequest(SYMBOL, side, 0.5, price))
    server.set_price(price * 1.05 if side == "buy" else price * 0.95)
    assert exchange.place_order(OrderRequest(SYMBOL, side, 0.5, price)).status == "open"   # the level, later


# ---- 9. the touch from the order book ------------------------------------------------------------
def test_best_bid_and_ask_come_from_the_book(exchange, server):
    t = exchange.fetch_ticker(SYMBOL)
    assert (t.last, t.bid, t.ask) == (150.0, 149.99, 150.01)
    assert server.hits["GET /api/v1/depth"] == 1


# ---- the recorded answers through the adapter ----------------------------------------------------
def test_ccxts_recorded_backpack_answers_parse_through_the_adapter(exchange, server):
    """Real answers ccxt recorded from Backpack, served as they are (tests/exchanges/backpack_recorded.json)."""
    server.canned = {"GET /wapi/v1/history/fills": RECORDED["fetchMyTrades"]["httpResponse"],
                     "GET /api/v1/position": RECORDED["fetchPositions"]["httpResponse"],
                     "GET /api/v1/ticker": RECORDED["fetchTicker"]["httpResponse"],
                     "POST /api/v1/order": RECORDED["createOrder"]["httpResponse"],
                     "DELETE /api/v1/order": RECORDED["cancelOrder"]["httpResponse"],
                     "DELETE /api/v1/orders": RECORDED["cancelAllOrders"]["httpResponse"]}
    fills = exchange.fetch_fills("ETH_USDC", 0)
    assert [(f.trade_id, f.side, f.price, f.qty, f.is_maker, f.system_order) for f in fills] == [
        ("2958908", "sell", 4725.4, 0.001, False, None), ("2959284", "buy", 4732.9, 0.001, False, None),
        ("2959285", "sell", 4732.5, 0.001, False, None)]                 # newest first on the wire
    assert [f.fee for f in fills] == [0.0047254, 0.000001, 0.0047325]
    pos = exchange.fetch_position("ETH_USDC_PERP")
    assert (pos.qty, pos.entry_price, pos.unrealized_pnl, pos.realized_pnl) == (0.002, 4447.065, 0.000776, -0.054434)
    assert exchange.fetch_ticker("ETH_USDC_PERP").last == 4182.41
    order = exchange.place_order(OrderRequest("ETH_USDC_PERP", "buy", 0.001, 4000.0, post_only=False))
    assert (order.id, order.status, order.price, order.qty, order.filled_qty) == ("8284671277", "open", 4000.0, 0.001, 0.0)
    exchange.cancel_order("ETH_USDC", order_id="8284661092")
    assert exchange.cancel_all_orders("ETH_USDC") == 0
    server.canned["POST /api/v1/order"] = RECORDED["createOrderMarket"]["httpResponse"]
    market = exchange.place_order(OrderRequest("ETH_USDC_PERP", "buy", 1.0, type="market", post_only=False))
    assert (market.status, market.filled_qty, market.client_id, market.price) == ("filled", 1.0, 55555, 0.8921)


# ---- the request budget --------------------------------------------------------------------------
def test_the_budget_is_ccxts_pace_for_backpack_unless_the_config_says_otherwise(exchange, server, home):
    """Backpack publishes no figure: the default is ccxt's pace for it (rateLimit 50 ms = 1,200 a
    minute), below the unsourced 2,000 once assumed; `exchange_config.rate_limit` overrides it."""
    budget = exchange.limiter.budget
    assert (budget.requests, budget.per_seconds) == (60_000 / ccxt.backpack().rateLimit, 60)
    assert budget.requests < 2000
    other = create_exchange("backpack", {"api_key": TEST_PUBLIC_B64, "secret_key": TEST_SEED_B64, "base_url": server.url,
                                         "rate_limit": {"requests": 300, "per_seconds": 60}}, instance_id="bp_other")
    assert (other.limiter.budget.requests, other.limiter.budget.per_seconds) == (300, 60)
    other.close()
