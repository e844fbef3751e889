"""Apply new grid parameters to a running PerpGridStrategy, replacing only the orders that must change.

A restart (or the old range adjustment) cancels every order and places the grid again: the grid
loses its place in every queue, pays nothing but risks missing fills, and rests empty for a
moment. Here a cell of the new grid whose edges (and side) equal a cell of the old grid IS that
cell: it keeps its position, its fees and its resting orders, ids included. Only the cells that
no longer exist lose their orders (their position becomes carried inventory, as in any rebuild),
and an idle cell's opening order is replaced only when the order size changed.

A kept order still carries its old level in its client id; the strategy books a fill on the cell
that holds the order id (`PerpGridStrategy.cell_of`), so a shifted index never mis-books a fill.

The rollback is the same operation back to the old parameters, so it too keeps what it can. If
the rollback fails as well, the answer says so: the grid then repairs itself in the next turns
(every cell's state is booked; `_ensure_all` places what is missing).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from exchanges.base import ExchangeError
from strategies.grid_math import grid_levels
from strategies.grid_params import GridParams, check_params

EPS = 1e-9


class ReconfigureFailed(ValueError):
    """Not applied: `rolled_back` says whether the old grid is back (False: in doubt, repaired next turns)."""

    def __init__(self, message: str, rolled_back: bool) -> None:
        super().__init__(message)
        self.rolled_back = rolled_back


@dataclass
class Outcome:
    kept: int           # resting orders left untouched (same id, same queue place)
    cancelled: int      # orders cancelled because their level or size changed
    placed: int         # orders placed by this change


# strategy_config key -> GridParams field, for the settings a running grid takes live
LIVE_FIELDS = {"grid_lower_price": "lower", "grid_upper_price": "upper", "grid_num": "num", "grid_mode": "mode",
               "quantity": "quantity", "max_position": "max_position", "stop_loss": "stop_loss",
               "take_profit": "take_profit", "boundary_action": "boundary_action",
               "boundary_tolerance": "boundary_tolerance"}


def merged(live: GridParams, fresh: GridParams, changed_keys: set[str]) -> GridParams:
    """The live parameters with only the config keys the trader changed taken from `fresh`: a range
    moved on the page (or by adjust_range) stays unless the config's range itself was edited."""
    return replace(live, **{LIVE_FIELDS[k]: getattr(fresh, LIVE_FIELDS[k]) for k in changed_keys if k in LIVE_FIELDS})


def check(strategy, new: GridParams) -> list[str]:
    """The checks `run.py --check` and the page make, against the live market and equity."""
    return check_params(new, strategy.market, strategy._equity(), strategy.exchange.leverage)


def apply_params(strategy, new: GridParams) -> Outcome:
    """Validate, then move the strategy to `new` keeping every order that still fits.

    Raises ValueError (nothing changed) when `new` fails the checks, ReconfigureFailed when the
    exchange failed midway (rolled back, or in doubt).
    """
    errors = check(strategy, new)
    if errors:
        raise ValueError("; ".join(errors))
    old = strategy.params
    before = _order_ids(strategy)
    try:
        _move(strategy, new)
    except ExchangeError as exc:
        try:
            _move(strategy, old)
        except ExchangeError as again:
            strategy._event("reconfigure_in_doubt", f"change to {_describe(new)} failed ({exc}) and so did the "
                                                    f"way back ({again}); repairing in the next turns")
            raise ReconfigureFailed(f"the change failed ({exc}) and restoring {_describe(old)} failed too "
                                    f"({again}): in doubt, the grid repairs itself in the next turns", False) from again
        strategy._event("reconfigure_failed", f"change to {_describe(new)} failed ({exc}); {_describe(old)} restored")
        raise ReconfigureFailed(f"the change failed ({exc}); {_describe(old)} was restored", True) from exc
    finally:
        strategy._save()
    after = _order_ids(strategy)
    outcome = Outcome(kept=len(before & after), cancelled=len(before - after), placed=len(after - before))
    strategy._event("reconfigured", f"now {_describe(new)}: kept {outcome.kept} orders, cancelled "
                                    f"{outcome.cancelled}, placed {outcome.placed}")
    return outcome


