"""Wiring: the config with the flags applied, the grid parameters checked against the market, the
instance's database and files, and its page."""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from bot.args import UsageError, strategy_overrides
from core.config_manager import CHECKED_ENV, ConfigError, ConfigManager, InstanceConfig
from core.paths import (ENV_API_KEY, ENV_DB_PATH, ENV_INSTANCE_ID, ENV_LOG_DIR, ENV_SECRET_KEY, ENV_WEB_PORT,
                        InstancePaths, resolve_runtime)
from exchanges.base import Exchange
from strategies.grid_math import round_to

if TYPE_CHECKING:
    from bot.loop import Bot
    from strategies.grid_params import GridParams

# The page's threads and the trading loop share one GIL. At Python's default switch interval (5 ms)
# a request arriving while the loop computes waits up to 5 ms at each hand-off (accept, read,
# write): /health took 14-19 ms (median of 40) while the main thread computed, 5.5 ms at 1 ms. The
# first /health comes while the grid is placed, right after the page starts. The loop is asked to
# yield only when a page thread waits for the GIL, so an idle page costs it nothing.
PAGE_SWITCH_INTERVAL_S = 0.001


def load_config(args: argparse.Namespace, home: Path) -> InstanceConfig:
    """The instance config with the CLI flags applied and validated again (ConfigError if bad)."""
    cm = ConfigManager(home)
    instance_id = args.instance_id or os.environ.get(ENV_INSTANCE_ID) or None
    if args.config:  # a document `start` validated (its digest in CHECKED_ENV) skips the schema
        cfg = cm.load(args.config, instance_id=instance_id, checked=os.environ.get(CHECKED_ENV))
    else:
        # flags only: the same loader and rules, on a config made of the flags
        doc = {"metadata": {"exchange": args.exchange or "paper", "symbol": args.symbol or "SOL_USDC_PERP"},
               "strategy_config": strategy_overrides(args)}
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
            json.dump(doc, fh)
        try:
            cfg = cm.load(fh.name, instance_id=instance_id or "paper_bot")
        finally:
            os.unlink(fh.name)
    if args.exchange:
        cfg.metadata["exchange"] = args.exchange
    if args.symbol:
        cfg.metadata["symbol"] = args.symbol
    overrides = strategy_overrides(args)
    cfg.strategy.update(overrides)
    if overrides or args.exchange or args.symbol or not args.config:  # else load() judged it all already
        errors = cm.validate_overrides(cfg.metadata, cfg.strategy)
        if errors:
            raise ConfigError(errors)
    lo, hi = cfg.strategy.get("grid_lower_price"), cfg.strategy.get("grid_upper_price")
    if cfg.metadata["exchange"] == "paper" and "initial_price" not in cfg.exchange and lo and hi:
        cfg.exchange["initial_price"] = (lo + hi) / 2     # a simulation starts inside its grid
    for env, key in ((ENV_API_KEY, "api_key"), (ENV_SECRET_KEY, "secret_key")):
        if os.environ.get(env):
            cfg.exchange[key] = os.environ[env]
    return cfg


def grid_params(cfg: InstanceConfig, exchange: Exchange) -> GridParams:
    """GridParams from the config; with auto_price the range is centred on the current price."""
    from strategies.grid_params import GridParams  # at the first start: the page answers without it

    s = dict(cfg.strategy)
    symbol = cfg.metadata["symbol"]
    if s.get("quantity") is None:
        s["quantity"] = exchange.market(symbol).min_qty   # legacy configs name no size: the smallest
    if s.get("auto_price"):
        r = auto_price_range(s)
        tick = exchange.market(symbol).tick_size
        price = exchange.fetch_ticker(symbol).last
        s["grid_lower_price"], s["grid_upper_price"] = round_to(price * (1 - r), tick), round_to(price * (1 + r), tick)
    return GridParams.from_strategy_config(s, symbol)


def auto_price_range(strategy: dict) -> float:
    """With auto_price: the range's half-width as a fraction of the price (UsageError if invalid)."""
    r = strategy.get("price_range")
    if not r or not 0 < r < 1:
        raise UsageError(f"strategy_config.price_range: {r} is invalid: with auto_price it must be a "
                         "fraction between 0 and 1 (0.05 = +-5% around the price)")
    return r


def checked_params(cfg: InstanceConfig, exchange: Exchange) -> GridParams:
    """grid_params, checked against the market, the balance and the leverage (UsageError if impossible)."""
    from strategies.grid_params import check_params

    params = grid_params(cfg, exchange)
    errors = check_params(params, exchange.market(params.symbol), exchange.fetch_balance().total,
                          exchange.leverage)
    if errors:
        raise UsageError("\n".join(errors))
    return params


def open_instance(cfg: InstanceConfig, args: argparse.Namespace, home: Path) -> tuple[Any, InstancePaths]:
    from database.db import Database

    db_path = args.db_path or os.environ.get(ENV_DB_PATH) or cfg.daemon.get("db_path") or f"database/{cfg.instance_id}.db"
    log_dir = os.environ.get(ENV_LOG_DIR) or cfg.daemon.get("log_dir")
    paths = (InstancePaths(cfg.instance_id, Path(log_dir)) if log_dir and Path(log_dir).is_absolute()
             else InstancePaths.for_instance(home, cfg.instance_id, log_dir))
    return Database(resolve_runtime(home, db_path)), paths


def start_page(bot: Bot, args: argparse.Namespace, say: Callable[[str], None]) -> None:
    port = args.web_port if args.web_port is not None else os.environ.get(ENV_WEB_PORT)
    if args.no_web or port in (None, ""):
        return
    try:
        from web.server import start_web
    except ImportError as exc:
        say(f"warning: the web page is not available ({exc}); running without it")
        return
    sys.setswitchinterval(PAGE_SWITCH_INTERVAL_S)   # before the page's threads start: their first wait is short too
    try:
        start_web(bot.runtime, None, int(port), bot.paths, allowed_hosts=bot.cfg.daemon.get("web_allowed_hosts") or ())
    except (OSError, ValueError) as exc:
        say(f"warning: could not serve the web page on port {port}: {exc}; running without it")
