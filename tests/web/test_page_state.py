"""The page tells the bot's real state: "stopped" within seconds of its bot ending (never a green
RUNNING with a frozen loop age and a stale order count), and why a waiting bot waits; the equity
tile moves with price and PnL (issue 14, items 6 and 7). Real bots, real Chromium."""
from __future__ import annotations

import re

import pytest
import requests
from playwright.sync_api import expect

from tests.conftest import free_port, wait_for
from tests.exchanges.test_bot_outages_on_backpack import IID as WAITING_ID, config as venue_config
from tests.bot.proc import running_bot
from tests.web.paper_bot import start_bot, stop_bot

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def test_the_page_turns_to_stopped_when_its_bot_stops(home, browser):
    bot = start_bot(home, "paper_stop_01", free_port())
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(bot.url + "/")
        expect(page.locator("#conn-text")).to_have_text("live", timeout=15000)
        expect(page.locator("#state")).to_have_text("running", timeout=15000)
        expect(page.locator("#order-count")).to_contain_text("resting", timeout=15000)
        expect(page.locator("#loop-age")).to_have_text(re.compile(r"^\d+\.\ds ago$"), timeout=15000)
        stop_bot(bot)
        expect(page.locator("#state")).to_have_text("stopped", timeout=15000)
        expect(page.locator("#state")).not_to_have_class("pill running")
        expect(page.locator("#state-msg")).to_be_visible()
        expect(page.locator("#loop-age")).to_have_text("—")
        expect(page.locator("#order-count")).not_to_contain_text("resting")
        expect(page).to_have_title(f"stopped · paper_stop_01")
    finally:
        context.close()
        stop_bot(bot)


def test_a_waiting_bot_shows_why_it_waits(home, browser):
    venue_port, web_port = free_port(), free_port()          # nobody listens on venue_port: the venue is down
    logs = home / "logs" / WAITING_ID
    with running_bot(home, venue_config(home, f"http://127.0.0.1:{venue_port}"), "--web-port", str(web_port)):
        wait_for(lambda: (logs / "web.port").exists(), 30, "the page of the waiting bot")
        url = f"http://127.0.0.1:{int((logs / 'web.port').read_text())}/"
        wait_for(lambda: requests.get(url + "api/status", timeout=5).json()["state"] == "waiting", 30, "state waiting")
        context = browser.new_context(viewport={"width": 400, "height": 900})
        try:
            page = context.new_page()
            page.goto(url)
            expect(page.locator("#state")).to_have_text("waiting", timeout=15000)
            expect(page.locator("#state-msg")).to_be_visible()
            expect(page.locator("#state-msg")).to_contain_text("exchange not available at start-up")
            expect(page.locator("#state-msg")).to_contain_text("retrying in")
        finally:
            context.close()


def test_the_equity_tile_moves_with_price_and_pnl(home):
    """Equity = starting balance + realized + unrealized - fees, on every status (a paper account
    without funding): before, it was refreshed every ~10 s while PnL followed every loop."""
    bot = start_bot(home, "paper_equity_01", free_port())
    try:
        seen = set()

        def drift():
            s = bot.get("/api/status").json()
            seen.add(s["price"])
            return s["equity"] - (10000 + s["realized_pnl"] + s["unrealized_pnl"] - s["fees"])

        for _ in range(40):
            assert abs(drift()) < 1e-6
            if len(seen) >= 8:
                break
            wait_for(lambda: bot.get("/api/status").json()["price"] not in seen, 30, "a new price")
        assert len(seen) >= 8
    finally:
        stop_bot(bot)
