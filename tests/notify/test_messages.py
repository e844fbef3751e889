"""notify/messages.py: every kind renders a short message naming the instance, its symbol and a command."""
from __future__ import annotations

import pytest

from core import events as ev
from core.events import KINDS, new_event
from notify.messages import BODY_MAX, render
from notify.settings import url_secret_parts

PAYLOADS = {
    ev.FATAL: {"reason": "gave up after 4 quick failures", "stderr_tail": ["Traceback", "ValueError: bad"]},
    ev.EXITED: {"state": "exited", "stop_reason": "price 171.2 left the range 140-160 (stop_only)"},
    ev.RESTART_LOOP: {"restarts": 3, "window_s": 600, "last": "bot exited with code 1"},
    ev.MEMORY_RESTART: {"reason": "memory 600 MB over memory_limit_mb 512"},
    ev.HANG_RESTART: {"reason": "hung: no heartbeat for 61.0s"},
    ev.UNRESPONSIVE: {"reason": "no check-in for 120 s"},
    ev.ORPHAN_ENDED: {"reason": "bot 4242 outlived its supervisor"},
    ev.WAITING: {"since": 0, "waited_s": 330, "message": "exchange unreachable: timeout"},
    ev.TRADING: {"waited_s": 420},
    ev.FILL: {"side": "buy", "qty": 0.5, "price": 148.2},
    ev.DAILY_SUMMARY: {"realized_pnl": 12.5, "fill_count": 40},
    ev.RELOADED: {"changes": ["strategy_config.quantity: 0.5 -> 0.3  (bot)"], "message": "bot applied"},
    ev.RELOAD_FAILED: {"reason": "restart needed", "changes": ["metadata.symbol: \"A\" -> \"B\"  (restart)"]},
}


@pytest.mark.parametrize("kind", sorted(set(KINDS) - {ev.RESUMED, ev.TEST}))
def test_each_instance_event_names_instance_and_symbol_and_stays_short(kind):
    title, body = render(new_event(kind, "bp_sol_01", PAYLOADS[kind]), "SOL_USDC_PERP", "config/active/bp_sol_01.json")
    assert "bp_sol_01 SOL_USDC_PERP" in title and len(body) <= BODY_MAX and len(title) < 60
    if kind not in (ev.FILL, ev.DAILY_SUMMARY, ev.TRADING):  # what needs the trader says what to run
        assert "daemon-manager " in body


def test_fatal_says_why_shows_the_last_stderr_line_and_how_to_start_again():
    _, body = render(new_event(ev.FATAL, "bp_sol_01", PAYLOADS[ev.FATAL]), "SOL_USDC_PERP", "config/active/bp_sol_01.json")
    assert "gave up after 4 quick failures" in body and "stderr: ValueError: bad" in body
    assert body.endswith("Then: daemon-manager start -c config/active/bp_sol_01.json -d")


def test_resumed_lists_what_came_back_and_what_did_not():
    title, body = render(new_event(ev.RESUMED, "(fleet)", {"started": ["a", "b"], "failed": {"c": "port 5003 in use"}}))
    assert title == "FLEET RESUMED: 1 failed" and "Started: a, b" in body and "Failed: c: port 5003 in use" in body


def test_a_long_reason_is_cut_to_fit_a_phone():
    _, body = render(new_event(ev.EXITED, "x", {"state": "exited", "stop_reason": "y" * 5000}))
    assert len(body) <= BODY_MAX


def test_the_token_parts_of_a_url_are_known_for_masking():
    parts = url_secret_parts("tgram://123456789:AAbbCCddEEff/-100987654321?format=text")
    assert "123456789:AAbbCCddEEff" in parts and "-100987654321" in parts
    assert "hunter2hunter2" in url_secret_parts("mailto://me:hunter2hunter2@smtp.example.com?to=a@b.c")


def test_resumed_shows_the_digest_of_what_happened_while_down_and_stays_short():
    down = [f"bp_{i:02d}: {i} fills booked on reconcile; position 2.5 -> 1 SOL_USDC_PERP; realized +1.20 USDC"
            for i in range(7)]
    _, body = render(new_event(ev.RESUMED, "(fleet)", {"started": [f"bp_{i:02d}" for i in range(7)], "digest": down}))
    assert down[0] in body and down[4] in body and down[5] not in body and "... and 2 more" in body
    assert len(body) <= BODY_MAX
