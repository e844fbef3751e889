"""The bot's own published status: `logs/{id}/bot_status.json`, one small JSON object.

The bot (run.py) rewrites it atomically every loop turn; `list`, `resume`, the dashboard and the
notifier read it. Readers never import the trading code (no flask, ccxt or strategy): this file
is the whole contract between a running bot and the management plane's view of its books.

Fields (every key always present; numbers may be null before the first turn):
    instance_id, exchange, symbol, quote, state ("starting" | "trading" | "waiting" | "stopped"),
    message (why waiting or stopped, or null), price, grid_lower, grid_upper, position,
    entry_price, unrealized_pnl, realized_pnl, grid_profit, fees, equity, fill_count,
    open_order_count, updated_at (unix seconds).
"""
from __future__ import annotations

import os

from core import cjson  # json's text and values; json itself costs the supervisor (a reader) `re`
from core.proc import read_small

MAX_BYTES = 64 * 1024      # a status is about 500 bytes; anything bigger is not ours
FIELDS = ("instance_id", "exchange", "symbol", "quote", "state", "message", "price", "grid_lower",
          "grid_upper", "position", "entry_price", "unrealized_pnl", "realized_pnl", "grid_profit",
          "fees", "equity", "fill_count", "open_order_count", "updated_at")


def write_bot_status(path: str | os.PathLike, status: dict) -> None:
    """Write exactly FIELDS (missing ones as null), private to the user (positions are private)."""
    from core.atomic import write_text_atomic  # here, not above: tempfile costs the supervisor (a reader) 1 MB

    record = {name: status.get(name) for name in FIELDS}
    write_text_atomic(path, cjson.dumps(record, separators=(",", ":")), mode=0o600)


def read_bot_status(path: str | os.PathLike) -> dict | None:
    """The last published status, or None when absent, unreadable, oversized or not ours.

    read_small, not open(): `list` reads one per instance, and the buffered io stack (fstat,
    ioctl, lseek, a second read) doubles the cost of so small a file."""
    try:
        raw = read_small(path, MAX_BYTES + 1)
        if len(raw) > MAX_BYTES:
            return None
        data = cjson.loads(raw)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
