"""How long a stopping bot may take: the bot says what its resting orders need, the supervisor
and `stop` wait that long.

Why: clearing a grid takes time that grows with its order count and the venue's latency (119
orders at 120 ms, one request at a time: 14 s). A fixed `stop_timeout` either kills a bot while
its orders still rest on the book, or makes every stop wait for the worst case. So the bot keeps
`logs/{id}/stop_seconds` (one number) up to date with what cancelling its current orders needs,
and the supervisor's SIGKILL and the CLI's wait use the larger of that and `stop_timeout`,
capped so that a confused bot cannot hold a stop forever.
"""
from __future__ import annotations

import math
import os

from core.atomic import write_text_atomic

MAX_STOP_SECONDS = 300.0


def write_stop_seconds(path: str | os.PathLike, seconds: float) -> None:
    """The bot's need, in whole seconds (rounded up), atomically."""
    write_text_atomic(path, f"{math.ceil(seconds)}\n")


def stop_seconds(path: str | os.PathLike, stop_timeout: float) -> float:
    """How long to give a stopping bot: `stop_timeout`, or more if the bot asked for it."""
    try:
        with open(path) as fh:
            asked = float(fh.read(64).split()[0])
    except (OSError, ValueError, IndexError):
        asked = 0.0
    if not math.isfinite(asked):
        asked = 0.0
    return max(float(stop_timeout), min(asked, MAX_STOP_SECONDS))
