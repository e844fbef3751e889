"""Each fill the bot books is also an event in logs/{id}/events.jsonl, for the notifier's fill
alerts (issue 13: off by default; the notifier filters, the bot only records)."""
from __future__ import annotations

from core.events import FILL, read_events
from tests.conftest import free_port, kill_home_processes, wait_for
from tests.web.paper_bot import make_home, start_bot, stop_bot


def test_every_booked_fill_is_an_event_with_side_price_and_quantity(tmp_path):
    home = make_home(tmp_path)
    bot = start_bot(home, "fills_ev_01", free_port())
    try:
        def fill_events() -> list[dict]:
            found, _ = read_events(bot.paths.events, 0)
            return [e for e in found if e["kind"] == FILL]

        first = wait_for(fill_events, 90, "a fill event")[0]
        assert first["instance"] == "fills_ev_01" and first["payload"]["symbol"] == "SOL_USDC_PERP"
        assert first["payload"]["side"] in ("buy", "sell") and first["payload"]["qty"] > 0
        seen = (first["payload"]["side"], first["payload"]["price"], first["payload"]["qty"])

        def booked() -> bool:   # a turn commits its fills when it ends; the event is appended as it books
            return seen in {(f["side"], f["price"], f["qty"]) for f in bot.get("/api/fills?limit=500").json()}

        wait_for(booked, 30, f"the page to list the fill {seen}")
    finally:
        stop_bot(bot)
        kill_home_processes(home)
