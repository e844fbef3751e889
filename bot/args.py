"""The bot's command line: flags over the config, and the usage error (exit 2, nothing placed)."""
from __future__ import annotations

import argparse

from strategies.grid_math import BOUNDARY_ACTIONS, GRID_MODES, GRID_TYPES

DEFAULT_BACKTEST_TICKS = 100_000

# flag dest -> strategy_config key
STRATEGY_FLAGS = {
    "grid_lower": "grid_lower_price", "grid_upper": "grid_upper_price", "grid_num": "grid_num",
    "grid_mode": "grid_mode", "grid_type": "grid_type", "quantity": "quantity",
    "max_position": "max_position", "stop_loss": "stop_loss", "take_profit": "take_profit",
    "boundary_action": "boundary_action", "boundary_tolerance": "boundary_tolerance",
    "price_range": "price_range", "duration": "duration", "interval": "interval",
}


class UsageError(Exception):
    """Bad arguments or parameters: exit 2 with the message, before any order."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="run.py", description="Run one perpetual grid bot (paper by default).")
    p.add_argument("--config", "-c", help="instance config (JSON); flags below override it")
    p.add_argument("--instance-id", help="instance id (default: $INSTANCE_ID, metadata.instance_id, file stem)")
    p.add_argument("--exchange", help="paper (default) or a ccxt exchange id")
    p.add_argument("--symbol", help="market symbol, e.g. SOL_USDC_PERP")
    p.add_argument("--strategy", choices=["perp_grid"], help="strategy (only perp_grid)")
    p.add_argument("--grid-lower", type=float)
    p.add_argument("--grid-upper", type=float)
    p.add_argument("--grid-num", type=int)
    p.add_argument("--grid-mode", choices=list(GRID_MODES))
    p.add_argument("--grid-type", choices=list(GRID_TYPES))
    p.add_argument("--quantity", type=float, help="order size per level (base currency)")
    p.add_argument("--max-position", type=float, help="cap on the absolute position")
    p.add_argument("--stop-loss", type=float, help="stop when unrealized PnL <= -X (quote)")
    p.add_argument("--take-profit", type=float, help="stop when unrealized PnL >= X (quote)")
    p.add_argument("--boundary-action", choices=list(BOUNDARY_ACTIONS))
    p.add_argument("--boundary-tolerance", type=float, help="fraction beyond the range before acting")
    p.add_argument("--auto-price", action="store_true", help="centre the range on the current price")
    p.add_argument("--price-range", type=float, help="with --auto-price: half-width as a fraction (0.05 = +-5%%)")
    p.add_argument("--duration", type=float, help="seconds to run, 0 = forever")
    p.add_argument("--interval", type=float, help="seconds between loop turns")
    p.add_argument("--backtest", action="store_true", help="run on simulated prices as fast as possible")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--ticks", type=int, help=f"backtest length (default {DEFAULT_BACKTEST_TICKS:,})")
    group.add_argument("--prices", help="backtest on a CSV of time,price")
    p.add_argument("--db-path", help="instance SQLite file (default: $DB_PATH or the config's db_path)")
    p.add_argument("--web-port", type=int, help="serve the page on this port (default: $WEB_PORT)")
    p.add_argument("--no-web", action="store_true", help="never serve the page")
    p.add_argument("--summary-interval", type=float, default=300.0, help="seconds between summaries")
    p.add_argument("--check", action="store_true",
                   help="only load and validate the config as the bot would (no network, orders, files); exit 0 if ok")
    args = p.parse_args(argv)
    if (args.ticks is not None or args.prices) and not args.backtest:
        p.error("--ticks and --prices need --backtest")
    if args.ticks is not None and args.ticks <= 0:
        p.error(f"--ticks: {args.ticks} must be > 0")
    return args


def strategy_overrides(args: argparse.Namespace) -> dict:
    out = {key: getattr(args, dest) for dest, key in STRATEGY_FLAGS.items() if getattr(args, dest) is not None}
    if args.auto_price:
        out["auto_price"] = True
    return out
