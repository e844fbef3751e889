"""The daily summary (off by default): each instance's books from its bot_status.json, and the fleet's.

Made by the notifier once a day at notify.daily_summary_hour (server local time), as events in
logs/.fleet.events.jsonl, so they travel the same durable, retried path as every other alert.
"Today" figures are the change since the previous summary (kept in the notifier's state).
"""
from __future__ import annotations

from pathlib import Path

from core.bot_status import read_bot_status
from core.events import DAILY_SUMMARY, FLEET, new_event

BOOKS = ("realized_pnl", "grid_profit", "fill_count")


def _num(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def summary_events(home: Path, base: dict[str, dict]) -> tuple[list[dict], dict[str, dict]]:
    """One event per instance that publishes a status, plus one for the fleet; and the new base."""
    out, new_base = [], {}
    totals = {"instances": 0, "realized_pnl": 0.0, "grid_profit": 0.0, "fill_count": 0.0, "equity": 0.0,
              "fills_today": 0.0, "pnl_today": 0.0}
    for status_file in sorted(Path(home).glob("logs/*/bot_status.json")):
        status = read_bot_status(status_file)
        if not status:
            continue
        iid = status_file.parent.name
        books = {k: _num(status.get(k)) for k in BOOKS}
        before = base.get(iid) or {}
        today = {f"{k}_today": (books[k] - before[k]) if books[k] is not None and _num(before.get(k)) is not None else None
                 for k in BOOKS}
        payload = {"state": status.get("state"), "quote": status.get("quote"), **books, **today,
                   "position": _num(status.get("position")), "equity": _num(status.get("equity"))}
        out.append(new_event(DAILY_SUMMARY, iid, payload))
        new_base[iid] = books
        totals["instances"] += 1
        for key, value in (("realized_pnl", books["realized_pnl"]), ("grid_profit", books["grid_profit"]),
                           ("fill_count", books["fill_count"]), ("equity", payload["equity"]),
                           ("fills_today", today["fill_count_today"]), ("pnl_today", today["realized_pnl_today"])):
            totals[key] += value or 0.0
    if out:
        out.append(new_event(DAILY_SUMMARY, FLEET, {k: round(v, 4) for k, v in totals.items()}))
    return out, new_base
