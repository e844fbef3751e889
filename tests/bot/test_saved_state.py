"""A saved grid state the bot cannot read (written by a newer build, or damaged) stops it with a
clear message and exit 2, keeps the state as it was, and leaves no order of the instance resting.

Before: a field this build does not know raised a TypeError inside the restore; the bot took it
for a crash, printed a traceback, and its shutdown saved the half-restored books over the state
(the newer build's books were gone); the supervisor then restarted it into the same crash. A
damaged row said "invalid configuration: Expecting value", which names the wrong file.
"""
from __future__ import annotations

import json
import signal
import sqlite3

import pytest

from tests.bot.proc import bot_config, open_paper_orders, run_bot, scalar, start_bot
from tests.conftest import wait_for

STATE_SQL = "SELECT value FROM grid_state WHERE key = 'perp_grid'"


def newer_build(state: str) -> str:
    """The state as a later build might write it: a field on each cell this build never had."""
    doc = json.loads(state)
    for cell in doc["cells"]:
        cell["queue_place"] = 3
    return json.dumps(doc)


def write_state(db, value: str) -> None:
    conn = sqlite3.connect(db)
    try:
        with conn:
            conn.execute("UPDATE grid_state SET value = ? WHERE key = 'perp_grid'", (value,))
    finally:
        conn.close()


@pytest.mark.parametrize("change, says", [
    (newer_build, "fields this build does not know (cell: queue_place)"),
    (lambda _state: '{"levels": [140.0, 150.0', "damaged"),
    (lambda state: json.dumps({k: v for k, v in json.loads(state).items() if k != "cells"}), "damaged"),
])
def test_an_unreadable_state_exits_2_keeps_the_state_and_leaves_no_order(home, change, says):
    cfg = bot_config(home)
    db = home / "database" / "bot_t1.db"
    first = start_bot(home, cfg, "--no-web")
    try:                                    # killed while trading: its orders rest on the exchange
        wait_for(lambda: (scalar(db, "SELECT COUNT(*) FROM paper_fills") or 0) >= 2, what="some fills")
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert open_paper_orders(db), "the killed bot left its orders resting"
    unreadable = change(scalar(db, STATE_SQL))
    write_state(db, unreadable)

    out = run_bot(home, "--config", str(cfg), "--no-web", "--duration", "1")

    assert out.returncode == 2, out.stdout + out.stderr
    assert "Traceback" not in out.stderr
    assert "saved grid state" in out.stderr and says in out.stderr, out.stderr
    assert str(db) in out.stderr                    # names the file to move aside
    assert scalar(db, STATE_SQL) == unreadable      # nothing overwritten
    assert open_paper_orders(db) == []              # no order of the instance left unmanaged
