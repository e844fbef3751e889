"""BotRuntime: what web/server.py consumes (docs/internals.md), read from any thread."""
from __future__ import annotations

import queue
import threading
import time
from typing import TYPE_CHECKING, Any, Callable

from bot.output import write_line

if TYPE_CHECKING:   # made only when the page asks for an adjustment or a flatten (a paper bot's start skips the import)
    from concurrent.futures import Future

ADJUST_TIMEOUT_S = 30.0


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
        from concurrent.futures import Future

        future: Future = Future()
        self.requests.put((lower, upper, future))
        return self._answer(future, "adjustment")

    def flatten(self, reason: str) -> dict:
        """Cancel the grid's orders and close its own position, on the loop thread; the bot then stops."""
        from concurrent.futures import Future

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
