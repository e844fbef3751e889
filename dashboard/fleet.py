"""The fleet as the dashboard shows it: one row per instance, what needs attention first, and
totals per quote currency. Built from what the bots and supervisors publish (the registry records
and logs/{id}/bot_status.json); stdlib and core only, so /metrics and tests need no Flask."""
from __future__ import annotations

import time
from pathlib import Path

from core.bot_status import read_bot_status
from core.instance_manager import InstanceRegistry
from core.paths import InstancePaths

# A live bot rewrites its status every turn; one this old says its loop (or its writer) stopped.
STALE_STATUS_S = 120.0
TROUBLE_STATES = ("fatal", "dead", "backoff", "waiting", "unresponsive", "orphaned")
MONEY = ("equity", "unrealized_pnl", "realized_pnl", "grid_profit", "fees")


def _num(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def range_position(price: float | None, lower: float | None, upper: float | None) -> dict:
    """Where the price sits in the grid: 0 at the lower edge, 1 at the upper, and the distance to
    each edge in percent of the price (negative once the price is outside on that side)."""
    if price is None or lower is None or upper is None or price <= 0 or upper <= lower:
        return {"in_range": None, "range_pos": None, "to_lower_pct": None, "to_upper_pct": None}
    return {"in_range": lower <= price <= upper, "range_pos": (price - lower) / (upper - lower),
            "to_lower_pct": (price - lower) / price * 100, "to_upper_pct": (upper - price) / price * 100}


def instance_row(home: Path, rec: dict, now: float) -> dict:
    """One instance: the supervisor's view (state, restarts, uptime, last error) joined with the
    bot's own books (price, range, position, PnL, equity)."""
    iid = rec["instance_id"]
    paths = InstancePaths.for_instance(home, iid, rec.get("log_dir"))
    bot = read_bot_status(paths.bot_status) or {}
    state = rec["state"]
    if state == "running" and bot.get("state") == "waiting":
        state = "waiting"                       # up, but the exchange is unreachable
    updated = _num(bot.get("updated_at"))
    stale = bool(rec.get("bot_alive")) and (updated is None or now - updated > STALE_STATUS_S)
    price = _num(bot.get("price"))
    row = {
        "instance_id": iid, "state": state, "alive": bool(rec.get("alive")),
        "exchange": bot.get("exchange") or rec.get("exchange"), "symbol": bot.get("symbol") or rec.get("symbol"),
        "quote": bot.get("quote"), "price": price,
        "grid_lower": _num(bot.get("grid_lower")), "grid_upper": _num(bot.get("grid_upper")),
        "position": _num(bot.get("position")), "entry_price": _num(bot.get("entry_price")),
        **{k: _num(bot.get(k)) for k in MONEY},
        # a bot that is gone rests no orders we know of: its last count would be a lie
        "fill_count": bot.get("fill_count"),
        "open_order_count": bot.get("open_order_count") if rec.get("bot_alive") else None,
        "books_live": bool(rec.get("bot_alive")) and not stale,
        "restarts": int(rec.get("restart_count") or 0), "uptime_s": rec.get("uptime_s"),
        "web_port": rec.get("web_port"), "status_age_s": None if updated is None else round(now - updated, 1),
        "last_error": rec.get("last_error") or rec.get("stop_reason") or bot.get("message"),
    }
    row.update(range_position(price, row["grid_lower"], row["grid_upper"]))
    reasons = []
    if rec.get("needs_attention") or state in TROUBLE_STATES:
        reasons.append(state)
    if row["in_range"] is False and row["alive"]:
        reasons.append("price outside the range")
    if stale:
        reasons.append("no status for " + ("ever" if updated is None else f"{now - updated:.0f} s"))
    row["attention"] = "; ".join(reasons) or None
    return row


def fleet(home: Path, now: float | None = None) -> dict:
    """Every instance of the home (attention first, then by id) and the totals per quote."""
    now = time.time() if now is None else now
    rows = [instance_row(home, rec, now) for rec in InstanceRegistry(home).list_instances(include_dead=True)]
    rows.sort(key=lambda r: (r["attention"] is None, not r["alive"], r["instance_id"]))
    totals: dict[str, dict] = {}
    for r in rows:
        if r["quote"] is None or not r["alive"]:
            continue
        t = totals.setdefault(r["quote"], {"quote": r["quote"], "instances": 0, **{k: 0.0 for k in MONEY}})
        t["instances"] += 1
        for k in MONEY:
            t[k] += r[k] or 0.0
    return {"instances": rows, "totals": sorted(totals.values(), key=lambda t: t["quote"]),
            "attention": sum(1 for r in rows if r["attention"]), "generated_at": now}
