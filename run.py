#!/usr/bin/env python3
"""The bot process: args + config -> exchange + strategy + database + web page, and the loop.

Started by the supervisor as `python run.py --config /abs/config.json` with INSTANCE_ID, DB_PATH,
WEB_PORT, LOG_DIR (and the config's own exchange keys) in the environment, or by hand. Exit codes
(docs/internals.md): 0 normal end (duration reached, strategy stopped, SIGTERM handled), 2 bad
arguments or config (nothing placed), 3 authentication failure, 1 anything else.

`--backtest` runs the same strategy on the paper exchange as fast as possible and prints a report.
`--check` loads and validates the config exactly as the bot would and exits (0 "ok", 2 or 3 with
the messages on stderr) without network, orders, database, page or heartbeat.

Safety rules of the process: it cancels its orders before it prints anything on the way out (the
supervisor reading its stdout may be dead: output failures are swallowed), a crash cancels them
too (exit 1 with the traceback), transient exchange errors at start-up are waited out with a
capped backoff, and a stop the trader must see is written to logs/{id}/stop_reason.
"""
from __future__ import annotations

import argparse
import errno
import json
import math
import os
import queue
import signal
import sys
import tempfile
import threading
import time
import traceback
from concurrent.futures import Future
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

PARENT_PID = os.getppid()   # taken first: a supervisor that dies while we start is still noticed
sys.path.insert(0, str(Path(__file__).resolve().parent))

from core import events, heartbeat  # noqa: E402
from core.atomic import write_text_atomic  # noqa: E402
from core.bot_status import write_bot_status  # noqa: E402
from core.events import append_event  # noqa: E402
from core.config_manager import CHECKED_ENV, ConfigError, ConfigManager, InstanceConfig  # noqa: E402
from core.masking import Masker  # noqa: E402
from core.reload import bot_result_file, write_json  # noqa: E402
from core.stop_time import write_stop_seconds  # noqa: E402
from core.paths import (ENV_API_KEY, ENV_DB_PATH, ENV_INSTANCE_ID, ENV_LOG_DIR, ENV_SECRET_KEY,  # noqa: E402
                        ENV_WEB_PORT, InstancePaths, project_home, resolve_runtime)
from exchanges.base import (AuthenticationError, Exchange, ExchangeError, ExchangeUnavailable,  # noqa: E402
                            RateLimited)
from strategies.grid_math import GRID_MODES, round_to  # noqa: E402
from strategies.grid_params import BOUNDARY_ACTIONS, GRID_TYPES, GridParams, check_params, check_shape  # noqa: E402
from strategies.perp_grid_strategy import PerpGridStrategy  # noqa: E402

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_AUTH = 0, 1, 2, 3
EXIT_TERM = 143  # 128 + SIGTERM: a graceful end on SIGTERM, which the supervisor must tell from "finished"
SIGTERM_REASON = "SIGTERM received"
SNAPSHOT_EVERY_S = 10.0
RECONCILE_EVERY_LOOPS = 30
MAX_BACKOFF_S = 30.0
START_BACKOFF_S = 1.0           # first wait after a transient error at start-up, doubling to MAX_BACKOFF_S
DEFAULT_BACKTEST_TICKS = 100_000
ADJUST_TIMEOUT_S = 30.0
STOP_MARGIN_S = 5.0             # asked beyond the cancels themselves: the reads around them, the exit
STOP_EXIT_S = 1.5               # left of a stop's time for the last words once cancelling gives up
CANCEL_RETRY_S = 0.5            # pause before cancelling again after the venue failed to answer

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


# ---- configuration ----------------------------------------------------------------------------
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


def strategy_overrides(args: argparse.Namespace) -> dict:
    out = {key: getattr(args, dest) for dest, key in STRATEGY_FLAGS.items() if getattr(args, dest) is not None}
    if args.auto_price:
        out["auto_price"] = True
    return out


def grid_params(cfg: InstanceConfig, exchange: Exchange) -> GridParams:
    """GridParams from the config; with auto_price the range is centred on the current price."""
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
    params = grid_params(cfg, exchange)
    errors = check_params(params, exchange.market(params.symbol), exchange.fetch_balance().total,
                          exchange.leverage)
    if errors:
        raise UsageError("\n".join(errors))
    return params


