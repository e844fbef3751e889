"""The instance database: WAL, idempotent fills, state, snapshots, a reader thread beside a writer."""
import sqlite3
import threading

import pytest

from database.db import Database
from exchanges.base import Fill, Order


def one(db: Database, sql: str, params: tuple = ()) -> tuple:
    """The first row of a query on the file itself (its own sqlite3 connection, as a reader would)."""
    conn = sqlite3.connect(str(db.path))
    try:
        return conn.execute(sql, params).fetchone()
    finally:
        conn.close()


def fill(trade_id: str, ts: int = 1000) -> Fill:
    return Fill(trade_id, "O1", "SOL_USDC_PERP", "buy", 100.0, 1.0, 0.02, True, ts, client_id=42)


def test_wal_mode_and_schema(tmp_path):
    db = Database(tmp_path / "x.db")
    assert db.query("PRAGMA journal_mode")[0][0] == "wal"
    tables = {r["name"] for r in db.query("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"orders", "fills", "grid_state", "snapshots", "events"} <= tables


def test_a_replayed_fill_is_never_counted_twice(tmp_path):
    db = Database(tmp_path / "x.db")
    assert db.record_fill(fill("T1"), level=3, role=0) is True
    assert db.record_fill(fill("T1"), level=3, role=0) is False
    assert db.record_fill(fill("T2", 2000), level=3, role=1) is True
    assert one(db, "SELECT COUNT(*), SUM(fee), SUM(price * qty) FROM fills") == (2, 0.04, 200.0)
    assert [f["trade_id"] for f in db.recent_fills(10)] == ["T2", "T1"]
    assert one(db, "SELECT MAX(timestamp) FROM fills") == (2000,)
    db.close()
    again = Database(tmp_path / "x.db")      # and across a reopen
    assert again.record_fill(fill("T1"), 3, 0) is False
    assert one(again, "SELECT COUNT(*) FROM fills WHERE trade_id = 'T2'") == (1,)


def test_a_failed_transaction_leaves_nothing(tmp_path):
    db = Database(tmp_path / "x.db")
    try:
        with db.transaction():
            db.record_fill(fill("T1"), 1, 0)
            db.save_state("k", {"a": 1})
            raise RuntimeError("killed mid-step")
    except RuntimeError:
        pass
    assert db.load_state("k") is None and one(db, "SELECT COUNT(*) FROM fills") == (0,)


def test_orders_state_snapshots_events(tmp_path):
    db = Database(tmp_path / "x.db")
    db.upsert_order(Order("O1", "SOL_USDC_PERP", "buy", "limit", 99.0, 1.0, client_id=7, timestamp=5), 2, 0)
    db.set_order_status("O1", "filled", 1.0)
    assert one(db, "SELECT level, status, filled_qty FROM orders WHERE id = 'O1'") == (2, "filled", 1.0)
    db.save_state("grid", {"cells": [1, 2]})
    db.save_state("grid", {"cells": [3]})
    assert db.load_state("grid") == {"cells": [3]}
    for i in range(5):
        db.add_snapshot(i, 100.0 + i, 10000.0 + i, 0.0, 0.0, float(i), 0.0, 0.0)
    assert [s["timestamp"] for s in db.snapshots(3)] == [2, 3, 4]   # the latest, oldest first
    db.add_event("start", "hello")
    assert one(db, "SELECT kind, message FROM events ORDER BY rowid DESC") == ("start", "hello")


def test_reader_thread_sees_committed_rows_while_the_writer_writes(tmp_path):
    db = Database(tmp_path / "x.db")
    seen: list[int] = []
    errors: list[Exception] = []
    done = threading.Event()

    def reader():
        try:
            while not done.is_set():
                seen.append(db.query("SELECT COUNT(*) AS n FROM fills")[0]["n"])   # the shared reader
        except sqlite3.Error as exc:
            errors.append(exc)

    t = threading.Thread(target=reader)
    t.start()
    for i in range(200):
        with db.transaction():
            db.record_fill(fill(f"T{i}", i), 0, 0)
    done.set()
    t.join()
    assert not errors and seen == sorted(seen) and one(db, "SELECT COUNT(*) FROM fills") == (200,)


def test_short_lived_reader_threads_share_one_connection_and_cannot_write(tmp_path):
    import psutil

    db = Database(tmp_path / "x.db")
    errors: list[Exception] = []

    def request_thread():
        db.recent_fills(5)
        try:
            db.save_state("k", 1)
        except RuntimeError as exc:
            errors.append(exc)

    for _ in range(50):                      # like the page's request threads
        t = threading.Thread(target=request_thread)
        t.start()
        t.join()
    opened = [f.path for f in psutil.Process().open_files() if f.path.startswith(str(tmp_path))]
    assert opened.count(str(tmp_path / "x.db")) == 2          # the writer and the one reader
    assert len(errors) == 50 and "trading loop" in str(errors[0])


def test_no_index_on_order_status_since_no_query_filters_on_it(tmp_path):
    Database(tmp_path / "bot.db").close()
    conn = sqlite3.connect(tmp_path / "bot.db")
    names = {name for name, in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    conn.close()
    assert "orders_status" not in names and "fills_ts" in names


def test_placements_sent_are_journaled_until_a_committed_state_names_them(tmp_path):
    """The journal beside the database keeps the client ids of a batch from before it is sent
    until a state saved after it commits; a process killed in between leaves them to the next."""
    db = Database(tmp_path / "x.db")
    assert db.sent_unrecorded() == []
    with db.transaction():
        db.note_sending([7, 8])
        db.save_state("k", {"in_doubt": [7, 8]})
        assert Database(tmp_path / "x.db").sent_unrecorded() == [{"ids": [7, 8]}]   # not committed yet
    assert Database(tmp_path / "x.db").sent_unrecorded() == []
    try:
        with db.transaction():
            db.note_sending([9], closing="trader's flatten", close_target=0.0)
            db.save_state("k", {"in_doubt": [9]})
            raise RuntimeError("killed before the commit")
    except RuntimeError:
        pass
    with db.transaction():
        db.add_event("tick", "a commit without a state")
    again = Database(tmp_path / "x.db")
    assert again.sent_unrecorded() == [{"ids": [9], "closing": "trader's flatten", "close_target": 0.0}]
    with again.transaction():
        again.save_state("k", {"in_doubt": [9]})    # the next process saved what it learnt
    assert Database(tmp_path / "x.db").sent_unrecorded() == []


def test_a_damaged_journal_still_gives_the_batches_it_can_read(tmp_path):
    db = Database(tmp_path / "x.db")
    db.sending_path.write_bytes(b'{"ids": [12, 13]}\n{"ids": [1\xff4]}\n[]\n{"ids": [15]}\n{"ids": [1')   # cut short
    assert db.sent_unrecorded() == [{"ids": [12, 13]}, {"ids": [15]}]


@pytest.mark.parametrize("venue_db", ["the bot's", "its own"])
def test_only_a_venue_outside_the_bots_database_needs_the_placements_journal(tmp_path, venue_db):
    """The paper exchange on the bot's database places its orders in the turn's transaction, so a
    kill before the commit rolls them back with the books: the journal's fsync per placing turn
    would buy nothing. A venue that keeps its own records (every real one; here a paper exchange on
    another database) gets its placements journaled."""
    from tests.bot.helpers import grid, paper

    db = Database(tmp_path / "bot.db")
    ex, _ = paper(102.4, db=db if venue_db == "the bot's" else Database(tmp_path / "venue.db"))
    strat = grid(ex, store=db)
    strat.start()
    assert len(ex.fetch_open_orders("SOL_USDC_PERP")) == 4
    assert db.sending_path.exists() == (venue_db == "its own")
