"""The fleet page and a bot page through the dashboard in a real headless Chromium, at 1400x1000
and at 400x900: everything fits, attention first, live updates, login and a confirmed stop that
the proxied bot page sees at once (issue 14: proof). Screenshots go to tests/artifacts/."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.dashboard.conftest import DEAD, LIVE, Dashboard, fleet  # noqa: F401  (the fleet fixture)
from tests.web.page_checks import (DESKTOP, PHONE, covered_by, cut_texts, horizontal_overflow, open_page, overlaps,
                                   screenshot)

pytestmark = [pytest.mark.slow, pytest.mark.browser]


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1400px", "400px"])
def test_the_fleet_page_fits_shows_attention_first_and_updates_live(fleet: Dashboard, browser, viewport):
    context, page, errors = open_page(browser, fleet.url + "/", viewport)
    try:
        cards = page.locator("article.card")
        expect(cards).to_have_count(3, timeout=15000)
        expect(cards.first).to_have_attribute("data-instance", DEAD)
        expect(cards.first).to_have_class(re.compile(r"\battn\b"))
        expect(cards.first.locator(".pill")).to_have_text("dead")
        expect(page.locator(".total")).to_have_count(1)
        live = page.locator(f"#card-{LIVE[0]}")
        expect(live.locator(".pill")).to_have_text("running")
        expect(live.locator(".price")).not_to_have_text("—")
        expect(live.locator("[data-f=lower]")).to_contain_text("%")
        uptime = live.locator("[data-f=uptime]").text_content()
        expect(live.locator("[data-f=uptime]")).not_to_have_text(uptime, timeout=15000)   # live updates
        assert horizontal_overflow(page) == 0
        assert overlaps(page, [".ident", ".who"]) == []
        assert cut_texts(page, ".price, .pill, .iid, dd") == []
        expect(cards.first.locator("[data-f=orders]")).to_have_text("—")     # a dead bot rests nothing we know of
        assert covered_by(page, f"#card-{LIVE[1]} .iid") is None
        screenshot(page, f"dashboard_{viewport['width']}x{viewport['height']}.png")
        assert errors == []
    finally:
        context.close()


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1400px", "400px"])
def test_a_bot_page_through_the_dashboard_is_live(fleet: Dashboard, browser, viewport):
    context, page, errors = open_page(browser, f"{fleet.url}/bot/{LIVE[0]}/", viewport)
    try:
        expect(page.locator("#conn-text")).to_have_text("live", timeout=15000)
        expect(page.locator("#instance")).to_have_text(LIVE[0])
        expect(page.locator("#state")).to_have_text("running", timeout=15000)
        expect(page.locator("#fills tbody tr:not(.empty)").first).to_be_visible(timeout=60000)
        assert horizontal_overflow(page) == 0
        screenshot(page, f"bot_page_proxied_{viewport['width']}x{viewport['height']}.png")
        assert errors == []
    finally:
        context.close()


def test_the_range_is_adjusted_from_a_proxied_bot_page(fleet: Dashboard, browser):
    iid = LIVE[0]
    token = (fleet.home / "logs" / iid / "web.token").read_text().strip()
    context, page, errors = open_page(browser, f"{fleet.url}/bot/{iid}/", PHONE)
    try:
        expect(page.locator("#state")).to_have_text("running", timeout=15000)
        price = fleet.get(f"/bot/{iid}/api/status").json()["price"]
        page.fill("#lower", str(round(price - 13)))
        page.fill("#upper", str(round(price + 13)))
        page.click("#apply")
        page.fill("#token", token)
        page.click("#apply")
        page.click("#confirm-yes")
        expect(page.locator("#adjust-msg")).to_contain_text("Range now", timeout=45000)
        grid = fleet.get(f"/bot/{iid}/api/status").json()["grid"]
        assert (grid["lower"], grid["upper"]) == (round(price - 13), round(price + 13))
        assert errors == []
    finally:
        context.close()


def test_login_and_a_confirmed_stop_which_the_proxied_bot_page_sees(fleet: Dashboard, browser):
    target = LIVE[1]
    context = browser.new_context(viewport=PHONE)
    try:
        bot_page = context.new_page()
        bot_page.goto(f"{fleet.url}/bot/{target}/")
        expect(bot_page.locator("#state")).to_have_text("running", timeout=15000)

        page = context.new_page()
        page.goto(fleet.url + "/")
        card = page.locator(f"#card-{target}")
        expect(card.locator("[data-act=stop]")).to_be_hidden(timeout=15000)     # reading only until logged in
        page.click("#login-link")
        page.fill("#token", "wrong")
        page.click("#login")
        expect(page.locator("#login-msg")).to_have_text("Wrong token.")
        page.fill("#token", fleet.token)
        page.click("#login")
        expect(page.locator("#logout")).to_be_visible(timeout=15000)
        cookies = {c["name"]: c for c in context.cookies()}
        assert cookies["fleet_session"]["httpOnly"] and cookies["fleet_session"]["sameSite"] == "Strict"

        card.locator("[data-act=stop]").click()
        expect(card.locator("[data-f=confirm]")).to_be_visible()
        expect(card.locator("[data-f=confirm-text]")).to_contain_text(f"Stop {target}?")
        card.locator("[data-f=confirm-no]").click()
        expect(card.locator("[data-f=confirm]")).to_be_hidden()
        expect(card.locator(".pill")).to_have_text("running")
        card.locator("[data-act=stop]").click()
        card.locator("[data-f=confirm-yes]").click()
        expect(card.locator(".pill")).to_have_text("stopped", timeout=60000)
        expect(card.locator("[data-act=start]")).to_be_visible()
        expect(bot_page.locator("#state")).to_have_text("stopped", timeout=15000)
        screenshot(page, "dashboard_after_stop_400x900.png")
    finally:
        context.close()
