"""The ccxt adapter against the local Backpack server: real HTTP, real ED25519 signatures."""
from __future__ import annotations

import base64
import subprocess
import sys

import ccxt
import pytest

from database.db import Database
from exchanges import create_exchange
from exchanges import base
from exchanges.base import OrderRequest
from exchanges.ccxt_exchange import CcxtExchange
from tests.conftest import REPO, free_port
from tests.exchanges.backpack_server import TEST_PUBLIC_B64, TEST_SEED_B64, BackpackServer, keypair_from_seed

SYMBOL = "SOL_USDC_PERP"


@pytest.fixture
def server():
    with BackpackServer(price=150.0) as srv:
        yield srv


@pytest.fixture
def exchange(server, home, monkeypatch):
    monkeypatch.setenv("GRIDBOT_HOME", str(home))
    ex = create_exchange("backpack", {"api_key": TEST_PUBLIC_B64, "secret_key": TEST_SEED_B64,
                                      "base_url": server.url}, instance_id="bp_test")
    yield ex
    ex.close()


def buy(price: float, qty: float = 0.5, client_id: int | None = None, **kw) -> OrderRequest:
    return OrderRequest(SYMBOL, "buy", qty, price, client_id=client_id, **kw)


def test_markets_map_user_symbols_and_carry_tick_step_and_minimum(exchange):
    m = exchange.market(SYMBOL)
    assert (m.symbol, m.base, m.quote, m.tick_size, m.step_size, m.min_qty) == (SYMBOL, "SOL", "USDC", 0.01, 0.01, 0.01)
    assert exchange._market(SYMBOL)["symbol"] == "SOL/USDC:USDC"
    assert exchange._market("SOL/USDC:USDC")["id"] == SYMBOL
    assert exchange._market("sol-usdc-perp")["id"] == SYMBOL
    with pytest.raises(ValueError, match=r"metadata.symbol: 'DOGE_USDC_PERP' is not a market on backpack.*SOL_USDC_PERP"):
        exchange.market("DOGE_USDC_PERP")


def test_ticker_follows_the_venue(exchange, server):
    assert exchange.fetch_ticker(SYMBOL).last == 150.0
    server.set_price(151.25)
    assert exchange.fetch_ticker(SYMBOL).last == 151.25


def test_place_sends_post_only_reduce_only_and_u32_client_id_as_backpack_wants(exchange, server):
    order = exchange.place_order(buy(149.0, client_id=4_000_000_001))
    assert (order.status, order.client_id, order.post_only, order.price, order.qty) == ("open", 4_000_000_001, True, 149.0, 0.5)
    sent = server.orders[-1]
    assert (sent["clientId"], sent["postOnly"], sent["side"], sent["price"], sent["quantity"]) == (4_000_000_001, True, "Bid", "149", "0.5")
    server.set_price(148.0)                                # fills: long 0.5
    closing = exchange.place_order(OrderRequest(SYMBOL, "sell", 0.5, 149.5, reduce_only=True, client_id=7))
    assert server.orders[-1]["reduceOnly"] is True and closing.reduce_only
    assert [o.client_id for o in exchange.fetch_open_orders(SYMBOL)] == [7]


def test_market_order_fills_at_once(exchange, server):
    order = exchange.place_order(OrderRequest(SYMBOL, "buy", 1.0, type="market", post_only=False))
    assert order.status == "filled" and order.filled_qty == 1.0
    assert exchange.fetch_position(SYMBOL).qty == 1.0


@pytest.mark.parametrize("request_, error", [
    (buy(150.5), base.PostOnlyRejected),                            # would cross the book
    (buy(149.0, qty=0.001), base.InvalidOrder),                     # below the minimum quantity
    (buy(120.0, qty=2000.0), base.InsufficientMargin),              # 240k notional on 10k collateral at 10x
    (OrderRequest(SYMBOL, "sell", 1.0, 151.0, reduce_only=True), base.InvalidOrder),   # nothing to reduce
])
def test_rejections_map_to_the_interface_errors(exchange, request_, error):
    with pytest.raises(error):
        exchange.place_order(request_)


