"""Prometheus text exposition of one bot (format 0.0.4), written out: a dozen gauges need no library."""
from __future__ import annotations

import math
from typing import Any, Iterable

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# (metric name, type, help, how to read it from the snapshot)
_FROM_SNAPSHOT: tuple[tuple[str, str, str, Any], ...] = (
    ("gridbot_price", "gauge", "Last price seen by the bot", lambda s: s.get("price")),
    ("gridbot_position", "gauge", "Signed position size (base units)", lambda s: (s.get("position") or {}).get("qty")),
    ("gridbot_equity", "gauge", "Account equity (quote units)", lambda s: s.get("equity")),
    ("gridbot_realized_pnl", "gauge", "Realized PnL (quote units)", lambda s: s.get("realized_pnl")),
    ("gridbot_unrealized_pnl", "gauge", "Unrealized PnL (quote units)", lambda s: s.get("unrealized_pnl")),
    ("gridbot_grid_profit", "gauge", "Profit booked by closed grid round trips", lambda s: s.get("grid_profit")),
    ("gridbot_fees_total", "counter", "Fees paid (quote units)", lambda s: s.get("fees")),
    ("gridbot_volume_total", "counter", "Traded volume (quote units)", lambda s: s.get("volume")),
    ("gridbot_open_orders", "gauge", "Orders resting on the exchange", lambda s: s.get("open_order_count")),
    ("gridbot_fills_total", "counter", "Fills since the instance began", lambda s: s.get("fill_count")),
    ("gridbot_grid_lower_price", "gauge", "Lower bound of the grid", lambda s: (s.get("grid") or {}).get("lower")),
    ("gridbot_grid_upper_price", "gauge", "Upper bound of the grid", lambda s: (s.get("grid") or {}).get("upper")),
    ("gridbot_uptime_seconds", "gauge", "Seconds since the bot process started", lambda s: s.get("uptime_s")),
)


def _label_value(text: Any) -> str:
    return str(text).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: Any) -> str | None:
    if isinstance(value, bool):
        return "1" if value else "0"
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "+Inf" if number > 0 else "-Inf"
    return repr(number)


def render(snapshot: dict[str, Any], loop_age: float, restarts: int | None) -> str:
    """The /metrics body; a value the bot does not know yet is left out rather than faked."""
    labels = (f'instance="{_label_value(snapshot.get("instance_id", ""))}",'
              f'symbol="{_label_value(snapshot.get("symbol", ""))}"')
    rows: list[tuple[str, str, str, Any]] = [("gridbot_up", "gauge", "1 while the bot process serves this page", 1)]
    rows += [(name, kind, help_, read(snapshot)) for name, kind, help_, read in _FROM_SNAPSHOT]
    rows.append(("gridbot_seconds_since_last_loop", "gauge", "Seconds since the trading loop last turned", loop_age))
    if restarts is not None:
        rows.append(("gridbot_restarts_total", "counter", "Restarts by the supervisor", restarts))
    return "".join(_lines(rows, labels))


def _lines(rows: Iterable[tuple[str, str, str, Any]], labels: str) -> Iterable[str]:
    for name, kind, help_, value in rows:
        text = _number(value)
        if text is None:
            continue
        yield f"# HELP {name} {help_}\n# TYPE {name} {kind}\n{name}{{{labels}}} {text}\n"
