"""Where the paper exchange's price comes from: the small seam between simulation and data.

A price source yields (timestamp_ms, price) one step at a time (`next`), may yield a whole block
at once for the backtest (`batch`, numpy arrays), and can describe its position (`state`) so a
restarted paper bot continues the same walk or replay. Two sources live here:

- `RandomWalk`: seeded geometric random walk (`volatility` = standard deviation per step);
- `CsvReplay`: a file of `time,price` rows (time in seconds, milliseconds or ISO 8601).

A live public-price source (real prices, no keys) plugs in through `build_price_source`: an
exchange config `"price_source": {"exchange": "binance", "symbol": "SOL/USDC:USDC"}` is handed to
`exchanges.ccxt_price_source.from_config(dict) -> PriceSource`, imported only then.
"""
from __future__ import annotations

import csv
import math
import random
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Protocol

if TYPE_CHECKING:                     # numpy is imported only by the backtest
    import numpy as np

BATCH_INTERVAL_MS = 1000  # synthetic spacing of backtest ticks


class PriceSource(Protocol):
    def next(self) -> tuple[int, float] | None:
        """The next (timestamp ms, price), or None when the source has run out."""

    def state(self) -> dict:
        """JSON-able position, restored by `restore` after a restart."""

    def restore(self, state: dict) -> None: ...


def wall_clock_ms() -> int:
    return int(time.time() * 1000)


class RandomWalk:
    """Geometric random walk: price *= exp(volatility * N(0, 1)) per step, reproducible by seed."""

    def __init__(self, initial_price: float, volatility: float, seed: int,
                 clock: Callable[[], int] = wall_clock_ms) -> None:
        if initial_price <= 0:
            raise ValueError(f"initial_price must be > 0 (got {initial_price})")
        if volatility < 0:
            raise ValueError(f"volatility must be >= 0 (got {volatility})")
        self.price = float(initial_price)
        self.volatility = float(volatility)
        self.seed = seed
        self.count = 0
        self.clock = clock

    def next(self) -> tuple[int, float]:
        # step n's shock depends only on (seed, n): a restored walk continues the same path
        shock = random.Random(f"{self.seed}:{self.count}").gauss(0.0, 1.0)
        self.price *= math.exp(self.volatility * shock)
        self.count += 1
        return self.clock(), self.price

    def batch(self, n: int, start_ms: int) -> "tuple[np.ndarray, np.ndarray]":
        """n steps at once for the backtest (numpy arrays of timestamps and prices)."""
        import numpy as np

        rng = np.random.default_rng([self.seed, self.count])
        steps = rng.standard_normal(n) * self.volatility
        prices = self.price * np.exp(np.cumsum(steps))
        self.price = float(prices[-1])
        self.count += n
        return start_ms + BATCH_INTERVAL_MS * np.arange(1, n + 1, dtype=np.int64), prices

    def state(self) -> dict:
        return {"kind": "random_walk", "price": self.price, "count": self.count}

    def restore(self, state: dict) -> None:
        self.price = float(state["price"])
        self.count = int(state["count"])


def _parse_time(text: str) -> int:
    """Seconds, milliseconds or ISO 8601 -> milliseconds."""
    try:
        value = float(text)
    except ValueError:
        return int(datetime.fromisoformat(text.strip().replace("Z", "+00:00")).timestamp() * 1000)
    return int(value if value > 1e11 else value * 1000)


def load_price_csv(path: str | Path) -> tuple[list[int], list[float]]:
    """Read `time,price` rows (a header line is allowed); clear error naming line and value."""
    times: list[int] = []
    prices: list[float] = []
    with open(path, newline="") as fh:
        for lineno, row in enumerate(csv.reader(fh), start=1):
            if not row or row[0].strip().startswith("#"):
                continue
            try:
                ts, price = _parse_time(row[0]), float(row[1])
            except (ValueError, IndexError):
                if lineno == 1:
                    continue  # header
                raise ValueError(f"{path}:{lineno}: expected 'time,price', got {','.join(row)!r}") from None
            if price <= 0:
                raise ValueError(f"{path}:{lineno}: price must be > 0 (got {price})")
            times.append(ts)
            prices.append(price)
    if not prices:
        raise ValueError(f"{path}: no 'time,price' rows")
    return times, prices


class CsvReplay:
    """Replays a recorded price series, one row per step; the first row is the opening price."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self.times, self.prices = load_price_csv(path)
        self.index = 1
        self.price = self.prices[0]

    @property
    def start_ms(self) -> int:
        """The time of the current price (the opening row before any step): where the clock starts."""
        return self.times[max(0, self.index - 1)]

    def next(self) -> tuple[int, float] | None:
        if self.index >= len(self.prices):
            return None
        ts, self.price = self.times[self.index], self.prices[self.index]
        self.index += 1
        return ts, self.price

    def batch(self, n: int, start_ms: int) -> "tuple[np.ndarray, np.ndarray]":
        import numpy as np

        end = min(len(self.prices), self.index + n)
        ts = np.asarray(self.times[self.index:end], dtype=np.int64)
        px = np.asarray(self.prices[self.index:end], dtype=float)
        self.index = end
        if px.size:
            self.price = float(px[-1])
        return ts, px

    def state(self) -> dict:
        return {"kind": "csv", "path": self.path, "index": self.index}

    def restore(self, state: dict) -> None:
        self.index = min(int(state.get("index", 0)), len(self.prices))
        self.price = self.prices[max(0, self.index - 1)]


def build_price_source(config: dict[str, Any], instance_id: str) -> PriceSource:
    """The source an exchange config asks for: price_source (live), price_csv, or a random walk."""
    live = config.get("price_source")
    if live:
        try:
            from exchanges import ccxt_price_source
        except ImportError as exc:
            raise ValueError("exchange_config.price_source: live public prices need "
                             f"exchanges/ccxt_price_source.py ({exc})") from None
        return ccxt_price_source.from_config(live)
    if config.get("price_csv"):
        return CsvReplay(config["price_csv"])
    seed = config.get("seed")
    return RandomWalk(float(config.get("initial_price", 100.0)), float(config.get("volatility", 0.002)),
                      int(seed) if seed is not None else sum(instance_id.encode()))
