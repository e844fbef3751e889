"""Issue 10 item 7: a deleted or replaced database is detected, never silently started afresh."""
from __future__ import annotations

import pytest

from tests.conftest import run_cli, wait_for
from tests.core.util import list_json, registry, start, write_config

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("damage", ["deleted", "replaced"])
def test_a_lost_database_stops_the_bot_and_start_refuses_without_fresh_db(home, damage):
    path = write_config(home, "ledger", health_check_interval=0.2)
    db = home / "database" / "ledger.db"
    db.write_bytes(b"SQLite format 3\0")  # what the bot's store would hold
    assert start(home, path).returncode == 0
    wait_for(lambda: registry(home)["ledger"].get("db_identity"), what="the supervisor to learn its database")
    if damage == "replaced":  # a new, empty file where the account was (made first: a new inode)
        fresh = db.with_name("fresh.db")
        fresh.write_bytes(b"SQLite format 3\0")
        fresh.replace(db)
    else:
        db.unlink()
    rec = wait_for(lambda: (r := list_json(home, "--all")["ledger"])["status"] == "fatal" and r,
                   what="the instance to stop when its database went away")
    assert f"database {db} was {damage}" in rec["last_error"] and rec["bot_pid"] is None
    if damage == "deleted":
        out = start(home, path)
        assert out.returncode == 2 and "--fresh-db" in out.stderr and str(db) in out.stderr, out.stderr
        assert not db.exists()  # nothing was created by the refused start
    out = start(home, path, "--fresh-db")
    assert out.returncode == 0, out.stderr
    assert run_cli(home, "stop", "-i", "ledger").returncode == 0


def test_a_first_start_needs_no_database(home):
    path = write_config(home, "newborn")
    assert not (home / "database" / "newborn.db").exists()
    assert start(home, path).returncode == 0
    assert run_cli(home, "stop", "-i", "newborn").returncode == 0