# ---- the runtime the web page reads -----------------------------------------------------------
class BotRuntime:
    """What web/server.py consumes (docs/internals.md): read from any thread, changed on the loop's.

    The loop publishes an immutable snapshot every turn; the page reads it (and the database,
    through its own connection) without touching the strategy. Grid adjustments are queued and
    executed by the loop thread, which answers through a Future.
    """

    def __init__(self, instance_id: str, db: Any) -> None:
        self.instance_id = instance_id
        self.started_at = time.time()
        self._db = db
        self._snapshot: dict = {"instance_id": instance_id, "state": "starting"}
        self._orders: list[dict] = []
        self._last_loop = time.time()
        self._subscribers: list[Callable[[str, dict], None]] = []
        self.requests: queue.Queue[tuple[float | None, float | None, Future]] = queue.Queue()
        self.flattens: queue.Queue[tuple[str, Future]] = queue.Queue()
        self.wake = threading.Event()       # set when the loop has something to do before its next turn
        self.reload_wanted = False          # SIGHUP: re-read the config on the loop thread (Bot.serve_reload)

    def snapshot(self) -> dict:
        return {**self._snapshot, "uptime_s": round(time.time() - self.started_at, 3)}

    def open_orders(self) -> list[dict]:
        return list(self._orders)

    def recent_fills(self, limit: int) -> list[dict]:
        return self._db.recent_fills(limit)

    def pnl_history(self, limit: int) -> list[dict]:
        return self._db.snapshots(limit)

    def loop_age(self) -> float:
        return time.time() - self._last_loop

    def adjust_grid(self, lower: float | None, upper: float | None) -> dict:
        future: Future = Future()
        self.requests.put((lower, upper, future))
        return self._answer(future, "adjustment")

    def flatten(self, reason: str) -> dict:
        """Cancel the grid's orders and close its own position, on the loop thread; the bot then stops."""
        future: Future = Future()
        self.flattens.put((reason, future))
        return self._answer(future, "flatten")

    def _answer(self, future: Future, what: str) -> Any:
        """The loop's answer to a queued request, or a TimeoutError saying whether it was withdrawn."""
        self.wake.set()
        try:
            return future.result(timeout=ADJUST_TIMEOUT_S)
        except TimeoutError:
            if future.cancel():             # still queued: the loop will skip it, never applied late
                raise TimeoutError(f"the bot's loop did not answer in time; the {what} was withdrawn: "
                                   "check /api/status") from None
        try:                                # the loop is applying it already: its outcome is the answer
            return future.result(timeout=ADJUST_TIMEOUT_S)
        except TimeoutError:
            raise TimeoutError(f"the {what} is still being applied; check /api/status") from None

    def subscribe(self, callback: Callable[[str, dict], None]) -> None:
        self._subscribers.append(callback)

    def request_reload(self) -> None:
        """From the SIGHUP handler: a flag, not a queue item (the handler runs on the loop's own
        thread, which may hold the queue's lock at that moment)."""
        self.reload_wanted = True
        self.wake.set()

    # loop-thread side
    def touch(self) -> None:
        """The loop is alive (waiting between turns counts)."""
        self._last_loop = time.time()

    def publish(self, snapshot: dict, orders: list[dict]) -> None:
        self._snapshot, self._orders, self._last_loop = snapshot, orders, time.time()
        self.emit("status_update", snapshot)

    def waiting(self, exchange: str, symbol: str, message: str) -> None:
        """Not trading yet: the exchange failed transiently at start-up and the bot waits to retry."""
        self.publish({"instance_id": self.instance_id, "exchange": exchange, "symbol": symbol,
                      "state": "waiting", "message": message}, [])

    def emit(self, event: str, payload: dict) -> None:
        for callback in list(self._subscribers):
            try:
                callback(event, payload)
            except Exception as exc:  # a page problem must never stop trading
                write_line(f"warning: subscriber failed on {event}: {exc}", err=True)


