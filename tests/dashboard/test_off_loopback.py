"""A dashboard bound off loopback (--host 10.x) is reachable by others: there reading needs the
fleet token too. Served by Werkzeug on 127.0.0.1 in this process, told it was bound elsewhere,
and asked with that Host, over real HTTP."""
from __future__ import annotations

import threading

import pytest
import requests
from werkzeug.serving import make_server

from dashboard.app import create_app
from tests.conftest import free_port

BOUND = "10.11.12.13"
TOKEN = "fleet-test-token"


@pytest.fixture
def served(home):
    server = make_server("127.0.0.1", free_port(), create_app(home, TOKEN, BOUND), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.port}", f"{BOUND}:{server.port}"
    server.shutdown()
    thread.join(timeout=5)


def test_off_loopback_reading_needs_the_fleet_token(served):
    url, host = served
    ask = lambda path, **kw: requests.get(url + path, headers={"Host": host, **kw.pop("headers", {})},  # noqa: E731
                                          allow_redirects=False, timeout=10, **kw)
    assert ask("/api/fleet").status_code == 401
    assert ask("/metrics").status_code == 401
    assert ask("/bot/any/api/status").status_code == 401
    root = ask("/")
    assert root.status_code == 302 and root.headers["Location"].endswith("/login")
    assert ask("/login").status_code == 200                         # the form itself is open
    assert ask("/api/fleet", headers={"Authorization": f"Bearer {TOKEN}"}).json()["instances"] == []
    assert ask("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    # still no foreign Host, token or not
    assert requests.get(url + "/api/fleet", headers={"Host": "attacker.example", "Authorization": f"Bearer {TOKEN}"},
                        timeout=10).status_code == 421
