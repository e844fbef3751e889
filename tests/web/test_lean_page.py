"""The page only serves: a paper bot never loads the HTTP and WebSocket client stacks
(requests, aiohttp) that python-engineio would import for its clients (issue 12, goal 4), also
once a Socket.IO client has made the page build its Socket.IO server."""
from __future__ import annotations

from pathlib import Path

import socketio

from tests.web.paper_bot import Bot


def _mapped_packages(pid: int) -> set[str]:
    """Top-level site-packages names whose compiled extensions are mapped in a live process.

    /proc/PID/maps shows what really sits in the bot's memory: aiohttp, for one, cannot be
    imported without loading its C extensions.
    """
    found = set()
    for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
        path = line.split()[-1] if len(line.split()) >= 6 else ""
        if "site-packages/" in path:
            found.add(path.split("site-packages/", 1)[1].split("/", 1)[0])
    return found


def test_a_paper_bot_serving_its_page_loads_no_http_client_stack(bot: Bot):
    assert bot.get("/health").status_code == 200           # the page is up and serving
    client = socketio.Client(reconnection=False)
    client.connect(bot.url, wait_timeout=10)                # the page's Socket.IO server now exists
    try:
        mapped = _mapped_packages(bot.proc.pid)
    finally:
        client.disconnect()
    assert any(name.startswith(("markupsafe", "psutil")) for name in mapped), mapped  # the probe sees extensions
    assert not {name for name in mapped if name.startswith(("aiohttp", "yarl", "multidict", "frozenlist"))}, mapped
