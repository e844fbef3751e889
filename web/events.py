"""Relay of the bot's events to Socket.IO clients, off the bot's thread.

The bot calls `on_event` from its loop and must never wait for a slow browser, so the callback only
records the event; a background task emits it. `status_update` arrives every loop and is coalesced
to at most one per `status_interval` seconds; `fill` and `grid_adjusted` are each sent.
"""
from __future__ import annotations

import collections
import logging
import threading
import time
from typing import Any, Callable

log = logging.getLogger(__name__)

STATUS = "status_update"
PASSED_THROUGH = ("fill", "grid_adjusted")
MAX_QUEUED = 1000


class EventRelay:
    def __init__(self, emit: Callable[[str, Any], None], status: Callable[[], dict],
                 status_interval: float = 1.0) -> None:
        self._emit = emit
        self._status = status
        self._status_interval = status_interval
        self._queue: collections.deque[tuple[str, dict]] = collections.deque(maxlen=MAX_QUEUED)
        self._status_pending = False
        self._wake = threading.Event()

    def on_event(self, event: str, payload: dict) -> None:
        """The runtime's subscriber: never blocks."""
        if event == STATUS:
            self._status_pending = True
        elif event in PASSED_THROUGH:
            self._queue.append((event, payload))
        else:
            return
        self._wake.set()

    def run(self) -> None:
        """Forever: send queued events at once, the latest status at most once per interval."""
        last_status = 0.0
        while True:
            self._wake.wait(self._status_interval)
            self._wake.clear()
            try:
                while self._queue:
                    self._emit(*self._queue.popleft())
                now = time.monotonic()
                if self._status_pending and now - last_status >= self._status_interval:
                    self._status_pending = False
                    last_status = now
                    self._emit(STATUS, self._status())
            except Exception:  # a broken client or snapshot must not end live updates
                log.exception("web: could not push an event")