def test_batch_is_one_request_with_a_result_per_order_in_order(exchange, server):
    requests_ = [buy(149.0, client_id=1), buy(150.5, client_id=2), buy(120.0, qty=2000.0, client_id=3),
                 OrderRequest(SYMBOL, "sell", 0.5, 151.0, client_id=4)]
    results = exchange.place_orders(requests_)
    assert server.hits["POST /api/v1/orders"] == 1 and server.hits["POST /api/v1/order"] == 0
    assert isinstance(results[0], base.Order) and results[0].client_id == 1
    assert isinstance(results[1], base.PostOnlyRejected)
    assert isinstance(results[2], base.InsufficientMargin)
    assert isinstance(results[3], base.Order) and results[3].side == "sell" and results[3].client_id == 4
    assert sorted(o.client_id for o in exchange.fetch_open_orders(SYMBOL)) == [1, 4]


def test_batches_are_cut_at_the_venues_maximum(exchange, server):
    results = exchange.place_orders([buy(140.0 - i * 0.1, qty=0.01, client_id=i) for i in range(25)])
    assert server.hits["POST /api/v1/orders"] == 2 and all(isinstance(r, base.Order) for r in results)
    assert [r.client_id for r in results] == list(range(25))


def test_cancel_by_id_by_client_id_all_and_unknown(exchange, server):
    a = exchange.place_order(buy(149.0, client_id=11))
    exchange.place_order(buy(148.0, client_id=12))
    exchange.place_order(buy(147.0, client_id=13))
    exchange.cancel_order(SYMBOL, order_id=a.id)
    exchange.cancel_order(SYMBOL, client_id=12)
    assert [o.client_id for o in exchange.fetch_open_orders(SYMBOL)] == [13]
    with pytest.raises(base.OrderNotFound):
        exchange.cancel_order(SYMBOL, client_id=12)
    assert exchange.cancel_all_orders(SYMBOL) == 1
    assert exchange.fetch_open_orders(SYMBOL) == []


def test_fills_position_and_balance_after_trading(exchange, server):
    exchange.place_order(buy(149.0, client_id=21))
    exchange.place_order(buy(148.0, client_id=22))
    server.set_price(147.0)
    fills = exchange.fetch_fills(SYMBOL, 0)
    assert [(f.client_id, f.price, f.qty, f.side, f.is_maker) for f in fills] == [(21, 149.0, 0.5, "buy", True),
                                                                                 (22, 148.0, 0.5, "buy", True)]
    assert fills[0].fee == pytest.approx(149.0 * 0.5 * 0.0002)
    assert exchange.fetch_fills(SYMBOL, fills[-1].timestamp + 1) == []
    pos = exchange.fetch_position(SYMBOL)
    assert (pos.qty, pos.entry_price) == (1.0, 148.5) and pos.unrealized_pnl == pytest.approx(-1.5)
    exchange.place_order(OrderRequest(SYMBOL, "sell", 1.0, 146.0, post_only=False, reduce_only=True))
    assert exchange.fetch_position(SYMBOL).qty == 0.0
    bal = exchange.fetch_balance()
    assert bal.asset == "USDC" and bal.total < 10_000 and bal.free == bal.total and bal.used == 0


def test_balance_is_net_equity_with_unrealized_pnl_and_locked_margin(exchange, server):
    exchange.place_order(OrderRequest(SYMBOL, "buy", 1.0, type="market", post_only=False))   # long 1 @ 150
    exchange.place_order(buy(140.0, qty=1.0))                                               # locks 14 at 10x
    server.set_price(160.0)
    bal = exchange.fetch_balance()
    assert bal.total == pytest.approx(10_000 + 10 - 150 * 0.0005)
    assert bal.used == pytest.approx(14.0) and bal.free == pytest.approx(bal.total - 14.0)


