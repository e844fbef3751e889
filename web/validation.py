"""Checks on what a client sends, so a bad request is refused before the bot is asked anything."""
from __future__ import annotations

import math
from typing import Any

LOWER = "grid_lower_price"
UPPER = "grid_upper_price"
# A new bound further than this factor from the current price is a typo, not a grid.
MAX_PRICE_FACTOR = 10.0
MAX_PRICE = 1e9


class BadRequest(ValueError):
    """A client error: the message names the field, the value and the rule."""


def parse_limit(raw: str | None, default: int, maximum: int, name: str = "limit") -> int:
    """?limit= as a whole number in 1..maximum."""
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"{name}={raw!r} is not a whole number") from None
    if not 1 <= value <= maximum:
        raise BadRequest(f"{name}={value} must be between 1 and {maximum}")
    return value


def _price(body: dict[str, Any], field: str) -> float | None:
    if field not in body or body[field] is None:
        return None
    value = body[field]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadRequest(f"{field}={value!r} must be a number")
    value = float(value)
    if not math.isfinite(value) or value <= 0:
        raise BadRequest(f"{field}={value} must be a positive finite number")
    if value > MAX_PRICE:
        raise BadRequest(f"{field}={value} is above the sanity bound {MAX_PRICE:g}")
    return value


def parse_adjustment(body: Any, current_lower: float, current_upper: float,
                     price: float | None) -> tuple[float | None, float | None]:
    """(lower, upper) from a JSON body; either may be None (kept). Raises BadRequest."""
    if not isinstance(body, dict):
        raise BadRequest(f"body must be a JSON object with {LOWER} and/or {UPPER}")
    unknown = sorted(set(body) - {LOWER, UPPER})
    if unknown:
        raise BadRequest(f"unknown field(s) {', '.join(unknown)}: only {LOWER} and {UPPER} can be adjusted")
    lower, upper = _price(body, LOWER), _price(body, UPPER)
    if lower is None and upper is None:
        raise BadRequest(f"give {LOWER}, {UPPER} or both")
    new_lower = current_lower if lower is None else lower
    new_upper = current_upper if upper is None else upper
    if new_lower >= new_upper:
        raise BadRequest(f"{LOWER}={new_lower:g} must be below {UPPER}={new_upper:g}")
    if price and price > 0:
        if new_lower < price / MAX_PRICE_FACTOR or new_upper > price * MAX_PRICE_FACTOR:
            raise BadRequest(
                f"range {new_lower:g}..{new_upper:g} is absurd for price {price:g}: "
                f"bounds must stay within {MAX_PRICE_FACTOR:g}x of the price")
    return lower, upper
