"""What the management plane shows of a bot's books: its published bot_status.json, read lean.

`list`, `status` and `list --json` all go through here, so the state a trader sees (`waiting`
while the exchange is unreachable, from the bot's own word) and the money columns agree everywhere.
"""
from __future__ import annotations

import os

from core.bot_status import read_bot_status
from core.instance_files import BOT_STATUS, instance_dir

# the per-instance money fields `list` shows and `--json` carries
BOOK_FIELDS = ("symbol", "quote", "position", "unrealized_pnl", "realized_pnl", "grid_profit", "equity")
# summed per quote currency for the fleet total
TOTAL_FIELDS = ("unrealized_pnl", "realized_pnl", "grid_profit", "equity")


def books_of(home: str | os.PathLike, rec: dict) -> dict | None:
    """The last books an instance's bot published (None before its first turn)."""
    return read_bot_status(os.path.join(instance_dir(home, rec["instance_id"], rec.get("log_dir")), BOT_STATUS))


def shown_state(rec: dict, books: dict | None) -> str:
    """The registry's state, except that a live bot that says it is waiting (exchange unreachable)
    is `waiting`: its process runs, but it does not trade."""
    if rec["state"] == "running" and rec["bot_alive"] and books and books.get("state") == "waiting":
        return "waiting"
    return rec["state"]


def fleet_totals(rows: list[dict]) -> dict[str, dict[str, float]]:
    """Sum of TOTAL_FIELDS per quote currency over rows carrying books (quote None: '?')."""
    totals: dict[str, dict[str, float]] = {}
    for row in rows:
        if row.get("equity") is None and row.get("realized_pnl") is None:
            continue
        sums = totals.setdefault(row.get("quote") or "?", dict.fromkeys(TOTAL_FIELDS, 0.0))
        for key in TOTAL_FIELDS:
            sums[key] += row.get(key) or 0.0
    return dict(sorted(totals.items()))
