"""The crash loop of issue 8, shared by the paper and the Backpack versions of the proof.

A supervised bot is SIGKILLed (the supervisor restarts it) or its supervisor is (the orphaned bot
exits; `restart` starts the instance again) at random moments, while `sample` reads the
exchange's book for duplicate orders. The exchange differs per test, so the sampling and the
restart are passed in; the kill sequence and the reading of the grid's holdings are one code.
"""
from __future__ import annotations

import json
import os
import random
import signal
import time
from pathlib import Path
from typing import Callable, Iterable

import psutil

from exchanges import client_ids
from tests.bot.proc import scalar
from tests.conftest import wait_for
from tests.core.util import list_json


def running_bot_pid(home: Path, iid: str) -> int | None:
    rec = list_json(home).get(iid) or {}
    pid = rec.get("bot_pid") if rec.get("status") == "running" else None
    return pid if pid and psutil.pid_exists(pid) else None


def supervisor_pid(home: Path, iid: str) -> int | None:
    path = home / "logs" / iid / "daemon.pid"
    try:
        pid = int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if psutil.pid_exists(pid) else None


def repeated(keys: Iterable[tuple]) -> list[tuple]:
    """The keys that occur more than once: (level, role) resting twice is a duplicate order."""
    seen: dict[tuple, int] = {}
    for key in keys:
        seen[key] = seen.get(key, 0) + 1
    return [key for key, n in seen.items() if n > 1]


def watch(sample: Callable[[], list], seconds: float, found: list) -> None:
    """Sample the exchange's book for `seconds`, keeping any duplicate seen."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        found.extend(sample())
        time.sleep(0.05)


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def kill_loop(home: Path, iid: str, kills: int, rng: random.Random, sample: Callable[[], list],
              restart: Callable[[], None], between: Callable[[], None] = lambda: None,
              wait: float = 60) -> tuple[list[tuple[str, int]], list]:
    """`kills` SIGKILLs, 60 % of the bot and 40 % of the supervisor, each at a random moment;
    `between` runs before each wait (to switch on a venue fault). Returns (what was killed, as
    ("bot" | "supervisor", pid) pairs, and the duplicates seen). The bot is running again when it returns."""
    killed: list[tuple[str, int]] = []
    seen: list = []
    for _ in range(kills):
        bot = wait_for(lambda: running_bot_pid(home, iid), wait, "the bot running")
        between()
        watch(sample, rng.uniform(0.1, 1.5), seen)
        if rng.random() < 0.6:
            os.kill(bot, signal.SIGKILL)                    # the supervisor restarts it
            killed.append(("bot", bot))
            wait_for(lambda: running_bot_pid(home, iid) not in (None, bot), wait, "the restarted bot")
        else:
            daemon = wait_for(lambda: supervisor_pid(home, iid), 30, "the supervisor's pid")
            os.kill(daemon, signal.SIGKILL)
            killed.append(("supervisor", daemon))
            wait_for(lambda: _gone(bot), wait, "the orphaned bot to exit")
            restart()
        watch(sample, 0.5, seen)                            # the restart's reconcile
    wait_for(lambda: running_bot_pid(home, iid), wait, "the bot running at the end")
    return killed, seen


def traded_twice(fills: Iterable[tuple[int, float]], quantity: float) -> list[tuple[int, float]]:
    """(level, holding) wherever a level's holding left 0..quantity, over (client id, qty) fills
    in the order they happened: an opening fill adds to its level's holding, a closing fill takes
    from it. A close sent twice takes it below 0, an opening order sent twice above `quantity`
    (for a grid that never changes its range, on the venue's own record)."""
    held: dict[int, float] = {}
    out: list[tuple[int, float]] = []
    for cid, qty in fills:
        _, level, role, _ = client_ids.decode(cid)
        held[level] = round(held.get(level, 0.0) + (qty if role == client_ids.ROLE_OPEN else -qty), 10)
        if not -1e-9 <= held[level] <= quantity + 1e-9:
            out.append((level, held[level]))
    return out


def grid_holdings(db: Path) -> tuple[float, int]:
    """(signed quantity the grid holds, fills it counted) from the instance database's saved state."""
    state = json.loads(scalar(db, "SELECT value FROM grid_state WHERE key = 'perp_grid'"))
    held = sum(c["held"] * (1 if c["side"] == "long" else -1) for c in state["cells"]) + state["carried"]
    return held, state["totals"]["fill_count"]
