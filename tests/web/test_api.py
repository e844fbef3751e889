"""The JSON API, health, metrics and the write API of a real paper bot over real HTTP."""
from __future__ import annotations

import re

import pytest

from tests.web.paper_bot import Bot
from tests.conftest import wait_for
ADJUST = "/api/grid/adjust"


def grid_of(bot: Bot) -> dict:
    return bot.get("/api/status").json()["grid"]


def test_health_reports_this_bot_while_its_loop_is_fresh(bot: Bot):
    r = bot.get("/health")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok" and body["instance_id"] == "paper_web_01"
    assert body["uptime_s"] > 0 and 0 <= body["loop_age_s"] <= body["stale_after_s"]


def test_status_has_everything_the_page_shows(bot: Bot):
    s = bot.get("/api/status").json()
    assert s["instance_id"] == "paper_web_01" and s["symbol"] == "SOL_USDC_PERP" and s["exchange"] == "paper"
    assert s["price"] > 0
    for key in ("realized_pnl", "unrealized_pnl", "grid_profit", "fees", "volume", "fill_count", "equity",
                "open_order_count", "uptime_s", "position"):
        assert key in s, key
    grid = s["grid"]
    assert grid["lower"] < grid["upper"] and len(grid["levels"]) >= 2


def test_orders_fills_and_pnl_lists(bot: Bot):
    wait_for(lambda: bot.get("/api/status").json()["fill_count"] > 0, 60, what="a first fill")
    orders = bot.get("/api/orders").json()
    assert orders and {"side", "price", "qty"} <= set(orders[0])
    fills = bot.get("/api/fills", params={"limit": 5}).json()
    assert 1 <= len(fills) <= 5 and {"trade_id", "side", "price", "qty", "fee", "timestamp"} <= set(fills[0])
    assert len(bot.get("/api/fills", params={"limit": 1}).json()) == 1
    pnl = wait_for(lambda: bot.get("/api/pnl").json(), 30, what="a PnL history point")
    assert {"timestamp", "price", "equity"} <= set(pnl[0])


@pytest.mark.parametrize("limit", ["abc", "0", "-1", "2.5", "100000"])
def test_fills_limit_garbage_is_400_with_a_message(bot: Bot, limit: str):
    r = bot.get("/api/fills", params={"limit": limit})
    assert r.status_code == 400
    assert "limit" in r.json()["error"]


def test_metrics_is_prometheus_text_of_this_bot(bot: Bot):
    r = bot.get("/metrics")
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    names = set(re.findall(r"^(gridbot_\w+)\{instance=\"paper_web_01\"", r.text, re.M))
    assert {"gridbot_up", "gridbot_price", "gridbot_position", "gridbot_equity", "gridbot_realized_pnl",
            "gridbot_unrealized_pnl", "gridbot_grid_profit", "gridbot_open_orders", "gridbot_fills_total",
            "gridbot_seconds_since_last_loop"} <= names
    for line in r.text.splitlines():
        assert line.startswith("#") or re.fullmatch(r'gridbot_\w+\{[^}]*\} [-+0-9.eEInfa]+', line), line


@pytest.mark.parametrize("header", [None, "Bearer wrong-token", "Basic abc", "Bearer"])
def test_adjust_without_the_right_token_is_401(bot: Bot, header: str | None):
    before = grid_of(bot)
    headers = {"Authorization": header} if header else {}
    r = bot.post(ADJUST, json={"grid_lower_price": 141}, headers=headers)
    assert r.status_code == 401 and "token" in r.json()["error"]
    assert grid_of(bot) == before


@pytest.mark.parametrize("kwargs, words", [
    ({"data": "lower=141"}, "must be JSON"),
    ({"data": "{not json", "headers": {"Content-Type": "application/json"}}, "must be JSON"),
    ({"json": {"grid_lower_price": "cheap"}}, "must be a number"),
    ({"json": {"grid_lower_price": -5}}, "positive"),
    ({"json": {"grid_lower_price": 170, "grid_upper_price": 150}}, "must be below"),
    ({"json": {"grid_upper_price": 1e15}}, "sanity bound"),
    ({"json": {"grid_upper_price": 100000}}, "absurd"),
    ({"json": {"grid_num": 3}}, "unknown field"),
    ({"json": {}}, "give grid_lower_price"),
])
def test_adjust_bad_bodies_are_400_and_leave_the_grid_alone(bot: Bot, kwargs: dict, words: str):
    kwargs = dict(kwargs)
    before = grid_of(bot)
    headers = {"Authorization": f"Bearer {bot.token}", **kwargs.pop("headers", {})}
    r = bot.post(ADJUST, headers=headers, **kwargs)
    assert r.status_code == 400
    assert words in r.json()["error"]
    assert grid_of(bot) == before


def test_adjust_with_the_token_changes_the_live_grid(bot: Bot):
    before = grid_of(bot)
    price = bot.get("/api/status").json()["price"]
    lower, upper = round(price - 12, 2), round(price + 13, 2)
    r = bot.post(ADJUST, json={"grid_lower_price": lower, "grid_upper_price": upper},
                 headers={"Authorization": f"Bearer {bot.token}"})
    assert r.status_code == 200, r.text
    assert (r.json()["grid"]["lower"], r.json()["grid"]["upper"]) == pytest.approx((lower, upper), abs=0.011)
    now = grid_of(bot)
    assert (now["lower"], now["upper"]) == pytest.approx((lower, upper), abs=0.011) != (before["lower"], before["upper"])
    assert min(now["levels"]) == pytest.approx(now["lower"], abs=0.011)
    wait_for(lambda: all(lower - 0.011 <= o["price"] <= upper + 0.011 for o in bot.get("/api/orders").json()),
             30, what="the resting orders to move inside the new range")


def test_page_and_assets_are_local_and_hardened(bot: Bot):
    r = bot.get("/")
    assert r.status_code == 200 and "paper_web_01" in r.text
    assert "default-src 'self'" in r.headers["Content-Security-Policy"]
    refs = re.findall(r'(?:src|href)="([^"]+)"', r.text)
    # relative references, so the page also works behind the dashboard at /bot/<id>/
    assert refs and all(re.match(r"(static/|api/|data:)", ref) for ref in refs), refs
    for ref in refs:
        if not ref.startswith("data:"):
            assert bot.get("/" + ref).status_code == 200, ref
    assert "Socket.IO" in bot.get("/static/vendor/socket.io.min.js").text[:200]


def test_no_debugger_and_no_foreign_origin(bot: Bot):
    r = bot.get("/nope")
    assert r.status_code == 404 and r.json()["error"] and "Traceback" not in r.text
    assert "__debugger__" not in bot.get("/?__debugger__=yes&cmd=resource&f=style.css").text
    foreign = bot.get("/socket.io/", params={"EIO": "4", "transport": "polling"},
                      headers={"Origin": "http://evil.example"})
    assert foreign.status_code == 403 and "Access-Control-Allow-Origin" not in foreign.headers
    own = bot.get("/socket.io/", params={"EIO": "4", "transport": "polling"}, headers={"Origin": bot.url})
    assert own.status_code == 200
