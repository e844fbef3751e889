"""The bot's other modes: `--check` (every check before trading, without network, orders or files)
and `--backtest` (the same strategy on the paper exchange, as fast as it goes)."""
from __future__ import annotations

import argparse
from typing import Callable

from bot.args import DEFAULT_BACKTEST_TICKS, UsageError
from bot.wiring import auto_price_range, checked_params
from core.config_manager import InstanceConfig
from core.exit_codes import EXIT_OK


def run_backtest_mode(cfg: InstanceConfig, args: argparse.Namespace, say: Callable[[str], None]) -> int:
    from exchanges.paper_exchange import PaperExchange
    from strategies.backtest import run_backtest
    from strategies.perp_grid_strategy import PerpGridStrategy

    exchange_cfg = dict(cfg.exchange)
    if args.prices:
        exchange_cfg["price_csv"] = args.prices
    exchange_cfg.pop("price_source", None)
    if cfg.metadata["exchange"] != "paper":
        say(f"backtest: simulating {cfg.metadata['exchange']} with the paper exchange's fees and sizes")
    try:
        # a random walk's clock starts at 0 (a replay at its first row): funding falls the same every run
        exchange = PaperExchange.from_config(exchange_cfg, instance_id=cfg.instance_id,
                                             start_ms=None if exchange_cfg.get("price_csv") else 0)
    except (OSError, ValueError) as exc:
        raise UsageError(f"backtest prices: {exc}") from None
    params = checked_params(cfg, exchange)
    strategy = PerpGridStrategy(exchange, params, cfg.instance_id, log=lambda _m: None)
    ticks = args.ticks or (10 ** 12 if args.prices else DEFAULT_BACKTEST_TICKS)
    report = run_backtest(exchange, strategy, ticks)
    say(f"backtest {cfg.instance_id}: {params.symbol} grid {params.lower}..{params.upper} x{params.num} "
        f"{params.mode} {params.grid_type}, quantity {params.quantity}")
    say(report.text())
    return EXIT_OK


def check_mode(cfg: InstanceConfig, say: Callable[[str], None]) -> int:
    """`--check`: every check the bot makes before trading, without network, orders or files.

    Paper: the market and account come from exchange_config (tick, step, min_qty, balance,
    leverage), so every parameter check runs. A real exchange: the keys must be there (exit 3
    naming the variable) and the parameters that need no market must hold.
    """
    name = cfg.metadata["exchange"]
    symbol = cfg.metadata["symbol"]
    if name != "paper":
        from exchanges import api_keys
        from strategies.grid_params import GridParams, check_shape

        api_keys(name, cfg.exchange)            # AuthenticationError naming what is missing
        strategy = dict(cfg.strategy)
        if strategy.get("auto_price"):          # the range needs the live price: check its width only
            r = auto_price_range(strategy)
            strategy["grid_lower_price"], strategy["grid_upper_price"] = 1 - r, 1 + r
        strategy.setdefault("quantity", None)
        if strategy["quantity"] is None:
            strategy["quantity"] = 0.0          # the market's minimum, known only to the venue
        errors = check_shape(GridParams.from_strategy_config(strategy, symbol))
        if errors:
            raise UsageError("\n".join(errors))
        say(f"ok: {cfg.instance_id} on {name} {symbol} (keys present; the market checks run at start)")
        return EXIT_OK
    from exchanges.paper_exchange import PaperExchange
    from exchanges.paper_prices import RandomWalk

    exchange_cfg = dict(cfg.exchange)
    source = None
    if not exchange_cfg.get("price_csv"):       # a CSV is read as the bot would; a live source is not fetched
        source = RandomWalk(float(exchange_cfg.get("initial_price") or 100.0), 0.0, 0)
        exchange_cfg.pop("price_source", None)
    exchange = PaperExchange.from_config(exchange_cfg, instance_id=cfg.instance_id, source=source)
    params = checked_params(cfg, exchange)
    say(f"ok: {cfg.instance_id} on paper {symbol}: grid {params.lower}..{params.upper} x{params.num} "
        f"{params.mode} {params.grid_type}, quantity {params.quantity}")
    return EXIT_OK
