"""The dashboard over a real fleet: what it shows, its /metrics (read by Prometheus's own parser),
the targets file, and each bot's page, API and Socket.IO through /bot/<id>/ (issue 14, 1, 2, 4)."""
from __future__ import annotations

import json
import re

import pytest
import requests
import socketio
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import REPO, wait_for
from tests.dashboard.conftest import DEAD, LIVE, Dashboard

pytestmark = pytest.mark.slow


def rows(dash: Dashboard) -> dict[str, dict]:
    return {r["instance_id"]: r for r in dash.get("/api/fleet").json()["instances"]}


def test_one_row_per_instance_with_its_books_and_what_needs_attention_first(fleet: Dashboard):
    view = fleet.get("/api/fleet").json()
    ids = [r["instance_id"] for r in view["instances"]]
    assert sorted(ids) == sorted(LIVE + (DEAD,))
    assert ids[0] == DEAD and view["attention"] >= 1                   # the crashed one first
    dead = view["instances"][0]
    assert dead["state"] == "dead" and dead["attention"] and not dead["alive"]
    assert dead["open_order_count"] is None and dead["books_live"] is False
    for iid in LIVE:
        r = rows(fleet)[iid]
        bot = json.loads((fleet.home / "logs" / iid / "bot_status.json").read_text())
        assert r["state"] == "running" and r["alive"] and r["exchange"] == "paper"
        assert r["symbol"] == bot["symbol"] and r["quote"] == bot["quote"]
        assert r["grid_lower"] == 140 and r["grid_upper"] == 160 and r["price"] is not None
        assert r["to_lower_pct"] == pytest.approx((r["price"] - 140) / r["price"] * 100)
        assert r["to_upper_pct"] == pytest.approx((160 - r["price"]) / r["price"] * 100)
        assert 0 <= r["range_pos"] <= 1 and r["in_range"] is True
        for key in ("equity", "unrealized_pnl", "realized_pnl", "grid_profit", "position", "uptime_s"):
            assert r[key] is not None, key
        assert r["restarts"] == 0 and r["web_port"]
    quotes = {t["quote"]: t for t in view["totals"]}
    assert set(quotes) == {rows(fleet)[LIVE[0]]["quote"]}
    total = quotes[rows(fleet)[LIVE[0]]["quote"]]
    assert total["instances"] == 2 and total["equity"] > 19000             # two paper accounts of 10000


def test_fleet_metrics_parse_with_prometheus_parser_and_label_every_instance(fleet: Dashboard):
    r = fleet.get("/metrics")
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    families = {f.name: f for f in text_string_to_metric_families(r.text)}
    up = {s.labels["instance"]: s for s in families["gridbot_fleet_up"].samples}
    assert set(up) == set(LIVE + (DEAD,))
    assert up[DEAD].value == 0 and up[DEAD].labels["state"] == "dead"
    assert all(up[i].value == 1 for i in LIVE)
    equity = {s.labels["instance"]: s for s in families["gridbot_fleet_equity"].samples}
    assert set(LIVE) <= set(equity)
    assert all(s.labels["exchange"] == "paper" and s.labels["quote"] for s in equity.values())
    attention = {s.labels["instance"]: s.value for s in families["gridbot_fleet_needs_attention"].samples}
    assert attention[DEAD] == 1
    assert families["gridbot_fleet_instances"].samples[0].value == 3


def test_the_prometheus_targets_file_names_the_fleet_and_each_live_bot(fleet: Dashboard):
    path = fleet.home / "logs" / "dashboard" / "prometheus_targets.json"
    groups = wait_for(lambda: path.exists() and json.loads(path.read_text()), 30, "the targets file")
    by_job = {}
    for g in groups:
        by_job.setdefault(g["labels"]["job"], []).append(g)
    assert by_job["gridbot_fleet"][0]["targets"] == [f"127.0.0.1:{fleet.port}"]
    bots = {g["labels"]["instance_id"]: g for g in by_job["gridbot"]}
    assert set(bots) == set(LIVE)                                   # the dead one is not scraped
    for iid, g in bots.items():               # each path really serves that bot's metrics
        r = fleet.get(g["labels"]["__metrics_path__"])
        assert r.status_code == 200 and f'instance="{iid}"' in r.text


def test_a_bot_page_and_api_through_the_proxy(fleet: Dashboard):
    iid = LIVE[0]
    direct = requests.get(f"http://127.0.0.1:{rows(fleet)[iid]['web_port']}/api/status", timeout=10).json()
    via = fleet.get(f"/bot/{iid}/api/status").json()
    assert via["instance_id"] == iid and via["grid"] == direct["grid"]
    page = fleet.get(f"/bot/{iid}/")
    assert page.status_code == 200 and f'data-instance="{iid}"' in page.text
    assert 'href="static/app.css"' in page.text
    assert fleet.get(f"/bot/{iid}/static/app.js").status_code == 200
    moved = fleet.get(f"/bot/{iid}", allow_redirects=False)
    assert moved.status_code == 308 and moved.headers["Location"].endswith(f"/bot/{iid}/")
    csv = fleet.get(f"/bot/{iid}/api/fills.csv")
    assert csv.status_code == 200 and csv.text.startswith("time_utc,trade_id")
    assert fleet.get("/bot/nobody/api/status").status_code == 404
    gone = fleet.get(f"/bot/{DEAD}/api/status")
    assert gone.status_code == 502 and "dead" in gone.json()["error"]
    # the bot's own write API keeps its own token, also through the proxy
    assert fleet.post(f"/bot/{iid}/api/grid/adjust", json={"grid_upper_price": 161}).status_code == 401


@pytest.mark.parametrize("transport", ["websocket", "polling"])
def test_socketio_through_the_proxy(fleet: Dashboard, transport):
    iid = LIVE[1]
    for _ in range(5):       # each handshake races the bot's first packet: it once stalled 25 s in 2 of 3
        quick = socketio.Client(reconnection=False)
        quick.connect(fleet.url, socketio_path=f"/bot/{iid}/socket.io", transports=[transport], wait_timeout=20)
        quick.disconnect()
    got: list[dict] = []
    client = socketio.Client(reconnection=False)
    client.on("status_update", lambda data: got.append(data))
    client.connect(fleet.url, socketio_path=f"/bot/{iid}/socket.io", transports=[transport], wait_timeout=20)
    try:
        assert client.transport() == transport
        wait_for(lambda: len(got) >= 2, 30, "two status updates through the proxy")
        assert got[-1]["instance_id"] == iid and got[-1]["ts"] > got[0]["ts"] - 1
    finally:
        client.disconnect()


def test_a_foreign_host_is_refused_against_dns_rebinding(fleet: Dashboard):
    for path in ("/", "/api/fleet", f"/bot/{LIVE[0]}/api/status", "/metrics"):
        r = fleet.get(path, headers={"Host": f"attacker.example:{fleet.port}"})
        assert r.status_code == 421, path
    assert fleet.get("/api/fleet", headers={"Host": f"localhost:{fleet.port + 1}"}).status_code == 200  # a tunnel's port


def test_the_grafana_dashboard_asks_only_for_metrics_the_fleet_exposes(fleet: Dashboard):
    doc = json.loads((REPO / "docs" / "grafana_fleet_dashboard.json").read_text())
    exprs = [t["expr"] for p in doc["panels"] for t in p["targets"]]
    wanted = {name for e in exprs for name in re.findall(r"gridbot_fleet_\w+", e)}
    exposed = {f.name for f in text_string_to_metric_families(fleet.get("/metrics").text)}
    assert len(wanted) >= 10 and wanted <= exposed, wanted - exposed
