"""Exact multiples of a tick (exchanges/ticks.py) over many ticks and magnitudes, not a few examples."""
from __future__ import annotations

import random

import pytest

from exchanges.ticks import floor_to, from_steps, is_multiple, round_to, to_steps

TICKS = [1e-8, 1e-6, 0.0001, 0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0]


@pytest.mark.parametrize("tick", TICKS)
def test_every_multiple_is_one_and_the_midpoints_are_not(tick):
    rng = random.Random(int(1 / tick) if tick < 1 else int(tick * 7))
    for _ in range(2000):
        n = rng.randrange(1, 10 ** rng.randrange(1, 13))
        value = from_steps(n, tick)
        assert is_multiple(value, tick), (n, tick, value)
        assert to_steps(value, tick) == n and round_to(value, tick) == value and floor_to(value, tick) == value
        between = from_steps(2 * n + 1, tick / 2)          # half-way to the next multiple
        assert not is_multiple(between, tick), (n, tick, between)
        assert floor_to(between, tick) == value


@pytest.mark.parametrize("tick", TICKS)
def test_float_arithmetic_on_multiples_stays_a_multiple(tick):
    """Sums and differences of multiples carry float noise; they are still the multiple, and
    floor_to never drops them one tick (0.7 - 0.4 = 0.29999999999999993 is 0.3)."""
    rng = random.Random(3)
    for _ in range(2000):
        a, b = rng.randrange(1, 10 ** 6), rng.randrange(1, 10 ** 6)
        total = from_steps(a, tick) + from_steps(b, tick)
        assert is_multiple(total, tick) and to_steps(total, tick) == a + b
        assert floor_to(total, tick) == from_steps(a + b, tick)
