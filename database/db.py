"""The per-instance SQLite store: orders, fills, grid state, equity snapshots, events.

One file per instance in WAL mode, so the web threads read (through one shared reader connection)
while the trading loop writes (through its own); writes happen in explicit transactions, so a
SIGKILL leaves either the whole step or none of it.
Fills are keyed by the exchange's trade id: replaying the same fills never counts them twice.
Other components (the paper exchange) add their own tables through `ensure_schema`.
"""
from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

SCHEMA = """
CREATE TABLE IF NOT EXISTS orders (
    id TEXT PRIMARY KEY, client_id INTEGER, level INTEGER, role INTEGER, side TEXT,
    price REAL, qty REAL, filled_qty REAL DEFAULT 0, status TEXT, created_ms INTEGER,
    updated_ms INTEGER);
DROP INDEX IF EXISTS orders_status;
CREATE TABLE IF NOT EXISTS fills (
    trade_id TEXT PRIMARY KEY, order_id TEXT, client_id INTEGER, level INTEGER, role INTEGER,
    side TEXT, price REAL, qty REAL, fee REAL, is_maker INTEGER, timestamp INTEGER);
CREATE INDEX IF NOT EXISTS fills_ts ON fills(timestamp);
CREATE TABLE IF NOT EXISTS grid_state (key TEXT PRIMARY KEY, value TEXT, updated_ms INTEGER);
CREATE TABLE IF NOT EXISTS snapshots (
    timestamp INTEGER, price REAL, equity REAL, realized REAL, unrealized REAL,
    grid_profit REAL, position REAL, fees REAL);
CREATE TABLE IF NOT EXISTS events (timestamp INTEGER, kind TEXT, message TEXT, data TEXT);
"""


def now_ms() -> int:
    return int(time.time() * 1000)


