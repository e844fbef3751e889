"""One request budget per exchange account, shared by every bot process on this machine.

Exchanges limit requests per account, not per process, so ten bots on one key must share one
budget (its size per venue: `ccxt_exchange.ACCOUNT_BUDGETS`, overridable per config). The budget
is a token bucket whose state lives in a small JSON file in the user's state directory outside
every home (`<user state dir>/ratelimit/<fingerprint>.json`, core/user_state.py: bots of two homes
on one key share it too), read and written under
`fcntl.flock`; every request takes a token first. The fingerprint is a truncated sha256 of the
exchange and key: the key itself is never written anywhere.

To stay within `requests` per `per_seconds` in ANY window (the exchange counts in its own windows),
the bucket refills at `refill_share` of the rate and holds at most `burst_share` of the budget:
burst + refill * window <= budget.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from core.user_state import user_state_dir
from exchanges.base import RateLimited

RATE_LIMIT_DIR = "ratelimit"


def account_fingerprint(exchange: str, api_key: str) -> str:
    """A stable, non-reversible name for one account: same key, same budget file."""
    return hashlib.sha256(f"{exchange}:{api_key}".encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Budget:
    """`requests` per `per_seconds`; waits longer than `max_wait` seconds raise RateLimited."""

    requests: float
    per_seconds: float
    max_wait: float = 5.0
    burst_share: float = 0.05
    refill_share: float = 0.9

    def __post_init__(self) -> None:
        if self.requests <= 0 or self.per_seconds <= 0:
            raise ValueError(f"rate limit must be positive, got {self.requests} per {self.per_seconds}s")
        if self.burst_share + self.refill_share > 1:
            raise ValueError("burst_share + refill_share must not exceed 1, or a window could overspend")

    @property
    def capacity(self) -> float:
        return max(1.0, self.requests * self.burst_share)

    @property
    def rate(self) -> float:
        """Tokens per second."""
        return self.requests * self.refill_share / self.per_seconds


class SharedRateLimiter:
    """A token bucket in a file: any process that opens the same file shares the budget."""

    def __init__(self, path: Path, budget: Budget) -> None:
        self.path = path
        self.budget = budget
        path.parent.mkdir(parents=True, exist_ok=True)

    @classmethod
    def for_account(cls, exchange: str, api_key: str, budget: Budget) -> "SharedRateLimiter":
        """The one budget of this key for every bot of this user, whatever its project home."""
        return cls(user_state_dir() / RATE_LIMIT_DIR / f"{account_fingerprint(exchange, api_key)}.json", budget)

    def _update(self, cost: float, penalty: float = 0.0) -> tuple[float, bool]:
        """Under the lock: refill, then reserve `cost` tokens if the wait for them is acceptable.

        Returns (seconds to wait, reserved). A reservation may leave the bucket in debt: the caller
        sleeps until the debt is paid, so waiters are served in order without re-checking.
        """
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            raw = os.read(fd, 4096)
            now = time.time()
            try:
                state = json.loads(raw)
                tokens, stamp, blocked = float(state["tokens"]), float(state["ts"]), float(state["blocked_until"])
            except (ValueError, KeyError, TypeError):   # new or torn file: start with a full bucket
                tokens, stamp, blocked = self.budget.capacity, now, 0.0
            tokens = min(self.budget.capacity, tokens + max(0.0, now - stamp) * self.budget.rate)
            if penalty:
                blocked = max(blocked, now + penalty)
            if blocked > now:
                wait, reserved = blocked - now, False
            else:
                wait = max(0.0, (cost - tokens) / self.budget.rate)
                reserved = wait <= self.budget.max_wait
                if reserved:
                    tokens -= cost
            os.lseek(fd, 0, os.SEEK_SET)
            os.ftruncate(fd, 0)
            os.write(fd, json.dumps({"tokens": tokens, "ts": now, "blocked_until": blocked}).encode())
            return wait, reserved
        finally:
            os.close(fd)  # closing releases the flock

    def acquire(self, cost: float = 1.0) -> None:
        """Take `cost` tokens, sleeping while the budget refills; RateLimited if that takes too long."""
        deadline = time.time() + self.budget.max_wait
        while True:
            wait, reserved = self._update(cost)
            if time.time() + wait > deadline:
                raise RateLimited(f"shared request budget spent ({self.budget.requests:g} per "
                                  f"{self.budget.per_seconds:g}s for this account)", retry_after=wait)
            time.sleep(wait)
            if reserved:
                return

    def penalize(self, seconds: float) -> None:
        """The exchange answered 429: every process on this account holds off for `seconds`."""
        self._update(0.0, penalty=seconds)