# ---- the bot ----------------------------------------------------------------------------------
class Bot:
    """The loop around one strategy. Built before any network call (the page shows its waiting
    state); `start` loads the market, checks the grid and places it."""

    def __init__(self, cfg: InstanceConfig, args: argparse.Namespace, exchange: Exchange, db: Any,
                 paths: InstancePaths, say: Callable[[str], None]) -> None:
        self.cfg, self.args, self.exchange, self.db, self.paths, self.say = cfg, args, exchange, db, paths, say
        self.say_dated = stamped(say)  # fills and the strategy's events (range now ...): `logs` shows when
        self.runtime = BotRuntime(cfg.instance_id, db)
        self.strategy: PerpGridStrategy | None = None
        self.stop_event = threading.Event()
        self.stop_reason = ""
        self.interval = float(cfg.strategy.get("interval") or 5)
        self.duration = float(cfg.strategy.get("duration") or 0)
        self.equity = 0.0
        self._pnl_at_equity = 0.0
        self.loops = 0
        self.parent = PARENT_PID
        self._last_snap = 0.0
        self.stop_timeout = float(cfg.daemon.get("stop_timeout") or 10)
        self.stop_requested_at: float | None = None     # monotonic: the clock of the supervisor's SIGKILL
        self._stop_seconds_said: int | None = None

    def request_stop(self, reason: str) -> None:
        self.stop_reason = self.stop_reason or reason
        if self.stop_requested_at is None:
            self.stop_requested_at = time.monotonic()
        self.stop_event.set()
        self.runtime.wake.set()

    def snapshot(self, orders: list[dict]) -> dict:
        """The page's status; `orders` are the strategy's open orders of this turn (built once)."""
        assert self.strategy is not None
        s = self.strategy.summary()
        return {"instance_id": self.cfg.instance_id, "symbol": self.strategy.params.symbol,
                "exchange": self.cfg.metadata["exchange"], "price": s["price"], "grid": self.strategy.grid_dict(),
                "position": {"qty": s["position"], "entry_price": s["entry_price"],
                             "unrealized_pnl": s["unrealized_pnl"]},
                "realized_pnl": s["realized_pnl"], "unrealized_pnl": s["unrealized_pnl"],
                "grid_profit": s["grid_profit"], "fees": s["fees"], "volume": s["volume"],
                "fill_count": s["fill_count"], "equity": self.live_equity(s),
                "open_order_count": len(orders),
                "uptime_s": round(time.time() - self.runtime.started_at, 3), "state": s["state"]}

    def live_equity(self, s: dict) -> float:
        """Equity in step with this turn's price and PnL: the balance is fetched every
        SNAPSHOT_EVERY_S (a request to the venue), the PnL moved since then is added to it."""
        return self.equity + (s["realized_pnl"] + s["unrealized_pnl"] - s["fees"]) - self._pnl_at_equity

    def summary_line(self, label: str) -> str:
        assert self.strategy is not None
        s = self.strategy.summary()
        return (f"[{utc_stamp()}] {label} {self.cfg.instance_id} {self.strategy.params.symbol}: price {s['price']:.4f} | "
                f"position {s['position']:g} @ {s['entry_price']:.4f} | grid profit {s['grid_profit']:.4f} | "
                f"realized {s['realized_pnl']:.4f} | unrealized {s['unrealized_pnl']:.4f} | fees {s['fees']:.4f} | "
                f"volume {s['volume']:.2f} | fills {s['fill_count']} | open orders {len(self.strategy.open_orders())}")

    def publish(self, force_snapshot: bool = False) -> None:
        assert self.strategy is not None
        now = time.time()
        if force_snapshot or now - self._last_snap >= SNAPSHOT_EVERY_S:
            self._last_snap = now
            self.equity = self.exchange.fetch_balance().total
            s = self.strategy.summary()
            self._pnl_at_equity = s["realized_pnl"] + s["unrealized_pnl"] - s["fees"]
            self.db.add_snapshot(int(now * 1000), s["price"], self.equity, s["realized_pnl"], s["unrealized_pnl"],
                                 s["grid_profit"], s["position"], s["fees"])
        orders = self.strategy.open_orders()
        self.ask_stop_time(len(orders))
        snapshot = self.snapshot(orders)
        self.runtime.publish(snapshot, orders)
        self.write_status("trading" if snapshot["state"] == "running" else snapshot["state"], None, snapshot)

    def stop_time(self) -> float:
        """Seconds a stop may take: stop_timeout, or what the bot last asked the supervisor for."""
        return max(self.stop_timeout, float(self._stop_seconds_said or 0))

    def ask_stop_time(self, order_count: int) -> None:
        """Tell the supervisor how long cancelling `order_count` orders needs (core/stop_time.py):
        twice the exchange's estimate (a retry after a rate limit) plus STOP_MARGIN_S for the reads
        around it. Written only when the whole seconds change."""
        need = math.ceil(2 * self.exchange.cancel_seconds(order_count) + STOP_MARGIN_S)
        if need == self._stop_seconds_said:
            return
        try:
            write_stop_seconds(self.paths.stop_seconds, need)
            self._stop_seconds_said = need
        except OSError as exc:
            write_line(f"warning: could not write {self.paths.stop_seconds}: {exc}", err=True)

    def write_status(self, state: str, message: str | None, snapshot: dict | None = None) -> None:
        """Publish the books for `list`, `resume` and the dashboard (core/bot_status.py); a failed
        write (disk full) is reported and never stops trading."""
        s = snapshot or {}
        grid, position = s.get("grid") or {}, s.get("position") or {}
        market = self.strategy.market if self.strategy is not None else None
        try:
            write_bot_status(self.paths.bot_status, {
                "instance_id": self.cfg.instance_id, "exchange": self.cfg.metadata["exchange"],
                "symbol": self.cfg.metadata["symbol"], "quote": market.quote if market else None,
                "state": state, "message": message, "price": s.get("price"),
                "grid_lower": grid.get("lower"), "grid_upper": grid.get("upper"),
                "position": position.get("qty"), "entry_price": position.get("entry_price"),
                "unrealized_pnl": s.get("unrealized_pnl"), "realized_pnl": s.get("realized_pnl"),
                "grid_profit": s.get("grid_profit"), "fees": s.get("fees"), "equity": s.get("equity"),
                "fill_count": s.get("fill_count"), "open_order_count": s.get("open_order_count"),
                "updated_at": round(time.time(), 3)})
        except OSError as exc:
            write_line(f"warning: could not write {self.paths.bot_status}: {exc}", err=True)

    def start(self) -> None:
        """Market, parameters, the grid: raises ExchangeError (transient ones are retried by
        `start_trading`), UsageError or ValueError (bad config or symbol: exit 2)."""
        params = checked_params(self.cfg, self.exchange)
        if self.strategy is None or self.strategy.config_params != params:
            self.strategy = PerpGridStrategy(self.exchange, params, self.cfg.instance_id, store=self.db, log=self.say_dated,
                                             on_fill=self.on_fill,
                                             adopt_position=bool(self.cfg.strategy.get("adopt_position")))
        self.say(self.starting_line())
        _, error = self.atomically(self.strategy.start)
        if error is not None:
            raise error
        self.publish(force_snapshot=True)
        self.say(self.summary_line("START"))

    def on_fill(self, fill: dict) -> None:
        """One dated line per fill in the bot's log, and the fill to the page."""
        profit = f", grid profit {fill['profit']:+.4f}" if fill.get("profit") else ""
        self.say_dated(f"FILL {self.cfg.instance_id} {self.strategy.params.symbol}: {fill['side']} {fill['qty']:g} @ "
                        f"{fill['price']:g} (level {fill['level']}, fee {fill['fee']:.4f}{profit}, trade {fill['trade_id']})")
        self.runtime.emit("fill", fill)
        # for the notifier (fill alerts are off unless the trader turns them on); never raises
        append_event(self.paths, events.FILL, on_error=lambda why: write_line(f"warning: {why}", err=True),
                     symbol=self.strategy.params.symbol, side=fill["side"], price=fill["price"], qty=fill["qty"])

    def starting_line(self) -> str:
        assert self.strategy is not None
        p = self.strategy.params
        return (f"starting {self.cfg.instance_id}: exchange {self.cfg.metadata['exchange']}, symbol {p.symbol}, "
                f"grid {p.lower}..{p.upper} x{p.num} {p.mode} {p.grid_type}, quantity {p.quantity}, "
                f"max position {p.max_position}, stop loss {p.stop_loss}, take profit {p.take_profit}, "
                f"boundary {p.boundary_action} (tolerance {p.boundary_tolerance:g}), "
                f"interval {self.interval:g} s, db {self.db.path}")

    def start_trading(self) -> None:
        """`start`, waiting out transient exchange errors (venue down, rate limited) with a capped
        backoff instead of exiting: the heartbeat and the page stay fresh meanwhile (alive, not
        hung), and a SIGTERM ends the wait. Other errors propagate."""
        delay = START_BACKOFF_S
        while not self.stop_event.is_set():
            try:
                self.start()
                return
            except (ExchangeUnavailable, RateLimited) as exc:
                wait = max(delay, exc.retry_after if isinstance(exc, RateLimited) else 0.0)
                message = f"exchange not available at start-up ({type(exc).__name__}: {exc}); retrying in {wait:.0f} s"
                self.say(message)
                self.runtime.waiting(self.cfg.metadata["exchange"], self.cfg.metadata["symbol"], message)
                self.write_status("waiting", message)
                self.pause(time.monotonic() + wait)
                delay = min(MAX_BACKOFF_S, delay * 2)

    def serve_adjustments(self) -> None:
        assert self.strategy is not None
        strategy = self.strategy
        while True:
            try:
                lower, upper, future = self.runtime.requests.get_nowait()
            except queue.Empty:
                return
            if not future.set_running_or_notify_cancel():
                continue                    # the page gave up waiting
            grid, error = self.atomically(lambda: strategy.adjust_grid_range(lower, upper))
            if isinstance(error, ExchangeError):
                error = ValueError(f"exchange error while adjusting: {error}")
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(grid)
                self.runtime.emit("grid_adjusted", grid)

    def serve_reload(self) -> None:
        """SIGHUP (`daemon-manager reload`): re-read the config, check it as `--check` does, apply
        the changed live settings (strategies/reconfigure.py) and answer the supervisor in a file."""
        if not self.runtime.reload_wanted:
            return
        self.runtime.reload_wanted = False
        status, message = self.reload_config()
        self.say(f"reload {status}: {message}")
        try:
            write_json(bot_result_file(self.paths), {"status": status, "message": message})
        except OSError as exc:
            write_line(f"warning: could not answer the reload: {exc}", err=True)
        if self.strategy is not None:
            self.publish()

    def reload_config(self) -> tuple[str, str]:
        """(status, message): applied, rejected (nothing changed), rolled_back or in_doubt."""
        from strategies.reconfigure import LIVE_FIELDS, AdjustFailed, apply_params, merged

        try:
            new = load_config(self.args, project_home())
        except (ConfigError, UsageError) as exc:
            return "rejected", f"invalid config: {exc}"
        old_s, new_s = self.cfg.strategy, new.strategy
        fixed = [k for k in sorted(set(old_s) | set(new_s)) if k not in LIVE_FIELDS and k != "interval"
                 and old_s.get(k) != new_s.get(k)]
        fixed += [f"metadata.{k}" for k in ("exchange", "symbol") if self.cfg.metadata[k] != new.metadata[k]]
        if fixed:
            return "rejected", f"{', '.join(fixed)} changed: these need a restart"
        changed = {k for k in (*LIVE_FIELDS, "interval") if old_s.get(k) != new_s.get(k)}
        done = "no order touched"
        if self.strategy is not None and changed & LIVE_FIELDS.keys():
            strategy = self.strategy
            try:
                fresh = grid_params(new, self.exchange)
                params = merged(strategy.params, fresh, changed)
            except (UsageError, ValueError, ExchangeError) as exc:
                return "rejected", f"{exc}; nothing changed"
            outcome, error = self.atomically(lambda: apply_params(strategy, params))
            if isinstance(error, AdjustFailed):
                return error.outcome.replace(" ", "_"), str(error)
            if error is not None:
                return "rejected", f"{error}; nothing changed"
            strategy.config_params = fresh  # the file a restart reads: a range set live stays unless it was edited
            self.runtime.emit("grid_adjusted", strategy.grid_dict())
            done = f"kept {outcome.kept} orders, cancelled {outcome.cancelled}, placed {outcome.placed}"
        self.cfg = new
        self.interval = float(new_s.get("interval") or 5)
        return "applied", f"{', '.join(sorted(changed)) or 'nothing'} changed; {done}"

    def serve_flattens(self) -> None:
        """A flatten asked by the trader (page or dashboard): the strategy closes and stops; the
        loop then ends like after a stop-loss, with the reason in stop_reason."""
        assert self.strategy is not None
        strategy = self.strategy
        while True:
            try:
                reason, future = self.runtime.flattens.get_nowait()
            except queue.Empty:
                return
            if not future.set_running_or_notify_cancel():
                continue
            _, error = self.atomically(lambda: strategy.flatten(reason))
            if error is not None:           # the close is sticky: the next turns finish it
                future.set_exception(ValueError(f"flatten begun, not finished ({error}); it completes on the "
                                                "next turns"))
            else:
                future.set_result({"state": strategy.state, "position": strategy.position, "owned": strategy.owned()})

    def atomically(self, action: Callable[[], Any]) -> tuple[Any, Exception | None]:
        """Run `action` in one transaction that commits even when it fails with an exchange error.

        The strategy has already booked (in memory and in the same transaction) whatever happened
        before the error; rolling that back would make it book the same fills again next turn.
        Anything else (a bug) rolls back and ends the process, which restarts from the database.
        """
        with self.db.transaction():
            try:
                return action(), None
            except (ExchangeError, ValueError) as exc:
                return None, exc

    def turn(self) -> None:
        assert self.strategy is not None
        strategy = self.strategy

        def one_turn() -> None:
            step = getattr(self.exchange, "step", None)
            if step is not None and not step():
                self.request_stop("the price replay reached its end")
            strategy.step()
            self.loops += 1
            if self.loops % RECONCILE_EVERY_LOOPS == 0:
                strategy.reconcile()

        _, error = self.atomically(one_turn)
        if error is not None:
            raise error

    def run(self) -> int:
        """The loop: returns the exit code."""
        assert self.strategy is not None
        started = time.monotonic()
        last_summary = time.monotonic()
        backoff = 0.0
        while not self.stop_event.is_set():
            turn_start = time.monotonic()
            wait = self.interval
            try:
                self.serve_adjustments()
                self.serve_reload()
                self.serve_flattens()
                if not self.strategy.stopped:   # a flatten has just closed it: no turn after that
                    self.turn()
                self.publish()
                backoff = 0.0
            except AuthenticationError as exc:
                message = f"authentication failed: {exc}; check the exchange keys of this config"
                self.shutdown("authentication failure", cancel=False)
                self.say(message)
                write_stop_reason(self.paths, f"{message} (orders may remain on the exchange)")
                return EXIT_AUTH
            except RateLimited as exc:
                self.say(f"rate limited: waiting {exc.retry_after:.1f} s")
                wait = exc.retry_after
            except ExchangeError as exc:       # ExchangeUnavailable and the rest: never crash-loop
                backoff = min(MAX_BACKOFF_S, backoff * 2 or self.interval)
                self.say(f"exchange error ({type(exc).__name__}: {exc}); retrying in {backoff:.0f} s")
                wait = backoff
            if self.strategy.stopped:
                self.request_stop(f"strategy stopped: {self.strategy.stop_reason}")
            if self.duration and time.monotonic() - started >= self.duration:
                self.request_stop(f"duration of {self.duration:g} s reached")
            if time.monotonic() - last_summary >= self.args.summary_interval:
                last_summary = time.monotonic()
                self.say(self.summary_line("SUMMARY"))
            self.pause(min(turn_start + wait, started + self.duration) if self.duration else turn_start + wait)
        if self.strategy.stopped:               # stop-loss, take-profit, range exit: the trader must know
            write_stop_reason(self.paths, self.strategy.stop_reason)
        return self.exit_code(self.shutdown(self.stop_reason))

    def exit_code(self, shut_down: bool) -> int:
        """0 only for an end of its own (duration, strategy stop): after a SIGTERM the supervisor
        did not send, 0 would read as "finished" and the bot would never be restarted."""
        if not shut_down:
            return EXIT_FAIL
        return EXIT_TERM if self.stop_reason == SIGTERM_REASON else EXIT_OK

    def pause(self, deadline: float) -> None:
        """Wait for the next turn while staying alive to the supervisor, the page and signals.

        The heartbeat and loop age are refreshed every second even with a long interval or
        backoff, so a slow but healthy bot is never taken for a hung one.
        """
        supervised = bool(os.environ.get(ENV_INSTANCE_ID))
        while True:
            heartbeat.beat(self.paths.heartbeat)
            self.runtime.touch()
            if supervised and os.getppid() != self.parent:
                self.request_stop("the supervisor is gone")
            if self.stop_event.is_set() or time.monotonic() >= deadline:
                return
            if self.runtime.reload_wanted:
                self.serve_reload()
            if self.strategy is not None and not self.runtime.requests.empty():
                self.serve_adjustments()
                self.publish()
            self.runtime.wake.wait(min(1.0, max(0.0, deadline - time.monotonic())))
            self.runtime.wake.clear()

    def cancel_until_deadline(self, cancel: Callable[[], Any]) -> Exception | None:
        """Run `cancel` (one transaction each time), retrying transient exchange errors until the
        time the supervisor gives this stop is nearly spent; the last error, or None when done.

        A rate limit or a venue hiccup in the middle of a stop must not leave orders resting that
        a second attempt would have cancelled; the deadline keeps the bot ahead of its SIGKILL, so
        it can still say what is left.
        """
        begun = self.stop_requested_at if self.stop_requested_at is not None else time.monotonic()
        deadline = begun + self.stop_time() - STOP_EXIT_S
        while True:
            _, error = self.atomically(cancel)
            if not isinstance(error, (RateLimited, ExchangeUnavailable)):
                return error
            wait = error.retry_after if isinstance(error, RateLimited) else CANCEL_RETRY_S
            if time.monotonic() + wait > deadline:
                return error
            time.sleep(wait)

    def shutdown(self, reason: str, cancel: bool = True) -> bool:
        """Cancel our orders, then flush the database and print the final summary; False (and a
        stop_reason) when some orders may remain on the exchange.

        Cancelling comes before any output: when the supervisor dies its pipe has no reader, and
        nothing the bot prints may stand between that moment and the orders' cancellation.
        """
        if self.strategy is None:               # never started trading: nothing placed
            self.say(f"stopping: {reason}")
            return True
        cancelled, failure = True, ""
        if cancel:
            strategy = self.strategy
            error = self.cancel_until_deadline(lambda: strategy.shutdown(reason))
            if error is not None:
                cancelled = False
                remaining = len(strategy.open_orders())
                failure = f"cancel failed: {remaining} orders may remain on the exchange: {error}"
                write_stop_reason(self.paths, failure)
        self.say(f"stopping: {reason}")
        if not cancelled:
            self.say(failure)
        try:
            self.publish(force_snapshot=True)
        except ExchangeError as exc:
            self.say(f"could not read the final balance: {exc}")
        self.say(self.summary_line("FINAL"))
        self.db.checkpoint()
        return cancelled


