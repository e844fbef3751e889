"""DNS rebinding: a page on a loopback port answers only to a loopback Host and Origin, or to the
hosts its config allows, for HTTP and the Socket.IO handshake alike (403 otherwise).

Before, `Host: evil.example` read /api/status and /api/orders and opened a Socket.IO session: a
web site that points its own name at 127.0.0.1 could read the bot from the trader's browser.
"""
from __future__ import annotations

import socket

import pytest

from tests.conftest import free_port, kill_home_processes
from tests.web.paper_bot import Bot, make_home, start_bot, stop_bot

EVIL = "evil.example"
HANDSHAKE = "/socket.io/?EIO=4&transport=polling"
PATHS = ["/", "/api/status", "/api/orders", "/health", "/metrics", HANDSHAKE]


def status_line(bot: Bot, path: str, headers: dict[str, str]) -> str:
    """The raw status line of one request: requests would not let us send a websocket upgrade."""
    lines = [f"GET {path} HTTP/1.1", *(f"{k}: {v}" for k, v in headers.items()), "Connection: close", "", ""]
    with socket.create_connection(("127.0.0.1", bot.port), timeout=10) as s:
        s.sendall("\r\n".join(lines).encode())
        return s.makefile("rb").readline().decode().strip()


@pytest.mark.parametrize("path", PATHS)
def test_a_foreign_host_is_refused(bot: Bot, path: str):
    r = bot.get(path, headers={"Host": f"{EVIL}:{bot.port}"})
    assert r.status_code == 403, (path, r.status_code, r.text[:200])
    assert EVIL in r.json()["error"] and "web_allowed_hosts" in r.json()["error"]
    assert "instance_id" not in r.text


@pytest.mark.parametrize("path", ["/api/status", HANDSHAKE])
def test_a_foreign_origin_is_refused_even_with_a_loopback_host(bot: Bot, path: str):
    r = bot.get(path, headers={"Origin": f"http://{EVIL}:{bot.port}"})
    assert r.status_code == 403 and EVIL in r.json()["error"]


def test_the_websocket_upgrade_with_a_foreign_host_is_refused(bot: Bot):
    upgrade = {"Upgrade": "websocket", "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}
    refused = status_line(bot, "/socket.io/?EIO=4&transport=websocket", {"Host": EVIL, **upgrade})
    assert refused.split()[1] == "403", refused


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::1]", "127.0.0.2", "LOCALHOST."])
def test_loopback_hosts_are_served(bot: Bot, host: str):
    r = bot.get("/api/status", headers={"Host": f"{host}:{bot.port}", "Origin": f"http://{host}:{bot.port}"})
    assert r.status_code == 200 and r.json()["instance_id"] == "paper_web_01"
    assert bot.get(HANDSHAKE, headers={"Host": f"{host}:{bot.port}"}).status_code == 200


@pytest.mark.slow
def test_a_host_the_config_allows_is_served(tmp_path):
    home = make_home(tmp_path / "home")
    allowed = start_bot(home, "allowed_01", free_port(), daemon_config={"web_allowed_hosts": ["grid.example.lan"]})
    try:
        served = allowed.get("/api/status", headers={"Host": "grid.example.lan:8443",
                                                     "Origin": "https://grid.example.lan:8443"})
        assert served.status_code == 200 and served.json()["instance_id"] == "allowed_01"
        assert allowed.get(HANDSHAKE, headers={"Host": "grid.example.lan"}).status_code == 200
        assert allowed.get("/api/status", headers={"Host": EVIL}).status_code == 403
    finally:
        stop_bot(allowed)
        kill_home_processes(home)
