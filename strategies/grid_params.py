"""The grid's parameters and the checks that refuse impossible ones before any order exists.

`check_params` is pure: it takes the market rules and the account's equity, so run.py can call
it (exit 2 with the messages) and the live range adjustment can call it (HTTP 400 / rollback).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from exchanges.base import Market, is_multiple
from strategies.grid_math import BOUNDARY_ACTIONS, GRID_MODES, GRID_TYPES, grid_levels


@dataclass(frozen=True)
class GridParams:
    symbol: str
    lower: float
    upper: float
    num: int
    quantity: float
    mode: str = "arithmetic"
    grid_type: str = "neutral"
    max_position: float | None = None
    stop_loss: float | None = None          # quote currency of unrealized loss that stops the grid
    take_profit: float | None = None        # quote currency of unrealized profit that stops it
    boundary_action: str = "stop_only"
    boundary_tolerance: float = 0.0         # fraction beyond lower/upper before the action fires
    allow_unprofitable_step: bool = False   # the trader accepts cells whose step the fees eat

    @classmethod
    def from_strategy_config(cls, cfg: dict[str, Any], symbol: str) -> "GridParams":
        def opt(key: str, zero_is_none: bool = False) -> float | None:
            value = cfg.get(key)
            return None if value in (None, "") or (zero_is_none and value == 0) else float(value)

        return cls(symbol=symbol, lower=float(cfg["grid_lower_price"]), upper=float(cfg["grid_upper_price"]),
                   num=int(cfg["grid_num"]), quantity=float(cfg["quantity"]),
                   mode=cfg.get("grid_mode") or "arithmetic", grid_type=cfg.get("grid_type") or "neutral",
                   max_position=opt("max_position", zero_is_none=True), stop_loss=opt("stop_loss"), take_profit=opt("take_profit"),
                   boundary_action=cfg.get("boundary_action") or "stop_only",
                   boundary_tolerance=float(cfg.get("boundary_tolerance") or 0.0),
                   allow_unprofitable_step=cfg.get("allow_unprofitable_step") is True)

    def with_range(self, lower: float, upper: float) -> "GridParams":
        return replace(self, lower=float(lower), upper=float(upper))

    def grid_key(self) -> dict:
        """What identifies a grid layout: a saved state with another key belongs to another grid."""
        return {k: getattr(self, k) for k in ("lower", "upper", "num", "mode", "grid_type")}    # field order


def check_shape(p: GridParams) -> list[str]:
    """The reasons these parameters cannot trade anywhere (no market needed); empty when none."""
    errors: list[str] = []
    if p.num < 2:
        errors.append(f"grid_num: {p.num} is invalid: a grid needs at least 2 levels")
    if p.lower <= 0:
        errors.append(f"grid_lower_price: {p.lower} is invalid: must be > 0")
    if p.lower >= p.upper:
        errors.append(f"grid_lower_price/grid_upper_price: {p.lower} >= {p.upper}: lower must be below upper")
    if p.mode not in GRID_MODES:
        errors.append(f"grid_mode: {p.mode!r} is invalid: one of {', '.join(GRID_MODES)}")
    if p.grid_type not in GRID_TYPES:
        errors.append(f"grid_type: {p.grid_type!r} is invalid: one of {', '.join(GRID_TYPES)}")
    if p.boundary_action not in BOUNDARY_ACTIONS:
        errors.append(f"boundary_action: {p.boundary_action!r} is invalid: one of {', '.join(BOUNDARY_ACTIONS)}")
    if p.boundary_tolerance < 0:
        errors.append(f"boundary_tolerance: {p.boundary_tolerance} is invalid: must be >= 0")
    for name in ("stop_loss", "take_profit"):
        value = getattr(p, name)
        if value is not None and value <= 0:
            errors.append(f"{name}: {value} is invalid: must be > 0 (quote currency) or null")
    if p.max_position is not None and p.max_position < p.quantity:
        errors.append(f"max_position: {p.max_position} is below quantity {p.quantity}: no order could be placed")
    return errors


def check_params(p: GridParams, market: Market, equity: float | None = None,
                 leverage: float = 1.0) -> list[str]:
    """Every reason these parameters cannot trade on this market with this equity; empty when they can."""
    errors = check_shape(p)
    if p.quantity < market.min_qty:
        errors.append(f"quantity: {p.quantity} is below the market minimum {market.min_qty} for {p.symbol}")
    elif not is_multiple(p.quantity, market.step_size):
        errors.append(f"quantity: {p.quantity} is not a multiple of the step size {market.step_size}")
    if p.max_position is not None and p.max_position >= p.quantity:
        if equity is not None and p.upper > p.lower and p.max_position * p.upper / leverage > equity:
            errors.append(f"max_position: {p.max_position} needs {p.max_position * p.upper / leverage:.2f} margin "
                          f"at {p.upper} with leverage {leverage:g}, the balance is {equity:.2f}")
    if not errors:
        levels = grid_levels(p.lower, p.upper, p.num, p.mode, market.tick_size)
        if len(levels) < 2:
            errors.append(f"grid_num: {p.num} levels between {p.lower} and {p.upper} collapse to "
                          f"{len(levels)} at tick size {market.tick_size}")
        elif not p.allow_unprofitable_step:
            errors.extend(losing_step(levels, market.maker_fee))
    return errors


def losing_step(levels: list[float], maker_fee: float) -> list[str]:
    """Why a cycle between neighbouring lines loses money, if it does (empty when every cell earns).

    A cycle buys at one line and sells at the next, both as maker: it earns the step and pays the
    maker fee on both prices. A step at or below that fee loses on every cycle, so the more the
    grid trades the more it loses; the trader may still want it (a rebate, a fee tier the market
    data does not show) and says so with `allow_unprofitable_step`. The cell with the thinnest
    margin is named: the top one on an arithmetic grid.
    """
    cells = list(zip(levels, levels[1:]))
    margins = [(hi - lo) - maker_fee * (lo + hi) for lo, hi in cells]
    losing = [i for i, m in enumerate(margins) if m <= 0]
    if not losing:
        return []
    lo, hi = cells[min(losing, key=lambda i: margins[i])]
    fee = maker_fee * (lo + hi)
    return [f"grid step {hi - lo:.10g} ({lo:.10g} -> {hi:.10g}) does not cover the round-trip fee "
            f"{fee:.3g} (maker fee {maker_fee:g} x ({lo:.10g} + {hi:.10g})): every cycle loses money in "
            f"{len(losing)} of {len(cells)} cells; widen the range, use fewer levels, or set "
            "strategy_config.allow_unprofitable_step: true"]