# ---- output and files -------------------------------------------------------------------------
def _silence_output() -> None:
    """Our output's reader is gone (EPIPE): send fds 1 and 2 to /dev/null so nothing fails again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        os.close(devnull)
    except OSError:
        pass


def write_line(text: str, err: bool = False) -> None:
    """Print one line; never raises (a dead supervisor must not stop the bot from cancelling)."""
    try:
        print(text, file=sys.stderr if err else sys.stdout, flush=True)
    except OSError as exc:
        if exc.errno == errno.EPIPE:
            _silence_output()


def make_say(masker: Masker, err: bool = False) -> Callable[[str], None]:
    def say(message: str) -> None:
        write_line(masker(message), err=err)
    return say


def utc_stamp() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def stamped(say: Callable[[str], None]) -> Callable[[str], None]:
    """say(), each line prefixed with the UTC time: the supervisor logs the bot's lines as they are."""
    def say_dated(message: str) -> None:
        say(f"[{utc_stamp()}] {message}")
    return say_dated


def write_stop_reason(paths: InstancePaths, text: str) -> None:
    """logs/{id}/stop_reason, atomically (temp file + os.replace): the supervisor reads it at exit."""
    target = paths.stop_reason
    try:
        write_text_atomic(target, text.replace("\n", " ").strip() + "\n")
    except OSError as exc:
        write_line(f"warning: could not write {target}: {exc}", err=True)


