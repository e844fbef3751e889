"""Grid arithmetic: price levels and the rounding every order needs.

Kept apart from the strategy so the levels can be checked by hand in tests and reused by the
web page (via the snapshot) and the backtest without pulling in any trading logic. Rounding is
exact decimal arithmetic (exchanges/ticks.py), so a level on a 1e-8 tick is what the venue
accepts.
"""
from __future__ import annotations

from functools import lru_cache

from exchanges.ticks import floor_to, round_to  # noqa: F401  (re-exported: the grid's rounding)

ARITHMETIC = "arithmetic"
GEOMETRIC = "geometric"
GRID_MODES = (ARITHMETIC, GEOMETRIC)
# The other names a grid's parameters take (strategies/grid_params.py checks them). Here, beside
# the modes, so run.py's flags can offer them without building GridParams before its page answers.
GRID_TYPES = ("neutral", "long", "short")
BOUNDARY_ACTIONS = ("stop_only", "emergency_close", "adjust_range")


def grid_levels(lower: float, upper: float, num: int, mode: str, tick: float) -> list[float]:
    """`num` price lines from `lower` to `upper` inclusive, rounded to `tick`, deduplicated.

    Arithmetic lines are evenly spaced in price, geometric lines evenly spaced in ratio (the same
    percentage between neighbours). Rounding can merge neighbours on a fine grid with a coarse
    tick; the duplicates are dropped, so callers check `len(result) >= 2`.

    A range change asks twice (its checks, then its layout), each level an exact decimal
    rounding: the answer is memoised (a fresh list each call, so no caller shares one).
    """
    return list(_levels(lower, upper, num, mode, tick))


@lru_cache(maxsize=256)
def _levels(lower: float, upper: float, num: int, mode: str, tick: float) -> tuple[float, ...]:
    if num < 2:
        raise ValueError(f"grid_num must be at least 2 (got {num})")
    if not 0 < lower < upper:
        raise ValueError(f"grid range must satisfy 0 < lower < upper (got {lower} .. {upper})")
    if mode == ARITHMETIC:
        step = (upper - lower) / (num - 1)
        raw = [lower + i * step for i in range(num)]
    elif mode == GEOMETRIC:
        ratio = (upper / lower) ** (1.0 / (num - 1))
        raw = [lower * ratio ** i for i in range(num)]
    else:
        raise ValueError(f"grid_mode must be one of {', '.join(GRID_MODES)} (got {mode!r})")
    raw[-1] = upper  # no float drift at the top line
    levels: list[float] = []
    for price in raw:
        rounded = round_to(price, tick)
        if rounded > 0 and (not levels or rounded > levels[-1]):
            levels.append(rounded)
    return tuple(levels)
