"""Bot: the loop around one strategy (start, turns, the page's requests, reload, stop).

Safety rules: it cancels its orders before it prints anything on the way out (the supervisor
reading its stdout may be dead: output failures are swallowed), transient exchange errors at
start-up are waited out with a capped backoff, and a stop the trader must see is written to
logs/{id}/stop_reason.
"""
from __future__ import annotations

import argparse
import math
import os
import queue
import threading
import time
from typing import TYPE_CHECKING, Any, Callable

from bot.args import UsageError
from bot.output import stamped, utc_stamp, write_line, write_stop_reason
from bot.runtime import BotRuntime
from bot.wiring import checked_params, grid_params, load_config
from core import events, heartbeat
from core.bot_status import write_bot_status
from core.config_manager import ConfigError, InstanceConfig
from core.events import append_event
from core.exit_codes import BOT_EXIT_AUTH as EXIT_AUTH, BOT_EXIT_TERM as EXIT_TERM, EXIT_FAIL, EXIT_OK
from core.paths import ENV_INSTANCE_ID, InstancePaths, project_home
from core.stop_time import write_stop_seconds
from exchanges.base import (AuthenticationError, Exchange, ExchangeError, ExchangeUnavailable, OrderNotFound,
                            RateLimited)

if TYPE_CHECKING:   # the strategy is imported by `start`, once the page answers (web/server.py): it needs none of it
    from strategies.perp_grid_strategy import PerpGridStrategy

SIGTERM_REASON = "SIGTERM received"
SNAPSHOT_EVERY_S = 10.0
RECONCILE_EVERY_LOOPS = 30
MAX_BACKOFF_S = 30.0
START_BACKOFF_S = 1.0           # first wait after a transient error at start-up, doubling to MAX_BACKOFF_S
STOP_MARGIN_S = 5.0             # asked beyond the cancels themselves: the reads around them, the exit
STOP_EXIT_S = 1.5               # left of a stop's time for the last words once cancelling gives up
CANCEL_RETRY_S = 0.5            # pause before cancelling again after the venue failed to answer
LATE_FILLS_WAIT_S = 5.0         # most a stop waits for fills the venue lists late (within its time)
LATE_FILLS_POLL_S = 0.25        # between two looks at the fill history while it waits


class Bot:
    """The loop around one strategy. Built before any network call (the page shows its waiting
    state); `start` loads the market, checks the grid and places it."""

    def __init__(self, cfg: InstanceConfig, args: argparse.Namespace, exchange: Exchange, db: Any,
                 paths: InstancePaths, say: Callable[[str], None], parent: int | None = None) -> None:
        """parent: the supervisor's pid as the process saw it first (run.py takes it before any
        import), so a supervisor that dies while the bot starts is still noticed."""
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
        self.parent = os.getppid() if parent is None else parent
        self._last_snap = 0.0
        self.stop_timeout = float(cfg.daemon.get("stop_timeout") or 10)
        self.stop_requested_at: float | None = None     # monotonic: the clock of the supervisor's SIGKILL
        self._stop_seconds_said: int | None = None
        self.unannounced: list[dict] = []   # fills booked by a transaction not committed yet (on_fill)

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
        from strategies.perp_grid_strategy import PerpGridStrategy

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
        """A fill was booked: it is announced once the transaction that booked it commits
        (`atomically`). A turn that fails after booking is rolled back and its fills are booked
        again by the next life, so announcing at once would alert for fills the books then lose,
        and a second time for the same trade."""
        self.unannounced.append(fill)

    def announce(self, fill: dict) -> None:
        """One dated line per fill in the bot's log, the fill to the page, and an event."""
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

    def cancel_unmanaged(self) -> str:
        """Cancel this instance's resting orders (by client id: never the trader's own) straight on
        the exchange, without the books' cells or the store: for a bot that cannot read its saved
        books (its strategy exists: its start raised), whose orders must not go on trading
        unmanaged. Says what it did."""
        assert self.strategy is not None
        book = self.strategy.book
        try:
            mine = [o.id for o in book.our_open_orders()]
            results = self.exchange.cancel_orders(book.symbol, mine)
        except ExchangeError as exc:
            return f"its resting orders could not be cancelled ({exc}): cancel them on the exchange"
        failed = [r for r in results if isinstance(r, ExchangeError) and not isinstance(r, OrderNotFound)]
        if failed:
            return (f"{len(failed)} of its {len(mine)} resting orders could not be cancelled ({failed[0]}): "
                    "cancel them on the exchange")
        return f"its {len(mine)} resting orders were cancelled; its position is as it was"

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
        from core.reload import bot_result_file, write_json  # only a SIGHUP asks: a start skips it

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
        """Run `action` in one transaction that commits even when it fails with an exchange error,
        then announce the fills it booked.

        The strategy has already booked (in memory and in the same transaction) whatever happened
        before the error; rolling that back would make it book the same fills again next turn.
        Anything else (a bug, a full disk) rolls back and ends the process, which restarts from the
        database and books those fills again: they are announced by that life, not by this one.
        """
        try:
            with self.db.transaction():
                try:
                    result, error = action(), None
                except (ExchangeError, ValueError) as exc:
                    result, error = None, exc
        except BaseException:
            self.unannounced.clear()
            raise
        fills, self.unannounced = self.unannounced, []
        for fill in fills:
            self.announce(fill)
        return result, error

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
        deadline = self.stop_deadline()
        while True:
            _, error = self.atomically(cancel)
            if not isinstance(error, (RateLimited, ExchangeUnavailable)):
                return error
            wait = error.retry_after if isinstance(error, RateLimited) else CANCEL_RETRY_S
            if time.monotonic() + wait > deadline:
                return error
            time.sleep(wait)

    def stop_deadline(self) -> float:
        """The monotonic time by which a stop's work must end: the stop's time from its request
        (or from now, for a stop the bot decided itself), less STOP_EXIT_S for the last words, so
        the bot is done before its supervisor's SIGKILL."""
        begun = self.stop_requested_at if self.stop_requested_at is not None else time.monotonic()
        return begun + self.stop_time() - STOP_EXIT_S

    def await_late_fills(self) -> None:
        """Book the fills of orders that filled just before the cancel and that the venue lists
        late, waiting at most LATE_FILLS_WAIT_S within the stop's time: the books (and `list`'s
        PnL) must equal the exchange between this stop and the next start. What is still unlisted
        then (an order cancelled elsewhere looks the same) is said, and the next start books it."""
        from strategies.book_records import EPS

        assert self.strategy is not None
        strategy = self.strategy
        deadline = min(time.monotonic() + LATE_FILLS_WAIT_S, self.stop_deadline())
        unlisted, error = self.atomically(strategy.book_late_fills)
        while error is None and abs(unlisted) > EPS and time.monotonic() + LATE_FILLS_POLL_S < deadline:
            time.sleep(LATE_FILLS_POLL_S)
            unlisted, error = self.atomically(strategy.book_late_fills)
        if error is not None:
            self.say(f"could not read the late fills: {error}; the next start books them")
        elif abs(unlisted) > EPS:
            self.say(f"stopping with {unlisted:g} of our orders' fills not listed by the exchange yet; "
                     "the next start books them")

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
            else:
                self.await_late_fills()
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
