"""The crash loop of issue 8: SIGKILLs of the bot and of its supervisor at random moments.

A real paper bot under the real daemon, partial fills on; the bot is killed (the supervisor
restarts it) or the supervisor is killed (the bot notices its parent is gone and exits; the
test starts the instance again), N times. The exchange's book is sampled throughout: no level
ever has two orders of one role resting at once (0 duplicate orders). Afterwards, from the
instance database: every exchange fill was booked exactly once (0 lost fills), and the grid's
holdings equal the exchange position.
"""
from __future__ import annotations

import json
import os
import random
import signal
import time
from collections import defaultdict

import psutil
import pytest

from exchanges import client_ids
from tests.bot.proc import bot_config, query, scalar
from tests.conftest import run_cli, wait_for
from tests.core.util import list_json, start

pytestmark = pytest.mark.slow

KILLS = 8
IID = "bot_t1"


def running_bot_pid(home) -> int | None:
    rec = list_json(home).get(IID) or {}
    pid = rec.get("bot_pid") if rec.get("status") == "running" else None
    return pid if pid and psutil.pid_exists(pid) else None


def supervisor_pid(home) -> int | None:
    path = home / "logs" / IID / "daemon.pid"
    try:
        pid = int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if psutil.pid_exists(pid) else None


def duplicates(db) -> list[tuple]:
    """(level, role) of this instance resting more than once on the paper exchange right now."""
    seen: dict[tuple, int] = defaultdict(int)
    for (data,) in query(db, "SELECT data FROM paper_orders WHERE status = 'open'"):
        cid = json.loads(data).get("client_id")
        if client_ids.belongs_to(cid, IID):
            seen[client_ids.decode(cid)[1:3]] += 1
    return [key for key, n in seen.items() if n > 1]


def watch(db, seconds: float, found: list) -> None:
    """Sample the exchange's book for `seconds`, keeping any duplicate seen."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        found.extend(duplicates(db))
        time.sleep(0.05)


def test_random_sigkills_of_bot_and_supervisor_double_nothing_and_lose_nothing(home):
    cfg = bot_config(home, exchange={"max_fill_qty": 0.2},
                     daemon={"restart_delay": 0.1, "max_backoff": 0.5, "max_restart_attempts": 100,
                             "startsecs": 0.3, "stop_timeout": 10, "health_check_interval": 0.3})
    db = home / "database" / f"{IID}.db"
    rng = random.Random(20261125)
    killed: list[int] = []
    seen_duplicates: list[tuple] = []
    assert start(home, cfg).returncode == 0
    try:
        for _ in range(KILLS):
            bot = wait_for(lambda: running_bot_pid(home), 60, "the bot running")
            watch(db, rng.uniform(0.1, 1.5), seen_duplicates)
            if rng.random() < 0.6:
                os.kill(bot, signal.SIGKILL)                    # the supervisor restarts it
                killed.append(bot)
                wait_for(lambda: running_bot_pid(home) not in (None, bot), 60, "the restarted bot")
                watch(db, 0.5, seen_duplicates)                 # the restart's reconcile
            else:
                daemon = wait_for(lambda: supervisor_pid(home), 30, "the supervisor's pid")
                os.kill(daemon, signal.SIGKILL)
                killed.append(daemon)
                wait_for(lambda: not psutil.pid_exists(bot) or psutil.Process(bot).status() == psutil.STATUS_ZOMBIE,
                         60, "the orphaned bot to exit")
                assert start(home, cfg).returncode == 0
                watch(db, 0.5, seen_duplicates)
        wait_for(lambda: running_bot_pid(home), 60, "the bot running at the end")
    finally:
        run_cli(home, "stop", "-i", IID)
    assert len(killed) == KILLS and seen_duplicates == []      # 0 duplicate orders
    # 0 lost fills: the exchange's fills are the books' fills, once each
    exchange_fills = {r[0] for r in query(db, "SELECT trade_id FROM paper_fills")}
    assert exchange_fills and exchange_fills == {r[0] for r in query(db, "SELECT trade_id FROM fills")}
    state = json.loads(scalar(db, "SELECT value FROM grid_state WHERE key = 'perp_grid'"))
    assert state["totals"]["fill_count"] == len(exchange_fills)
    # the grid's holdings are the exchange position
    held = sum(c["held"] * (1 if c["side"] == "long" else -1) for c in state["cells"]) + state["carried"]
    account = json.loads(scalar(db, "SELECT data FROM paper_account"))
    assert held == pytest.approx(account["pos_qty"], abs=1e-9)