# ---- entry points -----------------------------------------------------------------------------
def run_backtest_mode(cfg: InstanceConfig, args: argparse.Namespace, say: Callable[[str], None]) -> int:
    from exchanges.paper_exchange import PaperExchange
    from strategies.backtest import run_backtest

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
    try:
        start_web(bot.runtime, None, int(port), bot.paths, allowed_hosts=bot.cfg.daemon.get("web_allowed_hosts") or ())
    except (OSError, ValueError) as exc:
        say(f"warning: could not serve the web page on port {port}: {exc}; running without it")


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


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    home = project_home()
    masker = Masker()
    say, tell = make_say(masker), make_say(masker, err=True)
    try:
        cfg = load_config(args, home)
        masker = Masker(cfg.secrets())
        say, tell = make_say(masker), make_say(masker, err=True)
        if args.check:
            return check_mode(cfg, say)
        if args.backtest:
            return run_backtest_mode(cfg, args, say)
        db, paths = open_instance(cfg, args, home)
        from exchanges import create_exchange

        exchange = create_exchange(cfg.metadata["exchange"], cfg.exchange, instance_id=cfg.instance_id, db=db)
    except ConfigError as exc:
        tell("invalid configuration:\n  " + "\n  ".join(exc.errors))
        return EXIT_USAGE
    except UsageError as exc:
        tell("invalid parameters:\n  " + str(exc).replace("\n", "\n  "))
        return EXIT_USAGE
    except AuthenticationError as exc:
        tell(f"authentication failed: {exc}")
        return EXIT_AUTH
    except (ExchangeError, ValueError, OSError) as exc:
        tell(f"cannot start: {type(exc).__name__}: {exc}")
        return EXIT_FAIL

    bot = Bot(cfg, args, exchange, db, paths, say)
    signal.signal(signal.SIGTERM, lambda *_: bot.request_stop(SIGTERM_REASON))
    signal.signal(signal.SIGINT, lambda *_: bot.request_stop("interrupted"))
    signal.signal(signal.SIGHUP, lambda *_: bot.runtime.request_reload())
    try:
        start_page(bot, args, say)              # before the first attempt: /health and /api/status show waiting
        try:
            bot.start_trading()
        except UsageError as exc:
            tell("invalid parameters:\n  " + str(exc).replace("\n", "\n  "))
            return EXIT_USAGE
        except ValueError as exc:               # e.g. a symbol the exchange does not list (the valid ones named)
            tell(f"invalid configuration:\n  {exc}")
            return EXIT_USAGE
        if bot.strategy is None:                # stopped (SIGTERM, supervisor gone) while waiting
            return bot.exit_code(bot.shutdown(bot.stop_reason))
        # Ready: the grid is placed and the page listens, so `start` reports the real port.
        heartbeat.beat(paths.heartbeat)
        return bot.run()
    except AuthenticationError as exc:
        tell(f"authentication failed: {exc}")
        return EXIT_AUTH
    except ExchangeError as exc:
        tell(f"cannot start trading: {type(exc).__name__}: {exc}")
        return EXIT_FAIL
    except Exception:                           # a bug: never leave a grid unmanaged
        crash = traceback.format_exc()
        try:
            bot.shutdown("crashed (traceback on stderr)")
        except Exception:
            crash += "\nwhile cancelling the orders after the crash:\n" + traceback.format_exc()
        tell(crash.rstrip())
        return EXIT_FAIL
    finally:
        exchange.close()
        db.close()


if __name__ == "__main__":
    sys.exit(main())
