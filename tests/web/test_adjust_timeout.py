"""An adjustment the loop has begun is never answered "withdrawn": the page reports its real outcome.

bot/runtime.py's BotRuntime behind the real page over real HTTP; the test plays the bot's loop thread
(take the request, mark it running as Bot.serve_adjustments does, apply it slowly).
"""
from __future__ import annotations

import threading
import time

import pytest
import requests

from bot import runtime as bot_runtime
from core.paths import InstancePaths
from core.web_token import read_token
from tests.conftest import free_port
from web.server import start_web

GRID = {"lower": 140.0, "upper": 160.0, "num": 21, "mode": "arithmetic", "type": "neutral", "levels": [140.0, 160.0]}
TIMEOUT_S = 0.5


@pytest.fixture
def page(tmp_path, monkeypatch):
    monkeypatch.setattr(bot_runtime, "ADJUST_TIMEOUT_S", TIMEOUT_S)
    runtime = bot_runtime.BotRuntime("adj_t1", db=None)
    runtime.publish({"instance_id": "adj_t1", "state": "running", "price": 150.0, "grid": GRID}, [])
    paths = InstancePaths("adj_t1", tmp_path / "logs" / "adj_t1")
    port = start_web(runtime, "127.0.0.1", free_port(), paths)
    return runtime, f"http://127.0.0.1:{port}", {"Authorization": f"Bearer {read_token(paths.web_token)}"}


def slow_loop(runtime: bot_runtime.BotRuntime, apply_s: float) -> threading.Thread:
    def loop() -> None:
        lower, upper, future = runtime.requests.get(timeout=10)
        if future.set_running_or_notify_cancel():
            time.sleep(apply_s)
            future.set_result({**GRID, "lower": lower, "upper": upper})

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    return thread


def adjust(base: str, auth: dict) -> requests.Response:
    return requests.post(f"{base}/api/grid/adjust", json={"grid_lower_price": 145, "grid_upper_price": 155},
                         headers=auth, timeout=10)


def test_an_adjustment_that_outlasts_the_timeout_reports_its_real_outcome(page):
    runtime, base, auth = page
    slow_loop(runtime, TIMEOUT_S * 1.5).join(0)
    resp = adjust(base, auth)
    assert resp.status_code == 200, resp.text
    assert resp.json()["grid"]["lower"] == 145 and resp.json()["grid"]["upper"] == 155


def test_an_adjustment_still_applying_after_two_timeouts_is_503_still_being_applied(page):
    runtime, base, auth = page
    thread = slow_loop(runtime, TIMEOUT_S * 3)
    resp = adjust(base, auth)
    assert resp.status_code == 503
    assert "still being applied" in resp.json()["error"] and "withdrawn" not in resp.json()["error"]
    thread.join(10)


def test_an_adjustment_the_loop_never_took_is_withdrawn(page):
    runtime, base, auth = page
    resp = adjust(base, auth)
    assert resp.status_code == 503 and "withdrawn" in resp.json()["error"]
    _, _, future = runtime.requests.get_nowait()
    assert future.cancelled()               # the loop will skip it