def test_wrong_key_and_wrong_secret_are_authentication_errors(server, home, monkeypatch):
    monkeypatch.setenv("GRIDBOT_HOME", str(home))
    stranger_key, stranger_secret = keypair_from_seed(base64.b64encode(b"\x02" * 32).decode())
    for key, secret in ((stranger_key, stranger_secret), (TEST_PUBLIC_B64, stranger_secret)):
        ex = create_exchange("backpack", {"api_key": key, "secret_key": secret, "base_url": server.url}, instance_id="x")
        with pytest.raises(base.AuthenticationError) as info:
            ex.fetch_open_orders(SYMBOL)
        assert secret not in str(info.value)
    assert server.hits["GET /api/v1/orders"] == 2      # auth failures are not retried


@pytest.mark.parametrize("config, env, missing", [
    ({}, {}, "exchange_config.api_key (or EXCHANGE_API_KEY), exchange_config.secret_key (or EXCHANGE_SECRET_KEY)"),
    ({"api_key": "k" * 44, "secret_key": ""}, {}, "exchange_config.secret_key (or EXCHANGE_SECRET_KEY)"),
])
def test_missing_keys_refuse_to_build_naming_the_field(config, env, missing, monkeypatch):
    monkeypatch.delenv("EXCHANGE_API_KEY", raising=False)
    monkeypatch.delenv("EXCHANGE_SECRET_KEY", raising=False)
    with pytest.raises(base.AuthenticationError, match="missing or empty: " + missing.replace("(", r"\(").replace(")", r"\)")):
        create_exchange("backpack", config, instance_id="x")


def test_a_secret_that_cannot_sign_is_refused_before_any_request(monkeypatch):
    monkeypatch.delenv("EXCHANGE_SECRET_KEY", raising=False)
    for secret in ("not base64!", base64.b64encode(b"short").decode()):
        with pytest.raises(base.AuthenticationError, match="exchange_config.secret_key: not a Backpack API secret") as info:
            create_exchange("backpack", {"api_key": TEST_PUBLIC_B64, "secret_key": secret}, instance_id="x")
        assert secret not in str(info.value)


def test_keys_may_come_from_the_supervisor_environment(server, home, monkeypatch):
    monkeypatch.setenv("GRIDBOT_HOME", str(home))
    monkeypatch.setenv("EXCHANGE_API_KEY", TEST_PUBLIC_B64)
    monkeypatch.setenv("EXCHANGE_SECRET_KEY", TEST_SEED_B64)
    ex = create_exchange("backpack", {"base_url": server.url}, instance_id="x")
    assert ex.fetch_open_orders(SYMBOL) == []


def test_unknown_exchange_is_a_config_error():
    with pytest.raises(ValueError, match="'notanexchange' is not an exchange ccxt knows"):
        create_exchange("notanexchange", {"api_key": "a", "secret_key": "b"}, instance_id="x")


def test_429_storm_reads_retry_writes_raise_rate_limited_and_every_process_backs_off(exchange, server):
    exchange.market(SYMBOL)
    server.storm(0.3)
    assert exchange.fetch_open_orders(SYMBOL) == []          # retried after Retry-After: 1
    server.storm(30)
    with pytest.raises(base.RateLimited) as info:
        exchange.place_order(buy(149.0))
    assert info.value.retry_after == 1.0
    import json
    assert json.loads(exchange.limiter.path.read_text())["blocked_until"] > 0   # shared penalty written


def test_network_loss_is_exchange_unavailable_after_read_retries(home, monkeypatch):
    monkeypatch.setenv("GRIDBOT_HOME", str(home))
    ex = create_exchange("backpack", {"api_key": TEST_PUBLIC_B64, "secret_key": TEST_SEED_B64,
                                      "base_url": f"http://127.0.0.1:{free_port()}"}, instance_id="x")
    ex.backoff = 0.01
    with pytest.raises(base.ExchangeUnavailable):
        ex.fetch_ticker(SYMBOL)


