"""Two bots started by the daemon serve two pages at once, each its own; a taken port is followed."""
from __future__ import annotations

import json
import re
import socket

import pytest
import requests
from playwright.sync_api import expect

from core.paths import InstancePaths
from tests.conftest import free_port, run_cli
from tests.web.paper_bot import write_paper_config
from tests.conftest import wait_for
pytestmark = [pytest.mark.slow, pytest.mark.browser]


def page_uptime(page) -> float:
    """The uptime the page shows ("42s", "3m 7s"), in seconds."""
    text = page.locator("#uptime").text_content() or ""
    units = {"d": 86400, "h": 3600, "m": 60, "s": 1}
    return sum(int(n) * units[u] for n, u in re.findall(r"(\d+)([dhms])", text)) if text != "—" else float("inf")


def health_of(port: int) -> dict:
    """/health of the page on `port`, or {} while nothing answers there."""
    try:
        return requests.get(f"http://127.0.0.1:{port}/health", timeout=10).json()
    except requests.ConnectionError:
        return {}


def test_two_daemon_started_bots_serve_their_own_pages(home, browser):
    sol_port, eth_port = free_port(), free_port()
    sol = write_paper_config(home, "paper_sol_01", sol_port, symbol="SOL_USDC_PERP")
    eth = write_paper_config(home, "paper_eth_02", eth_port, symbol="ETH_USDC_PERP")
    with socket.socket() as stranger:  # ETH's configured port is held by someone else
        stranger.bind(("127.0.0.1", eth_port))
        stranger.listen(1)
        try:
            for cfg in (sol, eth):
                started = run_cli(home, "start", "-c", str(cfg), "-d")
                assert started.returncode == 0, started.stdout + started.stderr

            eth_file = InstancePaths.for_instance(home, "paper_eth_02").web_port_file
            eth_real = int(wait_for(lambda: eth_file.exists() and eth_file.read_text().strip(), 30, what="ETH's web.port"))
            assert eth_real != eth_port

            def listed_ports():
                rows = json.loads(run_cli(home, "list", "--json").stdout)
                return {r["instance_id"]: r["web_port"] for r in rows}
            wait_for(lambda: listed_ports() == {"paper_sol_01": sol_port, "paper_eth_02": eth_real}, 30,
                     what="`list` to show the ports the pages really bound")

            pages = {"paper_sol_01": (sol_port, "SOL_USDC_PERP"), "paper_eth_02": (eth_real, "ETH_USDC_PERP")}
            context = browser.new_context()
            try:
                for instance_id, (port, symbol) in pages.items():
                    assert health_of(port)["instance_id"] == instance_id
                    metrics = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
                    assert f'gridbot_restarts_total{{instance="{instance_id}",symbol="{symbol}"}} 0' in metrics
                    page = context.new_page()
                    page.goto(f"http://127.0.0.1:{port}/")
                    expect(page.locator("#conn-text")).to_have_text("live", timeout=15000)
                    expect(page.locator("#instance")).to_have_text(instance_id)
                    expect(page.locator("#symbol")).to_have_text(symbol)
                    expect(page.locator("#price")).not_to_have_text("—")
                # both pages stay open and live at the same time
                for page, instance_id in zip(context.pages, pages):
                    expect(page.locator("#instance")).to_have_text(instance_id)
                    expect(page.locator("#conn-text")).to_have_text("live")

                # a restarted bot: its open page reconnects by itself and shows the new process
                sol_page = context.pages[0]
                # old enough that the new process's uptime is clearly smaller
                old_start = wait_for(lambda: (u := health_of(sol_port).get("uptime_s", 0)) > 3 and u, 30,
                                     what="the first SOL bot to be 3 s old")
                restarted = run_cli(home, "restart", "-i", "paper_sol_01")
                assert restarted.returncode == 0, restarted.stdout + restarted.stderr
                wait_for(lambda: health_of(sol_port).get("uptime_s", old_start) < old_start, 30,
                         what="a new bot process to answer on the same port")
                expect(sol_page.locator("#conn-text")).to_have_text("live", timeout=30000)
                wait_for(lambda: page_uptime(sol_page) < old_start, 30, what="the open page to show the new bot")
            finally:
                context.close()
        finally:
            stopped = run_cli(home, "stop-all")
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
