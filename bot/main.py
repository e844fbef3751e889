"""The bot's main: arguments, config, exchange, page, start, loop, and the exit code of each end."""
from __future__ import annotations

import gc
import signal
import sqlite3
import traceback
from typing import TYPE_CHECKING

from bot.args import UsageError, parse_args
from bot.modes import check_mode, run_backtest_mode
from bot.output import make_say, write_stop_reason
from bot.wiring import load_config, open_instance, start_page
from core import heartbeat
from core.config_manager import ConfigError
from core.exit_codes import BOT_EXIT_AUTH as EXIT_AUTH, BOT_EXIT_CONFIG as EXIT_USAGE, EXIT_FAIL
from core.masking import Masker
from core.paths import project_home
from exchanges.base import AuthenticationError, ExchangeError

if TYPE_CHECKING:
    from bot.loop import Bot


def collect_from_now() -> None:
    """Start-up is over: the garbage collector (off since run.py) runs again, and what start-up
    made is frozen out of its full passes (it lives as long as the process anyway)."""
    gc.freeze()
    gc.enable()


def cancel_without_books(bot: Bot) -> str:
    """Cancel the instance's resting orders straight on the exchange, for a bot whose books cannot
    be kept (its database cannot be written, or its own shutdown failed): orders nobody books must
    not go on trading. Says what it did."""
    if bot.strategy is None:
        return "it had placed no order"
    try:
        return bot.cancel_unmanaged()
    except sqlite3.Error as exc:        # the paper exchange keeps its orders in that same database
        return f"its resting orders could not be cancelled ({exc})"


def main(argv: list[str] | None = None, parent: int | None = None) -> int:
    """The bot's exit code; parent: the supervisor's pid, taken before any import (run.py)."""
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
            collect_from_now()
            return run_backtest_mode(cfg, args, say)
        from bot.loop import SIGTERM_REASON, Bot  # past --check: the pre-flight of every start loads no loop
        from exchanges import create_exchange

        db, paths = open_instance(cfg, args, home)
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
    except (ExchangeError, ValueError, OSError, sqlite3.Error) as exc:
        tell(f"cannot start: {type(exc).__name__}: {exc}")
        return EXIT_FAIL

    bot = Bot(cfg, args, exchange, db, paths, say, parent)
    signal.signal(signal.SIGTERM, lambda *_: bot.request_stop(SIGTERM_REASON))
    signal.signal(signal.SIGINT, lambda *_: bot.request_stop("interrupted"))
    signal.signal(signal.SIGHUP, lambda *_: bot.runtime.request_reload())
    try:
        start_page(bot, args, say)              # before the first attempt: /health and /api/status show waiting
        collect_from_now()
        try:
            bot.start_trading()
        except UsageError as exc:
            tell("invalid parameters:\n  " + str(exc).replace("\n", "\n  "))
            return EXIT_USAGE
        except ValueError as exc:               # e.g. a symbol the exchange does not list (the valid ones named)
            from strategies.grid_state import StateUnreadable     # loaded already: the strategy raised

            if isinstance(exc, StateUnreadable):    # nothing saved over it; no order trades without it
                tell(f"cannot start: {exc}\n  {bot.cancel_unmanaged()}")
            else:
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
    except sqlite3.Error as exc:                # a full disk, a file-size limit, a damaged file
        reason = (f"cannot write its database {db.path} ({exc}; is the disk full?), so it cannot book what its "
                  f"orders trade: {cancel_without_books(bot)}")
        write_stop_reason(paths, reason)
        tell(f"stopping: {reason}")
        return EXIT_FAIL
    except Exception:                           # a bug: never leave a grid unmanaged
        crash = traceback.format_exc()
        try:
            bot.shutdown("crashed (traceback on stderr)")
        except Exception:
            crash += ("\nwhile cancelling the orders after the crash:\n" + traceback.format_exc()
                      + f"then, without the books: {cancel_without_books(bot)}")
        tell(crash.rstrip())
        return EXIT_FAIL
    finally:
        exchange.close()
        db.close()