def test_a_slow_venue_times_out_as_exchange_unavailable(server, home, monkeypatch):
    monkeypatch.setenv("GRIDBOT_HOME", str(home))
    ex = create_exchange("backpack", {"api_key": TEST_PUBLIC_B64, "secret_key": TEST_SEED_B64,
                                      "base_url": server.url, "timeout_ms": 200}, instance_id="x")
    ex.market(SYMBOL)
    ex.backoff = 0.01
    server.delay = 0.5
    with pytest.raises(base.ExchangeUnavailable):
        ex.place_order(buy(149.0))
    assert server.hits["POST /api/v1/order"] == 1                     # a write is never retried blindly
    with pytest.raises(base.ExchangeUnavailable):
        ex.fetch_open_orders(SYMBOL)
    assert server.hits["GET /api/v1/orders"] == 3                     # a read is, with backoff


@pytest.mark.parametrize("ccxt_error, expected", [
    (ccxt.InsufficientFunds, base.InsufficientMargin),
    (ccxt.InvalidOrder, base.InvalidOrder),
    (ccxt.BadRequest, base.InvalidOrder),
    (ccxt.OrderImmediatelyFillable, base.PostOnlyRejected),
    (ccxt.OrderNotFound, base.OrderNotFound),
    (ccxt.DDoSProtection, base.RateLimited),
    (ccxt.RateLimitExceeded, base.RateLimited),
    (ccxt.RequestTimeout, base.ExchangeUnavailable),
    (ccxt.NetworkError, base.ExchangeUnavailable),
    (ccxt.ExchangeNotAvailable, base.ExchangeUnavailable),
    (ccxt.OnMaintenance, base.ExchangeUnavailable),
    (ccxt.AuthenticationError, base.AuthenticationError),
    (ccxt.PermissionDenied, base.AuthenticationError),
    (ccxt.ExchangeError, base.ExchangeError),
])
def test_error_mapping(ccxt_error, expected):
    ex = CcxtExchange(ccxt.backpack(), instance_id="x")
    mapped = ex.translate(ccxt_error("backpack something"))
    assert type(mapped) is expected


@pytest.mark.parametrize("message, expected", [
    ('backpack {"code":"INVALID_ORDER","message":"Order would immediately match and take."}', base.PostOnlyRejected),
    ('backpack {"code":"INVALID_PRICE","message":"Price is too far from the last active price"}', base.PriceOutOfBand),
    ('backpack {"code":"INVALID_PRICE","message":"Price 1.005 is not a multiple of the tick size"}', base.InvalidOrder),
])
def test_invalid_order_texts(message, expected):
    assert type(CcxtExchange(ccxt.backpack(), instance_id="x").translate(ccxt.InvalidOrder(message))) is expected


def test_resource_not_found_is_order_not_found_only_on_order_calls():
    err = ccxt.ExchangeNotAvailable('backpack {"code":"RESOURCE_NOT_FOUND","message":"Order not found"}')
    ex = CcxtExchange(ccxt.backpack(), instance_id="x")
    assert type(ex.translate(err, order_call=True)) is base.OrderNotFound
    assert type(ex.translate(err)) is base.ExchangeError      # neither retried as an outage nor an order gone


