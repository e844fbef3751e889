"""Order id -> client id of every order a ccxt adapter has seen, kept in the instance database.

ccxt's unified trade has no client id, so `exchanges/ccxt_exchange.py` matches each fill to its
order's client id here (the strategy books fills by client id).
"""
from __future__ import annotations

import time
from typing import Any, Iterable

CLIENT_IDS_SCHEMA = """
CREATE TABLE IF NOT EXISTS ccxt_client_ids (
    exchange TEXT, order_id TEXT, client_id INTEGER, recorded_ms INTEGER, PRIMARY KEY (exchange, order_id));
"""
CLIENT_IDS_KEEP_MS = 30 * 86_400_000     # older rows go at start; a fill of such an order asks fetch_order
CLIENT_IDS_IN_MEMORY = 20_000            # the rest is read back from the database when a fill needs it


class OrderClientIds:
    """Order id -> client id of every order the adapter has seen, kept in the instance database.

    ccxt's unified trade has no client id, so a fill is matched to its order's client id here.
    `None` is an answer too (an order without one of our ids: manual, or never ours), so nothing
    is asked of the venue twice. Without a database the map lives as long as the object.
    """

    def __init__(self, exchange: str, db: Any = None) -> None:
        self.exchange = exchange
        self.db = db
        self._memory: dict[str, int | None] = {}
        if db is not None:
            db.ensure_schema(CLIENT_IDS_SCHEMA)
            with db.transaction() as conn:
                conn.execute("DELETE FROM ccxt_client_ids WHERE exchange=? AND recorded_ms<?",
                             (exchange, int(time.time() * 1000) - CLIENT_IDS_KEEP_MS))

    def lookup(self, order_id: str) -> tuple[bool, int | None]:
        """(known, client id) of an order id."""
        if order_id in self._memory:
            return True, self._memory[order_id]
        if self.db is None:
            return False, None
        rows = self.db.query("SELECT client_id FROM ccxt_client_ids WHERE exchange=? AND order_id=?",
                             (self.exchange, order_id))
        if not rows:
            return False, None
        self._keep(order_id, rows[0]["client_id"])
        return True, rows[0]["client_id"]

    def remember(self, pairs: Iterable[tuple[str, int | None]]) -> None:
        """Record (order id, client id) pairs; a known client id is never replaced by None."""
        new = {}
        for order_id, client_id in pairs:
            if not order_id or order_id == "None":
                continue
            known, old = self.lookup(order_id)
            if not known or (old is None and client_id is not None):
                new[order_id] = client_id
        if not new:
            return
        for order_id, client_id in new.items():
            self._keep(order_id, client_id)
        if self.db is not None:
            now = int(time.time() * 1000)
            with self.db.transaction() as conn:
                conn.executemany("INSERT INTO ccxt_client_ids VALUES (?,?,?,?) ON CONFLICT(exchange, order_id) "
                                 "DO UPDATE SET client_id=excluded.client_id, recorded_ms=excluded.recorded_ms",
                                 [(self.exchange, oid, cid, now) for oid, cid in new.items()])

    def _keep(self, order_id: str, client_id: int | None) -> None:
        self._memory.pop(order_id, None)
        self._memory[order_id] = client_id
        if len(self._memory) > CLIENT_IDS_IN_MEMORY:
            del self._memory[next(iter(self._memory))]
