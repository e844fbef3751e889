"""One account and symbol traded by one grid on the whole machine, whatever the project home.

Perpetual positions are per account and symbol: two grids on one would fight over one position,
even from two homes whose registries never see each other. So a start takes an exclusive flock on
`<user state dir>/accounts/<fingerprint>-<symbol>.lock` and hands the open file to the supervisor,
which holds it for life (as it holds its pid file): the lock ends with the supervisor, even on
SIGKILL or power loss, and never needs cleaning. The file names who holds it, for the message.
"""
from __future__ import annotations

import fcntl
import json
import os
import re
from pathlib import Path

from core.user_state import user_state_dir


class AccountBusy(Exception):
    """The account and symbol are traded by another instance; `holder` says which, and where."""

    def __init__(self, holder: dict) -> None:
        super().__init__(f"held by {holder}")
        self.holder = holder


def lock_path(account: str, symbol: str) -> Path:
    folder = user_state_dir() / "accounts"
    folder.mkdir(mode=0o700, exist_ok=True)
    return folder / f"{account}-{re.sub(r'[^A-Za-z0-9_.-]', '_', symbol)}.lock"


def claim(account: str, symbol: str, holder: dict) -> int:
    """Lock the pair; returns the fd to keep open as long as the instance trades (it closes on exec
    unless made inheritable). Raises AccountBusy naming the holder."""
    fd = os.open(lock_path(account, symbol), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        other = _read(fd)
        os.close(fd)
        raise AccountBusy(other) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(holder).encode(), 0)
    return fd


def holder(account: str, symbol: str) -> dict | None:
    """Who trades the pair now, None when nobody does (a probe: takes nothing)."""
    path = lock_path(account, symbol)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return None  # nobody holds it exclusively
    except BlockingIOError:
        return _read(fd)
    finally:
        os.close(fd)


def _read(fd: int) -> dict:
    try:
        data = json.loads(os.pread(fd, 4096, 0) or b"{}")
    except ValueError:
        data = {}
    return data if isinstance(data, dict) else {}


def describe(holder: dict, exchange: str, symbol: str, wanted_by: str) -> str:
    """The refusal, in the words `start` and `validate` use for conflicts within one home."""
    return (f"metadata.symbol: {symbol} on the same {exchange} account is already traded by instance "
            f"{holder.get('instance_id', '?')} of home {holder.get('home', '?')} (wanted by {wanted_by}); "
            "two grids on one account and symbol would fight")
