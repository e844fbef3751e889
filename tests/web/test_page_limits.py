"""The page refuses what it cannot handle without costing the bot: hostile bodies get a 400,
a flood of connections a 503, and the bot's threads stay bounded.

Before, a 400-digit integer or 2,000-deep JSON gave a 500, and 300 idle connections plus 300
websockets took a bot from 4 to 1,505 threads and 95 MB.
"""
from __future__ import annotations

import socket

import psutil
import pytest
import requests

from tests.conftest import wait_for
from tests.web.paper_bot import Bot
from web.connections import MAX_CONNECTIONS

ADJUST = "/api/grid/adjust"


@pytest.mark.parametrize("body,words", [
    ('{"grid_lower_price": ' + "9" * 400 + "}", ["400 characters"]),
    ("[" * 2000 + "]" * 2000, ["2000 levels deep"]),
    ('{"grid_lower_price": 141, "grid_lower_price": 139}', ["duplicate key"]),
    ('{"grid_lower_price": NaN}', ["NaN"]),
])
def test_hostile_json_is_a_400_with_a_message(bot: Bot, body: str, words: list[str]):
    before = bot.get("/api/status").json()["grid"]
    r = bot.post(ADJUST, data=body, headers={"Authorization": f"Bearer {bot.token}",
                                             "Content-Type": "application/json"})
    assert r.status_code == 400, (r.status_code, r.text[:300])
    for word in words:
        assert word in r.json()["error"], r.json()
    after = bot.get("/api/status").json()["grid"]
    assert (after["lower"], after["upper"]) == (before["lower"], before["upper"])


def open_websocket(port: int) -> tuple[socket.socket, str]:
    """A Socket.IO websocket opened straight away (no polling first); returns it and its status line."""
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.sendall(b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
              b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
    return s, s.recv(4096).split(b"\r\n", 1)[0].decode()


def page_answers(bot: Bot) -> int | None:
    try:
        return bot.get("/health").status_code
    except requests.RequestException:
        return None


def test_a_connection_flood_gets_503_and_keeps_the_bot_small(bot: Bot):
    proc = psutil.Process(bot.proc.pid)
    threads_before = proc.num_threads()
    held: list[socket.socket] = []
    try:
        statuses = []
        for _ in range(150):
            s, line = open_websocket(bot.port)
            held.append(s)
            statuses.append(line.split()[1])
        for _ in range(150):
            held.append(socket.create_connection(("127.0.0.1", bot.port), timeout=30))  # idle: sends nothing
        assert statuses.count("101") <= MAX_CONNECTIONS and "503" in statuses, statuses
        busy = bot.get("/api/status")
        assert busy.status_code == 503 and "too many connections" in busy.json()["error"]
        # a websocket costs the page up to 4 threads (handler, socket reader, engine.io writer, ping)
        assert proc.num_threads() <= threads_before + 4 * MAX_CONNECTIONS + 10, proc.num_threads()
        assert bot.proc.poll() is None
    finally:
        for s in held:
            s.close()
    wait_for(lambda: page_answers(bot) == 200, 60, "the page to answer again once the flood closed")
