"""A real headless Chromium loads the page of a real paper bot, adjusts its range, survives a drop."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.web.paper_bot import Bot

ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def price_text(value: float) -> str:
    return f"{value:,.2f}"


def test_page_shows_price_and_grid_and_adjusts_with_the_token(bot: Bot, browser):
    context = browser.new_context(viewport={"width": 1440, "height": 860})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        page.goto(bot.url + "/")
        expect(page.locator("#conn-text")).to_have_text("live", timeout=15000)
        expect(page.locator("#instance")).to_have_text("paper_web_01")
        expect(page.locator("#price")).not_to_have_text("—")
        grid = bot.get("/api/status").json()["grid"]
        expect(page.locator("#range")).to_have_text(f"{price_text(grid['lower'])} – {price_text(grid['upper'])}")
        assert page.locator("#chart").bounding_box()["height"] > 250
        levels = len(grid["levels"])
        expect(page.locator("#chart")).to_have_attribute("aria-label", re.compile(rf"against {levels} grid levels"))

        price = bot.get("/api/status").json()["price"]
        lower, upper = round(price - 11), round(price + 11)
        page.fill("#lower", str(lower))
        page.fill("#upper", str(upper))
        page.click("#apply")
        expect(page.locator("#token-row")).to_be_visible()   # asked once for the token
        page.fill("#token", bot.token)
        page.click("#apply")
        page.click("#confirm-yes")                             # an adjustment is confirmed first
        expect(page.locator("#adjust-msg")).to_contain_text("Range now", timeout=15000)
        expect(page.locator("#range")).to_have_text(f"{price_text(lower)} – {price_text(upper)}", timeout=15000)
        expect(page.locator("#token-row")).to_be_hidden()
        now = bot.get("/api/status").json()["grid"]
        assert (now["lower"], now["upper"]) == (lower, upper)

        # the token is remembered for this tab: a second adjustment does not ask again
        page.fill("#upper", str(upper + 1))
        page.click("#apply")
        page.click("#confirm-yes")
        expect(page.locator("#range")).to_have_text(f"{price_text(lower)} – {price_text(upper + 1)}", timeout=15000)

        expect(page.locator("#fills tbody tr:not(.empty)").first).to_be_visible(timeout=60000)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "web_page.png"))
        assert errors == []
    finally:
        context.close()


def test_page_comes_back_after_the_connection_drops(bot: Bot, browser):
    context = browser.new_context()
    page = context.new_page()
    try:
        page.goto(bot.url + "/")
        conn = page.locator("#conn-text")
        expect(conn).to_have_text("live", timeout=15000)
        context.set_offline(True)
        expect(conn).to_have_text("reconnecting…", timeout=30000)
        context.set_offline(False)
        expect(conn).to_have_text("live", timeout=30000)
        before = page.locator("#uptime").text_content()
        expect(page.locator("#uptime")).not_to_have_text(before, timeout=15000)  # updates flow again
    finally:
        context.close()
