"""What the bot says and leaves behind: lines the supervisor logs (never raising: a dead reader
must not stop the bot from cancelling) and the stop_reason file it reads at exit."""
from __future__ import annotations

import errno
import os
import sys
from datetime import datetime, timezone
from typing import Callable

from core.atomic import write_text_atomic
from core.masking import Masker
from core.paths import InstancePaths


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
