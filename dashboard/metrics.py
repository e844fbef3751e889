"""Fleet metrics for Prometheus: every instance of the home in one scrape, labelled by instance,
exchange, symbol and quote; and a file_sd targets file so a Prometheus elsewhere finds this
dashboard (and each live bot's own /metrics) without hand-kept lists."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

from core.atomic import write_text_atomic
from web.metrics import CONTENT_TYPE, _label_value, _number  # noqa: F401  (CONTENT_TYPE re-exported)

# (metric, type, help, row key)
_ROWS = (
    ("gridbot_fleet_price", "gauge", "Last price seen by the bot", "price"),
    ("gridbot_fleet_position", "gauge", "Signed position size (base units)", "position"),
    ("gridbot_fleet_equity", "gauge", "Account equity (quote units)", "equity"),
    ("gridbot_fleet_unrealized_pnl", "gauge", "Unrealized PnL (quote units)", "unrealized_pnl"),
    ("gridbot_fleet_realized_pnl", "gauge", "Realized PnL (quote units)", "realized_pnl"),
    ("gridbot_fleet_grid_profit", "gauge", "Profit booked by closed grid round trips (quote units)", "grid_profit"),
    ("gridbot_fleet_fees", "gauge", "Fees paid (quote units)", "fees"),
    ("gridbot_fleet_grid_lower_price", "gauge", "Lower bound of the grid", "grid_lower"),
    ("gridbot_fleet_grid_upper_price", "gauge", "Upper bound of the grid", "grid_upper"),
    ("gridbot_fleet_range_position", "gauge", "Price inside the range: 0 lower edge, 1 upper edge", "range_pos"),
    ("gridbot_fleet_open_orders", "gauge", "Orders resting on the exchange", "open_order_count"),
    ("gridbot_fleet_restarts", "gauge", "Restarts by the supervisor", "restarts"),
    ("gridbot_fleet_uptime_seconds", "gauge", "Seconds since the supervisor started the instance", "uptime_s"),
    ("gridbot_fleet_status_age_seconds", "gauge", "Seconds since the bot last published its status", "status_age_s"),
)


def _labels(row: dict, **extra: str) -> str:
    pairs = {"instance": row["instance_id"], "exchange": row.get("exchange") or "",
             "symbol": row.get("symbol") or "", "quote": row.get("quote") or "", **extra}
    return ",".join(f'{k}="{_label_value(v)}"' for k, v in pairs.items())


def render_fleet(view: dict) -> str:
    """The /metrics body of the dashboard (text format 0.0.4)."""
    rows = view["instances"]
    out: list[str] = []

    def family(name: str, kind: str, help_: str, samples: Iterable[tuple[str, object]]) -> None:
        lines = [f"{name}{{{labels}}} {text}" if labels else f"{name} {text}"
                 for labels, value in samples if (text := _number(value)) is not None]
        if lines:
            out.append(f"# HELP {name} {help_}\n# TYPE {name} {kind}\n" + "\n".join(lines) + "\n")

    family("gridbot_fleet_instances", "gauge", "Instances known to this home", [("", len(rows))])
    family("gridbot_fleet_up", "gauge", "1 while the instance's supervisor is alive",
           [(_labels(r, state=r["state"]), 1 if r["alive"] else 0) for r in rows])
    family("gridbot_fleet_needs_attention", "gauge", "1 when the dashboard lists the instance first",
           [(_labels(r), 1 if r["attention"] else 0) for r in rows])
    for name, kind, help_, key in _ROWS:
        family(name, kind, help_, [(_labels(r), r.get(key)) for r in rows])
    return "".join(out)


def targets(view: dict, dashboard: str) -> list[dict]:
    """Prometheus file_sd groups: the dashboard's fleet /metrics, and each live bot's own /metrics
    through the dashboard's proxy (bot pages listen on loopback; the dashboard is the one door)."""
    groups = [{"targets": [dashboard], "labels": {"job": "gridbot_fleet"}}]
    for r in view["instances"]:
        if r["alive"] and r.get("web_port"):
            groups.append({"targets": [dashboard],
                           "labels": {"job": "gridbot", "__metrics_path__": f"/bot/{r['instance_id']}/metrics",
                                      "instance_id": r["instance_id"], "symbol": r.get("symbol") or "",
                                      "exchange": r.get("exchange") or ""}})
    return groups


def write_targets(path: Path, view: dict, dashboard: str) -> bool:
    """Rewrite the targets file when it would change (Prometheus re-reads it on change); True if written."""
    text = json.dumps(targets(view, dashboard), indent=2, sort_keys=True) + "\n"
    try:
        if path.read_text() == text:
            return False
    except OSError:
        pass
    write_text_atomic(path, text)
    return True
