"""Send one message to one Apprise URL and say what went wrong, masked.

One Apprise object per URL, so each channel's result is known on its own (a dead Telegram bot
must not hide that e-mail worked, nor make e-mail be sent twice on the retry). Apprise's own log
prints URLs with their tokens at debug level and, unconfigured, Python would show its warnings
on stderr: its logger is cut off here, and only its warnings are captured, then masked.
"""
from __future__ import annotations

import logging
from collections.abc import Callable

import apprise

_quiet = logging.getLogger("apprise")
_quiet.propagate = False
_quiet.addHandler(logging.NullHandler())

INVALID = "not a notification URL Apprise understands"


class Failure:
    """Why a send failed; `permanent` when retrying cannot help (the URL itself is wrong)."""

    __slots__ = ("reason", "permanent")

    def __init__(self, reason: str, permanent: bool = False) -> None:
        self.reason, self.permanent = reason, permanent

    def __str__(self) -> str:
        return self.reason


def send(url: str, title: str, body: str, masker: Callable[[str], str]) -> Failure | None:
    """None when delivered, else a Failure whose reason holds no secret."""
    channel = apprise.Apprise()
    with apprise.LogCapture(level=logging.WARNING) as captured:
        if not channel.add(url):
            return Failure(INVALID, permanent=True)
        ok = channel.notify(title=title, body=body)
        said = captured.getvalue().strip().splitlines()
    if ok:
        return None
    return Failure(masker(said[-1].split(" - ", 2)[-1] if said else "delivery failed"))
