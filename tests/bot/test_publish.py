"""One loop turn publishes the strategy's open orders built once (status count and list agree)."""
from __future__ import annotations

from bot.args import parse_args
from bot.loop import Bot
from core.config_manager import ConfigManager
from core.paths import InstancePaths
from database.db import Database
from exchanges.paper_exchange import PaperExchange
from exchanges.paper_prices import RandomWalk
from tests.bot.proc import bot_config


def test_publish_builds_the_open_orders_once_per_turn(home):
    cfg = ConfigManager(home).load(bot_config(home, "pub_t1"), instance_id="pub_t1")
    db = Database(home / "database" / "pub_t1.db")
    exchange = PaperExchange(RandomWalk(150.0, 0.0, 1), db=db)
    bot = Bot(cfg, parse_args([]), exchange, db, InstancePaths("pub_t1", home / "logs" / "pub_t1"),
              lambda _m: None)
    bot.start()
    built = []
    real = bot.strategy.open_orders
    bot.strategy.open_orders = lambda: built.append(1) or real()
    bot.publish()
    assert len(built) == 1
    assert bot.runtime.snapshot()["open_order_count"] == len(bot.runtime.open_orders()) > 0
    db.close()
