"""The page of one bot as a trader opens it: on a phone (400 px), a tablet (768 px) and a laptop,
its real state when the bot stops or waits, the PnL chart, the fill history and its CSV, the price
in the tab title and a confirmed adjustment (issue 14, items 5-7). Real bot, real Chromium."""
from __future__ import annotations

import csv
import io
import re

import pytest
from playwright.sync_api import expect

from tests.web.page_checks import (DESKTOP, PHONE, TABLET, covered_by, cut_texts, height, horizontal_overflow,
                                   open_page, overlaps, screenshot)
from tests.conftest import free_port, wait_for
from tests.web.paper_bot import Bot, start_bot, stop_bot

pytestmark = [pytest.mark.slow, pytest.mark.browser]

HEADER = ["#instance", "#symbol", "#exchange", "#state", ".conn"]


def open_live(browser, url: str, viewport: dict):
    """open_page, once the page is live and shows price and equity."""
    context, page, errors = open_page(browser, url, viewport)
    expect(page.locator("#conn-text")).to_have_text("live", timeout=15000)
    expect(page.locator("#price")).not_to_have_text("—", timeout=15000)
    expect(page.locator("#equity")).not_to_have_text("—", timeout=15000)
    return context, page, errors


@pytest.mark.parametrize("viewport", [PHONE, TABLET, DESKTOP], ids=["400px", "768px", "1400px"])
def test_every_part_fits_and_every_control_is_reachable(bot: Bot, browser, viewport):
    context, page, errors = open_live(browser, bot.url + "/", viewport)
    try:
        expect(page.locator("#fills tbody tr:not(.empty)").first).to_be_visible(timeout=60000)
        assert horizontal_overflow(page) == 0
        assert overlaps(page, HEADER) == []
        assert overlaps(page, [".chart-card", ".side > .card:first-child"]) == []
        assert overlaps(page, ["#apply", ".side > .card:nth-child(2)"]) == []
        assert covered_by(page, "#apply") is None
        assert covered_by(page, "#fills-csv") is None
        assert height(page, ".table-wrap") >= 100            # "Recent fills" was squeezed to 26 px
        assert height(page, "#chart") >= 200
        assert cut_texts(page, ".value, .range, .pill") == []
        screenshot(page, f"bot_page_{viewport['width']}x{viewport['height']}.png")
        assert errors == []
    finally:
        context.close()


def test_price_in_the_title_and_the_equity_and_pnl_chart(bot: Bot, browser):
    context, page, errors = open_live(browser, bot.url + "/", DESKTOP)
    try:
        expect(page).to_have_title(re.compile(r"^\d[\d,]*\.\d+ SOL_USDC_PERP · paper_web_01$"))
        points = len(bot.get("/api/pnl").json())
        assert points >= 1
        expect(page.locator("#pnl-chart")).to_have_attribute("aria-label", re.compile(r", (\d+) points, equity [\d,]+\.\d\d"))
        label = page.locator("#pnl-chart").get_attribute("aria-label")
        assert int(re.search(r"(\d+) points", label).group(1)) >= points
        assert errors == []
    finally:
        context.close()


def test_an_adjustment_is_confirmed_and_a_range_without_the_price_is_warned_about(bot: Bot, browser):
    context, page, errors = open_live(browser, bot.url + "/", PHONE)
    try:
        before = bot.get("/api/status").json()["grid"]
        price = bot.get("/api/status").json()["price"]
        page.fill("#lower", str(round(price + 30)))
        page.fill("#upper", str(round(price + 40)))
        page.click("#apply")
        if page.locator("#token-row").is_visible():         # asked once per tab
            page.fill("#token", bot.token)
            page.click("#apply")
        expect(page.locator("#confirm")).to_be_visible()
        expect(page.locator("#confirm-warn")).to_be_visible()
        expect(page.locator("#confirm-warn")).to_contain_text("outside the new range")
        page.click("#confirm-no")
        expect(page.locator("#confirm")).to_be_hidden()
        grid = bot.get("/api/status").json()["grid"]
        assert (grid["lower"], grid["upper"]) == (before["lower"], before["upper"])   # nothing sent

        lower, upper = round(price - 12), round(price + 12)
        page.fill("#lower", str(lower))
        page.fill("#upper", str(upper))
        page.click("#apply")
        expect(page.locator("#confirm")).to_be_visible()
        expect(page.locator("#confirm-warn")).to_be_hidden()      # the price is inside: no warning
        page.click("#confirm-yes")
        expect(page.locator("#adjust-msg")).to_contain_text("Range now", timeout=45000)
        grid = bot.get("/api/status").json()["grid"]
        assert (grid["lower"], grid["upper"]) == (lower, upper)
        assert errors == []
    finally:
        context.close()


def test_fill_history_pages_beyond_the_first_hundred_and_exports_csv(home, browser):
    bot = start_bot(home, "paper_fills_01", free_port(), interval=0.02, grid_num=60, boundary_action="adjust_range")
    context = None
    try:
        wait_for(lambda: (bot.get("/api/status").json().get("fill_count") or 0) > 100, 240, "more than 100 fills")
        context, page, errors = open_live(browser, bot.url + "/", TABLET)
        rows = page.locator("#fills tbody tr:not(.empty)")
        expect(rows).to_have_count(100, timeout=15000)
        expect(page.locator("#fills-more")).to_be_visible()
        page.click("#fills-more")
        expect(rows).not_to_have_count(100, timeout=15000)
        assert rows.count() > 100

        # the bot trades on: what was booked before the export must be in it, and nothing after the count below
        newest = bot.get("/api/fills", params={"limit": 1}).json()[0]
        before = bot.get("/api/status").json()["fill_count"]
        with page.expect_download() as download:
            page.click("#fills-csv")
        text = download.value.path().read_text()
        table = list(csv.DictReader(io.StringIO(text)))
        after = bot.get("/api/status").json()["fill_count"]
        assert 101 <= before <= len(table) <= after
        ids = [r["trade_id"] for r in table]
        assert len(set(ids)) == len(ids)
        assert [r["time_utc"] for r in table] == sorted(r["time_utc"] for r in table)   # oldest first
        assert newest["trade_id"] in ids
        assert errors == []
    finally:
        if context is not None:
            context.close()
        stop_bot(bot)