def test_ccxt_is_imported_only_for_a_real_exchange():
    code = ("import sys, exchanges, exchanges.base, exchanges.client_ids, exchanges.rate_limit, exchanges.paper_prices;"
            "print('ccxt' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=str(REPO), capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False", out.stderr


def test_urls_override_points_public_and_private_apis_separately(server, home, monkeypatch):
    monkeypatch.setenv("GRIDBOT_HOME", str(home))
    ex = create_exchange("backpack", {"api_key": TEST_PUBLIC_B64, "secret_key": TEST_SEED_B64,
                                      "urls": {"public": server.url, "private": server.url}}, instance_id="x")
    assert ex.client.urls["api"] == {"public": server.url, "private": server.url}
    assert ex.fetch_ticker(SYMBOL).last == 150.0 and ex.fetch_open_orders(SYMBOL) == []


# ---- fills carry their client id on every venue ------------------------------------------------
HISTORY = "GET /wapi/v1/history/orders"          # what ccxt's fetch_order asks Backpack


def connect(server: BackpackServer, db: Database | None, **config) -> CcxtExchange:
    return create_exchange("backpack", {"api_key": TEST_PUBLIC_B64, "secret_key": TEST_SEED_B64,
                                        "base_url": server.url, **config}, instance_id="bp_test", db=db)


def test_fills_without_a_client_id_take_their_orders_also_after_a_restart(server, home, monkeypatch):
    """A venue whose trades name only the order (ccxt's unified trade): every order the adapter saw
    gives its client id, an order it never saw is asked once, and a new adapter on the same
    database asks nothing again."""
    monkeypatch.setenv("GRIDBOT_HOME", str(home))
    server.omit_fill_client_ids = True
    db = Database(home / "database" / "bp_test.db")
    ex = connect(server, db, timeout_ms=1000)
    ex.place_order(buy(149.0, client_id=31))
    ex.place_orders([buy(148.0, client_id=32), buy(147.5, client_id=33)])
    ex.place_order(buy(147.0))                                      # the trader's own: no client id
    server.lose_order_answers(1, 5.0)
    with pytest.raises(base.ExchangeUnavailable):
        ex.place_order(buy(146.0, client_id=34))                    # rests; we never heard its id
    server.set_price(145.0)
    expected = [(149.0, 31), (148.0, 32), (147.5, 33), (147.0, None), (146.0, 34)]
    fills = ex.fetch_fills(SYMBOL, 0)
    assert [(f.price, f.client_id) for f in fills] == expected
    assert all("clientId" not in f for f in server.fill_history(TEST_PUBLIC_B64, {}))
    assert server.hits[HISTORY] == 1                                # only the unheard order was asked
    assert [(f.price, f.client_id) for f in ex.fetch_fills(SYMBOL, 0)] == expected
    assert server.hits[HISTORY] == 1                                # ... and only once
    ex.close()
    restarted = connect(server, db)
    assert restarted.fetch_fills(SYMBOL, 0) == fills
    assert server.hits[HISTORY] == 1                                # the database remembered all five
    restarted.close()
    db.close()


def test_open_orders_seen_feed_the_map_and_an_unknown_order_is_asked_once_per_order(server, home, monkeypatch):
    monkeypatch.setenv("GRIDBOT_HOME", str(home))
    server.omit_fill_client_ids = True
    other = connect(server, None)                       # placed by someone this adapter never heard
    other.place_order(buy(149.0, client_id=41))
    other.place_order(buy(148.0, qty=0.3, client_id=42))
    ex = connect(server, None)
    assert [o.client_id for o in ex.fetch_open_orders(SYMBOL)] == [41, 42]      # 41 and 42 seen resting
    server.set_price(148.5)                                                     # 41 fills
    assert [f.client_id for f in ex.fetch_fills(SYMBOL, 0)] == [41]
    assert server.hits[HISTORY] == 0
    other.place_order(buy(147.0, qty=0.2, client_id=43))                        # never seen resting
    server.set_price(146.0)                                                     # 42 and 43 fill
    assert [f.client_id for f in ex.fetch_fills(SYMBOL, 0)] == [41, 42, 43]
    assert [f.client_id for f in ex.fetch_fills(SYMBOL, 0)] == [41, 42, 43]
    assert server.hits[HISTORY] == 1                                            # 43, once
    other.close()
    ex.close()


def test_a_venue_without_fetch_order_is_never_asked(server, home, monkeypatch):
    monkeypatch.setenv("GRIDBOT_HOME", str(home))
    server.omit_fill_client_ids = True
    connect(server, None).place_order(buy(149.0, client_id=51))
    ex = connect(server, None)
    ex.client.has = {**ex.client.has, "fetchOrder": False}
    server.set_price(148.0)
    assert [f.client_id for f in ex.fetch_fills(SYMBOL, 0)] == [None]
    assert server.hits[HISTORY] == 0


@pytest.mark.parametrize("refusal", [ccxt.OrderNotFound, ccxt.NotSupported, ccxt.ArgumentsRequired])
def test_an_order_the_venue_will_not_describe_is_asked_once_and_passing_trouble_is_raised(server, home, monkeypatch,
                                                                                        refusal):
    monkeypatch.setenv("GRIDBOT_HOME", str(home))
    server.omit_fill_client_ids = True
    connect(server, None).place_order(buy(149.0, client_id=52))
    server.set_price(148.0)
    ex = connect(server, None)
    asked = []

    def fetch_order(order_id, symbol=None, params={}):
        asked.append(order_id)
        raise (ccxt.RequestTimeout if len(asked) == 1 else refusal)("backpack says no")

    ex.client.fetch_order, ex.backoff, ex.read_attempts = fetch_order, 0.0, 1
    with pytest.raises(base.ExchangeUnavailable):
        ex.fetch_fills(SYMBOL, 0)                       # a timeout may pass: not taken as an answer
    assert [f.client_id for f in ex.fetch_fills(SYMBOL, 0)] == [None]
    assert [f.client_id for f in ex.fetch_fills(SYMBOL, 0)] == [None]
    assert len(asked) == 2


def test_backpack_fills_keep_their_own_client_id_without_asking(exchange, server):
    other = CcxtExchange(exchange.client, instance_id="bp_test")    # knows no order of `exchange`
    exchange.place_order(buy(149.0, client_id=61))
    server.set_price(148.0)
    assert [f.client_id for f in other.fetch_fills(SYMBOL, 0)] == [61]
    assert server.hits[HISTORY] == 0


def test_fetch_order_reads_the_venues_record_of_an_order_done_cancelled_or_filled(exchange, server):
    """What tells an order cancelled elsewhere (or whose cancel's answer was lost) from one that
    filled before its fills are listed: the order history's status and executedQuantity."""
    resting = exchange.place_order(buy(149.0, client_id=41))
    assert (exchange.fetch_order(SYMBOL, resting.id).status, exchange.fetch_order(SYMBOL, resting.id).filled_qty) == ("open", 0.0)
    exchange.cancel_order(SYMBOL, order_id=resting.id)
    filled = exchange.place_order(buy(148.0, client_id=42))
    server.set_price(147.0)
    cancelled, done = exchange.fetch_order(SYMBOL, resting.id), exchange.fetch_order(SYMBOL, filled.id)
    assert (cancelled.status, cancelled.filled_qty, cancelled.client_id) == ("canceled", 0.0, 41)
    assert (done.status, done.filled_qty, done.client_id) == ("filled", 0.5, 42)
    assert server.hits[HISTORY] >= 3
    with pytest.raises(base.OrderNotFound):
        exchange.fetch_order(SYMBOL, "112233445566")


def test_fetch_order_by_client_id_finds_an_order_resting_or_done_in_the_recent_history(exchange, server):
    """What became of a placement whose answer was lost: the history has no clientId filter (SPEC
    5068-5232), so the adapter reads its newest page and takes the latest order under the id."""
    exchange.place_order(buy(149.0, client_id=51))
    cancelled = exchange.place_order(buy(148.0, client_id=52))
    exchange.cancel_order(SYMBOL, order_id=cancelled.id)
    server.set_price(148.5)                                   # the buy at 149 fills
    resting = exchange.place_order(buy(147.0, client_id=53))
    found = {cid: exchange.fetch_order_by_client_id(SYMBOL, cid) for cid in (51, 52, 53)}
    assert [(o.status, o.filled_qty) for o in found.values()] == [("filled", 0.5), ("canceled", 0.0), ("open", 0.0)]
    assert found[53].id == resting.id and found[52].id == cancelled.id
    with pytest.raises(base.OrderNotFound):
        exchange.fetch_order_by_client_id(SYMBOL, 54)
