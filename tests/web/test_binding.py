"""Where the page listens and when /health gives up on the loop, each with its own real bot."""
from __future__ import annotations

import logging
import socket

import pytest

from tests.conftest import free_port
from tests.web.paper_bot import health_status, start_bot, stop_bot
from tests.conftest import wait_for
from web.binding import choose_host


@pytest.mark.slow
def test_taken_port_moves_the_page_to_the_next_one_and_web_port_says_so(home):
    wanted = free_port()
    with socket.socket() as stranger:
        stranger.bind(("127.0.0.1", wanted))
        stranger.listen(1)
        bot = start_bot(home, "paper_port_01", wanted)
        try:
            assert bot.port != wanted and bot.port > wanted
            assert int(bot.paths.web_port_file.read_text()) == bot.port
            assert bot.get("/health").json()["instance_id"] == "paper_port_01"
        finally:
            output = stop_bot(bot)
    assert f"web port {wanted} is taken" in output


@pytest.mark.slow
def test_health_is_503_once_the_loop_is_older_than_the_bound(home):
    # Between turns the bot refreshes its loop age about once a second; against a 0.3 s bound
    # /health is fresh right after each refresh and stale in between.
    bot = start_bot(home, "paper_stale_01", free_port(), env={"WEB_STALE_AFTER": "0.3"}, wait_healthy=False,
                    interval=5)
    try:
        wait_for(lambda: health_status(bot) == 200, 30, what="/health to say 200 right after a loop turn")
        body = wait_for(lambda: (r := bot.get("/health")).status_code == 503 and r.json(), 30,
                        what="/health to say 503")
        assert body["status"] == "stale" and body["instance_id"] == "paper_stale_01"
        assert body["loop_age_s"] > body["stale_after_s"] == 0.3
    finally:
        stop_bot(bot)


def test_leaving_loopback_is_allowed_but_logged(monkeypatch, caplog):
    monkeypatch.setenv("WEB_HOST", "0.0.0.0")
    with caplog.at_level(logging.WARNING, logger="web.binding"):
        assert choose_host(None) == "0.0.0.0"
    assert "not loopback" in caplog.text
    caplog.clear()
    monkeypatch.delenv("WEB_HOST")
    assert choose_host(None) == "127.0.0.1" and choose_host("::1") == "::1"
    assert caplog.text == ""
