"""Apply new grid parameters to a running PerpGridStrategy, replacing only the orders that must change.

A restart cancels every order and places the grid again: the grid loses its place in every
queue and rests empty for a moment. Here a cell of the new grid whose edges (and side) equal a
cell of the old grid IS that cell: it keeps its holding, its fees and its resting orders, ids
included. Only the cells that no longer exist lose their orders; what they held gets closing
orders on the new cells (the rebuild's rule, `strategies/inventory.py`), and an idle cell's
opening order is replaced only when the order size changed. A lowered max_position cancels the
farthest opening orders first.

A kept order still carries its old level in its client id: the books file a fill under the cell
that holds the order id (`OrderBook.cell_of`), and the new cells' client ids never repeat one of
the old layout's: each level's sequence continues past the old layout's (`_relayout`), and once it
wraps (11 bits) `OrderBook.taken` skips the ids of kept orders and of the abandoned layout.

The answer is truthful (issue 8 item 8): applied; rolled back (AdjustFailed 'rolled back': the
old grid is back, with what rests); or in doubt (AdjustFailed 'in doubt': the venue failed on the
way back too). Either way the books hold the old grid, and the client ids the change sent are
'foreign' (their fills are carried with their true sign, never booked on an old cell) and in
doubt, so the next turn's reconcile cancels what rests outside the old grid.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from exchanges import client_ids
from exchanges.base import ExchangeError
from strategies.grid_math import grid_levels
from strategies.grid_params import GridParams, check_params
from strategies.inventory import adopt_inventory, cell_sides, take_lots
from strategies.book_records import EPS, Cell
from strategies.order_book import OrderBook


class AdjustFailed(ValueError):
    """A live change that did not apply: `outcome` is 'rolled back' or 'in doubt'."""

    def __init__(self, outcome: str, message: str) -> None:
        super().__init__(message)
        self.outcome = outcome


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


def apply_params(strategy, new: GridParams) -> Outcome:
    """Validate, then move the strategy to `new` keeping every order that still fits.

    Raises ValueError (nothing changed) when `new` fails the checks or has too many levels, and
    AdjustFailed when the exchange failed midway (rolled back, or in doubt).
    """
    errors = check_params(new, strategy.market, strategy._equity(), strategy.exchange.leverage)
    if errors:
        raise ValueError("; ".join(errors))
    same_layout = new.grid_key() == strategy.params.grid_key()
    levels = strategy.levels if same_layout else grid_levels(new.lower, new.upper, new.num, new.mode,
                                                             strategy.market.tick_size)
    if len(levels) - 1 > client_ids.MAX_LEVEL:
        raise ValueError(f"grid_num: at most {client_ids.MAX_LEVEL} levels")
    book: OrderBook = strategy.book
    old = strategy.params
    before = _order_ids(book)
    snapshot = None
    book.touch_all()                        # cells change here in many ways: the next visit sees them all
    try:
        if book.resolve_doubts() is not None:   # what rests decides what is kept: learn it first
            strategy._refresh_position()
            before = _order_ids(book)
        plan = {c.index: c.index for c in book.cells} if same_layout else _plan(strategy, levels, new)
        _cancel_misfits(strategy, new, plan, same_layout)
        # the old layout as the exchange left it, its fills booked: what a failure goes back to
        snapshot = (old, book.levels, [c.snapshot() for c in book.cells], book.carried)
        if not same_layout:
            _relayout(strategy, levels, new, plan)
        strategy.params = new
        _unblock(book.cells)
        strategy._ensure_all()
    except ExchangeError as exc:
        raise _roll_back(strategy, new, old, snapshot, before, exc) from exc
    finally:
        book.touch_all()
        strategy._save()
    after = _order_ids(book)
    outcome = Outcome(kept=len(before & after), cancelled=len(before - after), placed=len(after - before))
    strategy._event("reconfigured", f"now {_describe(new)}: kept {outcome.kept} orders, cancelled "
                                    f"{outcome.cancelled}, placed {outcome.placed}")
    return outcome


def _cancel_misfits(strategy, new: GridParams, plan: dict[int, int], same_layout: bool) -> None:
    """On the old layout: cancel the orders of vanishing cells, opening orders of another size and
    the farthest openings a lowered max_position forbids; then book the fills that raced them."""
    book = strategy.book
    cancelled: dict[int, float | None] = {}
    for cell in book.cells:
        if cell.index not in plan:          # a cell that vanishes loses its orders
            cancelled |= _cancel_ref(book, cell, "open_order") | _cancel_ref(book, cell, "close_order")
        elif cell.open_order is not None and abs(cell.open_order.qty - new.quantity) > EPS:
            cancelled |= _cancel_ref(book, cell, "open_order")      # the order size changed
    cancelled |= _trim_exposure(strategy, new.max_position)
    strategy._sync_fills()                  # booked on the old layout, which they traded on
    strategy._refresh_position()
    if not same_layout:     # fills listed later belong to no cell of the new layout: the ids of
        for client_id, unlisted in cancelled.items():   # orders known to have some are foreign
            if unlisted is None:                        # (`OrderBook.abandon`), and so, for good,
                book.make_foreign(client_id, None)      # are those whose cancel did not say


def _trim_exposure(strategy, max_position: float | None) -> dict[int, float | None]:
    """A lowered max_position: cancel opening orders, farthest from the price first, until the
    worst case of each side (position plus everything resting on it) fits again. As `_cancel_ref`."""
    cancelled: dict[int, float | None] = {}
    if max_position is None:
        return cancelled
    book = strategy.book
    for direction, side in ((1, "buy"), (-1, "sell")):
        opening = [c for c in book.cells if c.open_order is not None
                   and book.side_price(c, client_ids.ROLE_OPEN)[0] == side]
        opening.sort(key=lambda c: abs(c.open_order.price - strategy.price), reverse=True)
        strategy._planned = {"buy": 0.0, "sell": 0.0}
        for cell in opening:
            if strategy._exposure(direction) <= max_position + EPS:
                break
            cancelled |= _cancel_ref(book, cell, "open_order")
    return cancelled


def _plan(strategy, levels: list[float], new: GridParams) -> dict[int, int]:
    """Old cell index -> new cell index, for the cells the new grid keeps: same edges, and the same
    side unless the cell holds a position (it keeps its side until that position is closed)."""
    sides = cell_sides(levels, strategy.price, new.grid_type)
    edges = {(levels[j], levels[j + 1]): j for j in range(len(levels) - 1)}
    plan = {}
    for cell in strategy.book.cells:
        j = edges.get((strategy.levels[cell.index], strategy.levels[cell.index + 1]))
        if j is not None and (cell.held > EPS or cell.side == sides[j]):
            plan[cell.index] = j
    return plan


def _relayout(strategy, levels: list[float], new: GridParams, plan: dict[int, int]) -> None:
    """The new cells: kept ones moved to their new index, fresh ones idle; what the vanished cells
    held gets closing orders on the new cells (as a rebuild does)."""
    book = strategy.book
    used = {c.index: c.seq for c in book.cells}     # client ids the old layout spent per level
    cells = [Cell(j, side) for j, side in enumerate(cell_sides(levels, strategy.price, new.grid_type))]
    lost = [c for c in book.cells if c.index not in plan]
    opened = book.abandon(lost, plan)       # first: an order it finds gone filled is not handed over
    lots = take_lots(book, lost, strategy.price, opened)
    for cell in book.cells:
        j = plan.get(cell.index)
        if j is None:
            continue
        cell.index = j
        cells[j] = cell
    for cell in cells:
        for ref in (cell.open_order, cell.close_order):     # a kept order keeps its client id
            if ref is not None and ref.client_id is not None:
                cid = client_ids.decode(ref.client_id)
                used[cid.level] = max(used.get(cid.level, 0), cid.seq)
    for cell in cells:                      # a level's next client ids never repeat one already sent
        cell.seq = max(cell.seq, used.get(cell.index, 0))
    book.levels, book.cells = list(levels), cells
    book.refs_changed()
    strategy.params = new
    adopt_inventory(book, new.quantity, strategy.price, lots)


def _unblock(cells: list[Cell]) -> None:
    """A new size or limit may fit where the old one did not."""
    for cell in cells:
        if cell.blocked in ("invalid", "exposure"):
            cell.blocked = None


def _roll_back(strategy, new: GridParams, old: GridParams, snapshot: tuple | None, before: set[str],
               exc: ExchangeError) -> AdjustFailed:
    """Put the old grid back after a failed change, and say truthfully how far that got.

    The books take the old layout again (its kept orders with them); what the change placed, as
    far as we know, and what it sent unheard, is foreign and in doubt. A reconcile then books
    every fill and cancels what rests outside the old grid, and the old grid's missing orders
    are placed. Rolled back when that worked; in doubt when the venue failed again: the next
    turns finish the same repair.
    """
    book = strategy.book
    maybe: set[int] = set()                 # nothing is placed before the new layout (snapshot) exists
    if snapshot is not None:
        maybe = {ref.client_id for c in book.cells for ref in (c.open_order, c.close_order)
                 if ref is not None and ref.id not in before and ref.client_id is not None} | book.in_doubt
    book.foreign |= maybe
    book.in_doubt |= maybe
    strategy.params = old
    if snapshot is not None:
        strategy.params, book.levels, book.cells, book.carried = snapshot
        book.refs_changed()
    for cid in map(client_ids.decode, maybe):   # the old cells' next ids never repeat the change's
        if cid.level < len(book.cells):
            book.cells[cid.level].seq = max(book.cells[cid.level].seq, cid.seq)
    tried = f"change to {_describe(new)} failed ({exc})"
    try:
        strategy._booked(book.reconcile())
        strategy._refresh_position()
        strategy._ensure_all()
    except ExchangeError as again:
        book.in_doubt |= maybe
        book.unsure = True                  # a cancel's answer may be lost too: what rests is learnt first
        message = (f"{tried}; restoring {_describe(old)} failed too ({again}): in doubt, up to {len(maybe)} "
                   f"orders of the new grid may still rest and {len(book.open_orders())} of the old grid do; "
                   "the next turns cancel what does not belong to the old grid and place what it lacks")
        strategy._event("adjust_in_doubt", message)
        return AdjustFailed("in doubt", message)
    message = f"{tried}; rolled back: {_describe(old)} was restored with {len(book.open_orders())} orders resting"
    strategy._event("adjust_failed", message)
    return AdjustFailed("rolled back", message)


def _cancel_ref(book: OrderBook, cell: Cell, slot: str) -> dict[int, float | None]:
    """Cancel one order of a cell: {its client id: what it filled that no booked fill shows yet,
    None when unknown}, or {} when there was none. The ref leaves the cell only once the order is
    gone by our cancel: one found gone (filled) stays, so its fill books on this cell."""
    ref = getattr(cell, slot)
    if ref is None:
        return {}
    unlisted = book.cancel_ref(cell, slot)
    if unlisted is False or ref.client_id is None:
        return {}
    return {ref.client_id: unlisted}


def _order_ids(book: OrderBook) -> set[str]:
    return {ref.id for c in book.cells for ref in (c.open_order, c.close_order) if ref is not None}


def _describe(p: GridParams) -> str:
    return f"grid {p.lower}..{p.upper} x{p.num} {p.mode}, quantity {p.quantity}"