def _move(strategy, new: GridParams) -> None:
    """Cancel what does not fit `new`, book the fills that raced the cancels, re-lay the cells, place."""
    same_layout = new.grid_key() == strategy.params.grid_key()
    levels = strategy.levels if same_layout else grid_levels(new.lower, new.upper, new.num, new.mode,
                                                             strategy.market.tick_size)
    if len(levels) - 1 > _max_level():
        raise ValueError(f"grid_num: at most {_max_level()} levels")
    plan = {c.index: c.index for c in strategy.cells} if same_layout else _plan(strategy, levels, new)
    for cell in strategy.cells:
        if cell.index not in plan:          # a cell that vanishes loses its orders
            _cancel_ref(strategy, cell, "open_order")
            _cancel_ref(strategy, cell, "close_order")
        elif cell.open_order is not None and abs(cell.open_order.qty - new.quantity) > EPS:
            _cancel_ref(strategy, cell, "open_order")           # the order size changed
    _trim_exposure(strategy, new.max_position)
    strategy._sync_fills()                  # fills of cancelled orders belong to the old layout
    strategy._refresh_position()
    if not same_layout:
        _relayout(strategy, levels, new, plan)
    strategy.params = new
    strategy._resting = None
    for cell in strategy.cells:
        if cell.blocked in ("invalid", "exposure"):
            cell.blocked = None             # a new size or limit may fit where the old one did not
    strategy._ensure_all()


def _trim_exposure(strategy, max_position: float | None) -> None:
    """A lowered max_position: cancel opening orders, farthest from the price first, until the
    worst case of each side (position plus everything resting on it) fits again."""
    from exchanges import client_ids

    if max_position is None:
        return
    for direction, side in ((1, "buy"), (-1, "sell")):
        opening = [c for c in strategy.cells if c.open_order is not None
                   and strategy._order_side_price(c, client_ids.ROLE_OPEN)[0] == side]
        opening.sort(key=lambda c: abs(c.open_order.price - strategy.price), reverse=True)
        for cell in opening:
            strategy._resting = None
            strategy._planned = {"buy": 0.0, "sell": 0.0}
            if strategy._exposure(direction) <= max_position + EPS:
                break
            _cancel_ref(strategy, cell, "open_order")


def _plan(strategy, levels: list[float], new: GridParams) -> dict[int, int]:
    """Old cell index -> new cell index, for the cells the new grid keeps: same edges, and the same
    side unless the cell holds a position (it keeps its side until that position is closed)."""
    from strategies.perp_grid_strategy import cell_sides

    sides = cell_sides(levels, strategy.price, new.grid_type)
    edges = {(levels[j], levels[j + 1]): j for j in range(len(levels) - 1)}
    plan = {}
    for cell in strategy.cells:
        j = edges.get((strategy.levels[cell.index], strategy.levels[cell.index + 1]))
        if j is not None and (cell.held > EPS or cell.side == sides[j]):
            plan[cell.index] = j
    return plan


def _relayout(strategy, levels: list[float], new: GridParams, plan: dict[int, int]) -> None:
    """The new cells: kept ones moved to their new index, fresh ones idle; vanished positions carried."""
    from strategies.perp_grid_strategy import Cell, cell_sides

    sides = cell_sides(levels, strategy.price, new.grid_type)
    cells = [Cell(j, side) for j, side in enumerate(sides)]
    for cell in strategy.cells:
        j = plan.get(cell.index)
        if j is None:
            strategy.carried = round(strategy.carried + cell.held * cell.direction, 10)
            continue
        cell.index = j
        cells[j] = cell
    _skip_used_ids(cells)
    strategy.levels, strategy.cells = list(levels), cells


def _skip_used_ids(cells: list) -> None:
    """A kept order keeps its client id, whose level may now be another cell's index: that cell's
    next client ids must not repeat one still resting (a venue refuses a duplicate client id)."""
    from exchanges import client_ids

    for cell in cells:
        for ref in (cell.open_order, cell.close_order):
            if ref is not None and ref.client_id is not None:
                cid = client_ids.decode(ref.client_id)
                if cid.level < len(cells):
                    cells[cid.level].seq = max(cells[cid.level].seq, cid.seq)


def _cancel_ref(strategy, cell, slot: str) -> None:
    """Cancel one order of a cell; the ref leaves the cell only once the order is gone (cancelled or filled)."""
    ref = getattr(cell, slot)
    if ref is None:
        return
    if strategy._cancel(ref.id):
        setattr(cell, slot, None)
    # else it is gone already (filled): the ref stays, so _sync_fills books the fill on this cell


def _order_ids(strategy) -> set[str]:
    return {ref.id for c in strategy.cells for ref in (c.open_order, c.close_order) if ref is not None}


def _describe(p: GridParams) -> str:
    return f"grid {p.lower}..{p.upper} x{p.num} {p.mode}, quantity {p.quantity}"


def _max_level() -> int:
    from exchanges import client_ids

    return client_ids.MAX_LEVEL
