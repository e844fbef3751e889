"""Socket.IO: a real python-socketio client receives the bot's live events."""
from __future__ import annotations

import queue

import socketio

from tests.web.paper_bot import Bot
from tests.conftest import wait_for
def collect(bot: Bot) -> tuple[socketio.Client, queue.Queue]:
    events: queue.Queue = queue.Queue()
    client = socketio.Client(reconnection=False)
    client.on("*", lambda event, data: events.put((event, data)))
    client.connect(bot.url, wait_timeout=10)
    return client, events


def next_event(events: queue.Queue, name: str, timeout: float = 60) -> dict:
    """The first `name` event, skipping others."""
    def pop():
        try:
            event, data = events.get(timeout=0.5)
        except queue.Empty:
            return None
        return data if event == name else None
    return wait_for(pop, timeout, what=f"a {name!r} event", interval=0)


def test_client_receives_status_updates_and_fills(bot: Bot):
    client, events = collect(bot)
    try:
        status = next_event(events, "status_update", timeout=15)
        assert status["instance_id"] == "paper_web_01" and status["price"] > 0 and "grid" in status
        assert status["ts"] > 0
        fill = next_event(events, "fill")
        assert fill["side"] in ("buy", "sell") and fill["price"] > 0
    finally:
        client.disconnect()


def test_adjustment_is_pushed_as_grid_adjusted(bot: Bot):
    client, events = collect(bot)
    try:
        price = bot.get("/api/status").json()["price"]
        lower, upper = round(price - 9, 2), round(price + 9, 2)
        r = bot.post("/api/grid/adjust", json={"grid_lower_price": lower, "grid_upper_price": upper},
                     headers={"Authorization": f"Bearer {bot.token}"})
        assert r.status_code == 200, r.text
        pushed = next_event(events, "grid_adjusted", timeout=15)
        assert abs(pushed["lower"] - lower) < 0.011 and abs(pushed["upper"] - upper) < 0.011
    finally:
        client.disconnect()