class Database:
    """One instance's SQLite file: written by the thread that opened it, read from any thread."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._owner = threading.get_ident()
        self._writer = self._connect()
        self._depth = 0
        self._reader: sqlite3.Connection | None = None
        self._read_lock = threading.Lock()
        self.sending_path = self.path.with_name(self.path.name + "-sending")
        self._sending_noted = False         # the journal names placements no committed state does yet
        self._sending_saved = False         # a state saved since, in the open transaction
        self.ensure_schema(SCHEMA)

    # ---- connections and transactions ------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(str(self.path), timeout=10, isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=10000")
        return conn

    def _writer_conn(self) -> sqlite3.Connection:
        if threading.get_ident() != self._owner:
            raise RuntimeError("database writes belong to the thread that opened it (the trading loop)")
        return self._writer

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """All writes inside commit together; nested uses join the outer transaction."""
        conn = self._writer_conn()
        if self._depth:
            self._depth += 1
            try:
                yield conn
            finally:
                self._depth -= 1
            return
        conn.execute("BEGIN IMMEDIATE")
        self._depth = 1
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            self._sending_saved = False
            raise
        else:
            conn.execute("COMMIT")
            if self._sending_saved:
                self._clear_sending()
        finally:
            self._depth = 0

    def ensure_schema(self, script: str) -> None:
        self._writer_conn().executescript(script)

    def query(self, sql: str, params: tuple = ()) -> list[sqlite3.Row]:
        """Reads: the writer's own connection on the loop thread (it sees its open transaction);
        one shared reader connection for every other thread (the page's request threads come and
        go, so a connection per thread would leak)."""
        if threading.get_ident() == self._owner:
            return self._writer.execute(sql, params).fetchall()
        with self._read_lock:
            if self._reader is None:
                self._reader = self._connect()
            return self._reader.execute(sql, params).fetchall()

    def checkpoint(self) -> None:
        """Fold the WAL into the main file (at exit), so a copied .db file is complete."""
        self._writer_conn().execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def close(self) -> None:
        with self._read_lock:
            for conn in (self._reader, self._writer):
                if conn is not None:
                    try:
                        conn.close()
                    except sqlite3.Error:
                        pass
            self._reader = None

    # ---- fills -----------------------------------------------------------------------------
    def record_fill(self, fill: Any, level: int | None, role: int | None) -> bool:
        """Store a fill once; False if this trade id was already stored (a replay)."""
        with self.transaction() as conn:
            cur = conn.execute(
                "INSERT OR IGNORE INTO fills VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (fill.trade_id, fill.order_id, fill.client_id, level, role, fill.side, fill.price,
                 fill.qty, fill.fee, int(fill.is_maker), fill.timestamp))
            return cur.rowcount == 1

    def booked_qty(self, order_id: str) -> float:
        """The quantity of this order's fills in the ledger: what the books booked of it (rarely
        asked: an order adopted or restored without its own count, so no index for it)."""
        [(qty,)] = self.query("SELECT COALESCE(SUM(qty), 0) FROM fills WHERE order_id=?", (order_id,))
        return round(qty, 10)

    def recent_fills(self, limit: int = 50) -> list[dict]:
        rows = self.query("SELECT trade_id, side, price, qty, fee, timestamp, level, role FROM fills "
                          "ORDER BY timestamp DESC, rowid DESC LIMIT ?", (int(limit),))
        return [dict(r) for r in rows]

    # ---- orders ----------------------------------------------------------------------------
    def upsert_order(self, order: Any, level: int | None, role: int | None) -> None:
        ts = now_ms()
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO orders VALUES (?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT(id) DO UPDATE SET "
                "filled_qty=excluded.filled_qty, status=excluded.status, updated_ms=excluded.updated_ms",
                (order.id, order.client_id, level, role, order.side, order.price, order.qty,
                 order.filled_qty, order.status, order.timestamp or ts, ts))

    def has_order(self, order_id: str) -> bool:
        """Whether this instance placed (and recorded) the order: its fills are ours whenever they are dated."""
        return bool(self.query("SELECT 1 FROM orders WHERE id=?", (order_id,)))

    def set_order_status(self, order_id: str, status: str, filled_qty: float | None = None) -> None:
        with self.transaction() as conn:
            if filled_qty is None:
                conn.execute("UPDATE orders SET status=?, updated_ms=? WHERE id=?", (status, now_ms(), order_id))
            else:
                conn.execute("UPDATE orders SET status=?, filled_qty=?, updated_ms=? WHERE id=?",
                             (status, filled_qty, now_ms(), order_id))

    # ---- grid state ------------------------------------------------------------------------
    def save_state(self, key: str, value: Any) -> None:
        """Write a state; once committed it supersedes the placements journal (see `note_sending`)."""
        with self.transaction() as conn:
            conn.execute("INSERT INTO grid_state VALUES (?,?,?) ON CONFLICT(key) DO UPDATE SET "
                         "value=excluded.value, updated_ms=excluded.updated_ms",
                         (key, json.dumps(value), now_ms()))
            self._sending_saved = self._sending_noted

    # ---- placements in flight --------------------------------------------------------------
    def note_sending(self, client_ids: list[int], **context: Any) -> None:
        """Record, durably and before they leave, the client ids of orders about to be sent.

        A turn's bookkeeping commits when the turn ends. A process killed after sending and before
        that commit leaves no trace of the orders in the database, although the venue may have
        taken (and filled) them; the next process reads them back (`sent_unrecorded`) and asks the
        venue what became of them. `context`: what else that process needs to go on where this
        one stopped (JSON values; a close-and-stop's reason and target). One JSON line per batch,
        in a file beside the database (`<db>-sending`), emptied by the first commit that saved a
        state after it was written: that state names each order, placed or in doubt. An OSError
        (a full disk) is raised as sqlite3.OperationalError, so the bot stops as on any database
        it cannot write, before sending anything.
        """
        if not client_ids:
            return
        line = json.dumps({"ids": [int(cid) for cid in client_ids], **context}) + "\n"
        try:
            fd = os.open(self.sending_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line.encode())
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise sqlite3.OperationalError(f"cannot write {self.sending_path}: {exc.strerror or exc}") from None
        self._sending_noted, self._sending_saved = True, False

    def sent_unrecorded(self) -> list[dict]:
        """The journal's batches, oldest first: orders a killed process sent without recording
        their outcome. A damaged line (cut short by the kill) is skipped; the others still count.
        Once read, the next committed state save empties the journal, as after `note_sending`."""
        try:
            lines = self.sending_path.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return []
        batches: list[dict] = []
        for line in lines:
            try:
                batch = json.loads(line)
                batch["ids"] = [int(cid) for cid in batch["ids"]]
            except (ValueError, TypeError, KeyError):
                continue
            batches.append(batch)
        self._sending_noted = bool(batches)
        return batches

    def _clear_sending(self) -> None:
        try:
            os.truncate(self.sending_path, 0)
        except FileNotFoundError:
            pass
        except OSError:
            return                          # tried again at the next commit; extra ids only cost a lookup
        self._sending_noted = self._sending_saved = False

    def load_state(self, key: str) -> Any:
        rows = self.query("SELECT value FROM grid_state WHERE key=?", (key,))
        return json.loads(rows[0]["value"]) if rows else None

    # ---- snapshots and events --------------------------------------------------------------
    def add_snapshot(self, timestamp: int, price: float, equity: float, realized: float,
                     unrealized: float, grid_profit: float, position: float, fees: float) -> None:
        with self.transaction() as conn:
            conn.execute("INSERT INTO snapshots VALUES (?,?,?,?,?,?,?,?)",
                         (timestamp, price, equity, realized, unrealized, grid_profit, position, fees))

    def snapshots(self, limit: int = 500) -> list[dict]:
        rows = self.query("SELECT timestamp, price, equity, realized, unrealized, grid_profit FROM "
                          "(SELECT rowid AS r, * FROM snapshots ORDER BY rowid DESC LIMIT ?) ORDER BY r",
                          (int(limit),))
        return [dict(r) for r in rows]

    def add_event(self, kind: str, message: str, data: dict | None = None) -> None:
        with self.transaction() as conn:
            conn.execute("INSERT INTO events VALUES (?,?,?,?)",
                         (now_ms(), kind, message, json.dumps(data) if data else None))
