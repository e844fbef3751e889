"""Exact prices and quantities: floats as whole numbers of a tick (or step) size.

Why: a price is a float everywhere in the code, but a venue accepts only exact multiples of its
tick. Dividing two floats is not exact: 142.22222222 / 1e-8 is 14222222221.999998, and a fixed
tolerance on that quotient refused 6 of 19 valid levels at tick 1e-8 while a looser one would
accept wrong prices on coarse ticks. Here both numbers are read as the decimals they were
written as (the shortest repr of a float, e.g. Decimal('142.22222222')), so the count of ticks
is an exact integer, and a result is the float nearest to that exact decimal (which prints back
as the same decimal). Float noise from arithmetic (0.7 - 0.4 = 0.29999999999999993) is a few
units in the last place of the value: such a value counts as the multiple it is noise around,
never as the one below it.

Decimal arithmetic costs microseconds, and a grid asks the same few questions all the time (its
quantity, its levels, the tick's multiples near the price): the answers are pure functions of
their floats, so they are memoised (CACHE_SIZE answers each, the least recently used dropped).
"""
from __future__ import annotations

import math
from decimal import ROUND_FLOOR, ROUND_HALF_EVEN, Decimal
from functools import lru_cache

NOISE_ULPS = 4      # how far (in units of the value's last place) arithmetic noise may reach
CACHE_SIZE = 1 << 14    # answers kept per function: a grid's working set, bounded for a bot that runs for months


def as_decimal(value: float) -> Decimal:
    """The decimal a float was written as (its shortest repr), not its binary expansion."""
    return Decimal(repr(float(value)))


@lru_cache(maxsize=CACHE_SIZE)
def _snapped(value: float, step: float) -> int | None:
    """The count of steps `value` is, if it is one up to float noise in `value`; else None."""
    quotient = as_decimal(value) / as_decimal(step)
    n = int(quotient.to_integral_value(ROUND_HALF_EVEN))
    if abs(from_steps(n, step) - value) <= NOISE_ULPS * math.ulp(value):
        return n
    return None


@lru_cache(maxsize=CACHE_SIZE)
def from_steps(n: int, step: float) -> float:
    """n steps as the float nearest to the exact decimal n x step."""
    return float(n * as_decimal(step))


@lru_cache(maxsize=CACHE_SIZE)
def to_steps(value: float, step: float, rounding: str = ROUND_HALF_EVEN) -> int:
    """How many steps `value` is, rounded (half to even by default) when it is not a multiple."""
    exact = _snapped(value, step)
    if exact is not None:
        return exact
    return int((as_decimal(value) / as_decimal(step)).to_integral_value(rounding))


def is_multiple(value: float, step: float) -> bool:
    """Whether `value` is a whole multiple of `step` (a tick or step size), exactly."""
    return _snapped(value, step) is not None


@lru_cache(maxsize=CACHE_SIZE)
def round_to(value: float, step: float) -> float:
    """Nearest multiple of `step` (ties to even); `step <= 0` leaves the value as it is."""
    return from_steps(to_steps(value, step), step) if step > 0 else value


@lru_cache(maxsize=CACHE_SIZE)
def floor_to(value: float, step: float) -> float:
    """Largest multiple of `step` not above `value` (quantities must never be rounded up)."""
    return from_steps(to_steps(value, step, ROUND_FLOOR), step) if step > 0 else value
