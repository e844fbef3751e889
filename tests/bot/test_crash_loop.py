"""The crash loop of issue 8: SIGKILLs of the bot and of its supervisor at random moments.

A real paper bot under the real daemon, partial fills on; the bot is killed (the supervisor
restarts it) or the supervisor is killed (the bot notices its parent is gone and exits; the
test starts the instance again), N times. The exchange's book is sampled throughout: no level
ever has two orders of one role resting at once (0 duplicate orders). Afterwards, from the
instance database: every exchange fill was booked exactly once (0 lost fills), and the grid's
holdings equal the exchange position. The Backpack version is
tests/exchanges/test_crash_loop_on_backpack.py; the loop itself is tests/bot/crash_loop.py.
"""
from __future__ import annotations

import json
import random

import pytest

from exchanges import client_ids
from tests.bot.crash_loop import grid_holdings, kill_loop, repeated
from tests.bot.proc import bot_config, query, scalar
from tests.conftest import run_cli
from tests.core.util import start

pytestmark = pytest.mark.slow

KILLS = 8
IID = "bot_t1"


def duplicates(db) -> list[tuple]:
    """(level, role) of this instance resting more than once on the paper exchange right now."""
    rows = query(db, "SELECT data FROM paper_orders WHERE status = 'open'")
    cids = (json.loads(data).get("client_id") for (data,) in rows)
    return repeated(client_ids.decode(c)[1:3] for c in cids if client_ids.belongs_to(c, IID))


def test_random_sigkills_of_bot_and_supervisor_double_nothing_and_lose_nothing(home):
    cfg = bot_config(home, exchange={"max_fill_qty": 0.2},
                     daemon={"restart_delay": 0.1, "max_backoff": 0.5, "max_restart_attempts": 100,
                             "startsecs": 0.3, "stop_timeout": 10, "health_check_interval": 0.3})
    db = home / "database" / f"{IID}.db"

    def restart() -> None:
        started = start(home, cfg)
        assert started.returncode == 0, started.stderr + started.stdout

    restart()
    try:
        killed, seen_duplicates = kill_loop(home, IID, KILLS, random.Random(20261125), lambda: duplicates(db), restart)
    finally:
        run_cli(home, "stop", "-i", IID)
    assert {kind for kind, _ in killed} == {"bot", "supervisor"}   # the seed kills both kinds
    assert seen_duplicates == []                                # 0 duplicate orders
    # 0 lost fills: the exchange's fills are the books' fills, once each
    exchange_fills = {r[0] for r in query(db, "SELECT trade_id FROM paper_fills")}
    assert exchange_fills and exchange_fills == {r[0] for r in query(db, "SELECT trade_id FROM fills")}
    held, fill_count = grid_holdings(db)
    assert fill_count == len(exchange_fills)
    # the grid's holdings are the exchange position
    account = json.loads(scalar(db, "SELECT data FROM paper_account"))
    assert held == pytest.approx(account["pos_qty"], abs=1e-9)
