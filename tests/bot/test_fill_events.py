"""Each fill the bot books is also an event in logs/{id}/events.jsonl, for the notifier's fill
alerts (issue 13: off by default; the notifier filters, the bot only records)."""
from __future__ import annotations

import sqlite3

import pytest

from bot.args import parse_args
from bot.loop import Bot
from core.config_manager import ConfigManager
from core.events import FILL, read_events
from core.paths import InstancePaths
from database.db import Database
from exchanges.paper_exchange import PaperExchange
from exchanges.paper_prices import RandomWalk
from tests.bot.proc import bot_config
from tests.conftest import free_port, kill_home_processes, wait_for
from tests.web.paper_bot import make_home, start_bot, stop_bot


def test_every_booked_fill_is_an_event_with_side_price_and_quantity(tmp_path):
    home = make_home(tmp_path)
    bot = start_bot(home, "fills_ev_01", free_port())
    try:
        first = wait_for(lambda: fill_events(bot.paths), 90, "a fill event")[0]
        assert first["instance"] == "fills_ev_01" and first["payload"]["symbol"] == "SOL_USDC_PERP"
        assert first["payload"]["side"] in ("buy", "sell") and first["payload"]["qty"] > 0
        seen = (first["payload"]["side"], first["payload"]["price"], first["payload"]["qty"])

        # announced once its turn committed: the page lists it already, in the same read
        assert seen in {(f["side"], f["price"], f["qty"]) for f in bot.get("/api/fills?limit=500").json()}
    finally:
        stop_bot(bot)
        kill_home_processes(home)


def test_a_fill_is_announced_once_and_only_after_its_turn_is_saved(home):
    """A turn that books a fill and then fails (here the disk fills up as it saves the books) is
    rolled back: the bot ends, and its next life books that fill again from the venue. The fill
    must be announced (the FILL line, the page, events.jsonl and so the phone) once, by the life
    whose books kept it: an alert for a fill the books then lost, and a second one for the same
    trade, is what the trader would get otherwise."""
    iid = "fills_ev_02"
    cfg = ConfigManager(home).load(bot_config(home, iid), instance_id=iid)
    paths = InstancePaths(iid, home / "logs" / iid)
    db = Database(home / "database" / f"{iid}.db")
    lines: list[str] = []
    bot = Bot(cfg, parse_args([]), PaperExchange(RandomWalk(150.0, 0.004, 5), db=db), db, paths, lines.append)
    bot.start()
    strategy, save = bot.strategy, bot.strategy._save
    booked_before = strategy.totals.fill_count

    def disk_full_once_a_fill_is_booked() -> None:
        if strategy.totals.fill_count > booked_before:
            raise sqlite3.OperationalError("database or disk is full")
        save()

    strategy._save = disk_full_once_a_fill_is_booked
    with pytest.raises(sqlite3.OperationalError):
        for _ in range(2000):
            bot.turn()
    assert strategy.totals.fill_count > booked_before     # the failed turn booked a fill, in memory
    assert fill_events(paths) == [] and not [line for line in lines if "FILL" in line]
    db.close()

    db = Database(home / "database" / f"{iid}.db")       # the next life, on what was saved
    lines.clear()
    bot = Bot(cfg, parse_args([]), PaperExchange(RandomWalk(150.0, 0.004, 5), db=db), db, paths, lines.append)
    bot.start()
    for _ in range(2000):
        if bot.strategy.totals.fill_count > booked_before:
            break
        bot.turn()
    booked = [(f["side"], f["price"], f["qty"]) for f in reversed(db.recent_fills(500))]
    assert booked, "the next life booked the fill again"
    announced = [(e["payload"]["side"], e["payload"]["price"], e["payload"]["qty"]) for e in fill_events(paths)]
    assert announced == booked
    assert len([line for line in lines if "FILL" in line]) == len(booked)
    db.close()


def fill_events(paths: InstancePaths) -> list[dict]:
    found, _ = read_events(paths.events, 0)
    return [e for e in found if e["kind"] == FILL]
