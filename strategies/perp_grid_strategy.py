"""PerpGridStrategy: a perpetual-futures grid that reconciles what should rest with what does.

The grid has price lines L[0] < ... < L[n-1]; cell i is the gap between L[i] and L[i+1]. At
(re)build each cell gets a side: long cells open with a postOnly buy at L[i] and close with a
sell at L[i+1]; short cells open with a sell at L[i+1] and close with a buy at L[i]. Neutral
grids make the cells below the price long and those above short (sides never mix positions:
a long cell holds only while the price is below its top, a short cell only above its bottom);
long grids make every cell long, short grids every cell short.

This module makes the grid's decisions: levels and sides, what should rest each turn, the risk
rules, the close-and-stop and range changes. The books (client ids, orders in doubt, fill
booking, the grid's own position) live in strategies/order_book.py; the market close itself in
strategies/closing.py, the hand-over of held positions to a new layout in strategies/inventory.py
and live changes in strategies/reconfigure.py.

Every turn (`step`) the strategy books new fills (by client id: instance, level, role), applies
the risk rules, then makes the resting orders match each cell's state: a cell holding a position
must have a closing order for exactly that quantity (so partial fills grow the closing order);
an idle cell is armed when the price is on the right side and max_position allows. A restart is
a reconcile: open orders are adopted by client id, missed fills are booked once. A first start
(no saved state) starts from the present: fills of an earlier life of the instance id are never
booked, and a position already on the account is refused (PositionNotOwned, exit 2) unless the
config adopts it (`adopt_position`) as the grid's inventory with closing orders.

The risk rules read the grid's own PnL (its own position at its own average entry), never a
manual position's. A close-and-stop ends only when the exchange position reaches what the trader
holds beside the grid; a partly filled market close is retried, and what cannot be closed is
named in the stop reason (strategies/closing.py).

Exchange errors (see exchanges/base.py): InvalidOrder skips the level with a doubling backoff
(PriceOutOfBand also until the price moved), and a closing order refused CLOSE_REJECTIONS times
stops the bot; InsufficientMargin skips the level until the next fill; PostOnlyRejected retries
next turn; RateLimited, ExchangeUnavailable and AuthenticationError propagate to the loop, which
waits, backs off or stops. No I/O here other than the exchange and the optional store.
"""
from __future__ import annotations

from typing import Any, Callable

from exchanges import client_ids
from exchanges.base import (Exchange, ExchangeError, InsufficientMargin, InvalidOrder, OrderNotFound, OrderRequest,
                            Position, PostOnlyRejected, PriceOutOfBand)
from strategies import grid_state
from strategies.closing import close_and_stop
from strategies.grid_math import floor_to, grid_levels, round_to
from strategies.grid_params import GridParams
from strategies.inventory import adopt_inventory, cell_sides, take_lots
from strategies.book_records import EPS, FILL_LOOKBACK_MS, MARKET_LEVEL, Cell, Totals
from strategies.order_book import OrderBook, Planned
from strategies.reconfigure import AdjustFailed, apply_params

__all__ = ["MARKET_LEVEL", "AdjustFailed", "PerpGridStrategy", "PositionNotOwned"]
REJECT_BACKOFF_MS = 2_000               # a refused level waits this long, doubling with each refusal ...
REJECT_BACKOFF_MAX_MS = 300_000         # ... up to this
CLOSE_REJECTIONS = 6                    # a closing order refused this often in a row ends the bot
REFUSED = ("invalid", "band")           # blocks that hold closing orders back too (margin never does)


class PositionNotOwned(ValueError):
    """A first start found a position the grid did not open and was not told to adopt (exit 2)."""


class PerpGridStrategy:
    """One grid on one symbol of one exchange account."""

    def __init__(self, exchange: Exchange, params: GridParams, instance_id: str, store: Any = None,
                 log: Callable[[str], None] = print, on_fill: Callable[[dict], None] | None = None,
                 adopt_position: bool = False) -> None:
        self.exchange = exchange
        self.adopt_position = adopt_position
        self.params = params
        self.config_params = params     # as the config file says; `params` may carry a range set live
        self.instance_id = instance_id
        self.store = store
        self.log = log
        self.on_fill = on_fill
        self.market = exchange.market(params.symbol)
        self.book = OrderBook(exchange, params.symbol, instance_id, params.grid_type, store, self._event, on_fill)
        self.position = 0.0
        self.entry = 0.0
        self.unrealized = 0.0
        self.realized = 0.0
        self.price = 0.0
        self.now_ms = 0             # the exchange's time, from its ticker
        self.state = "starting"
        self.stop_reason = ""
        self._planned: dict[str, float] = {"buy": 0.0, "sell": 0.0}   # qty per side about to be sent
        self._out_of_ids: set[tuple[int, int]] = set()  # (level, role) whose every client id is taken, said
        self._closing: str | None = None    # reason of a close-and-stop begun and not yet finished
        self._close_target: float | None = None     # account position once the grid's is closed
        self._close_waits = 0               # turns the close waited for unlisted fills
        self._saved: dict | None = None     # a private copy of the state last written to the store
        self._unsettled: set[int] = set()   # cells that may want something (every other one is _settled) ...
        self._layout: list[Cell] | None = None  # ... of this list of cells (a new layout: all of them)
        # Live turns (about one a second) look at every cell, as they always did: a cell the books
        # failed to touch can never be left without its order while money is at stake. The
        # backtest, which takes tens of thousands of turns a second, looks only at _unsettled
        # cells (run_backtest sets this); tests/bot/test_backtest.py holds both equal, fill by fill.
        self.incremental = False

    # ---- the books (strategies/order_book.py), as the page, the loop and the tests read them --
    @property
    def cells(self) -> list[Cell]:
        return self.book.cells

    @property
    def levels(self) -> list[float]:
        return self.book.levels

    @property
    def totals(self) -> Totals:
        return self.book.totals

    @property
    def carried(self) -> float:
        return self.book.carried

    def owned(self) -> float:
        """The grid's own signed position: what its cells hold plus the inventory it carries."""
        return self.book.owned()

    def grid_unrealized(self) -> float:
        """Unrealized PnL of the grid's own position (never of a manual one on the same account)."""
        return self.book.unrealized(self.price)

    # ---- lifecycle -------------------------------------------------------------------------
    @property
    def stopped(self) -> bool:
        return self.state == "stopped"

    def start(self) -> None:
        """Restore the saved grid, reconcile it with the exchange, and place the missing orders."""
        self._refresh_market()
        saved = grid_state.load(self)
        if saved:
            grid_state.choose_range(self, saved)
        if saved and saved.get("grid") == self.params.grid_key():
            grid_state.restore(self, saved)
            self.log(f"restored grid state: {self.totals.fill_count} fills, grid profit {self.totals.grid_profit:.4f}")
        else:
            inherited = None
            if saved:                   # book the old grid's fills on the old cells, then rebuild
                grid_state.restore(self, saved)
                self._event("grid_changed", "grid parameters changed since the last run: rebuilding")
                self.book.cancel_all()
                self._sync_fills()
            else:
                inherited = self._first_start()
            self._build()
            if inherited is not None:
                adopt_inventory(self.book, self.params.quantity, self.price,
                                [(inherited.qty, inherited.entry_price)])
                self.book.grid_entry = inherited.entry_price
        if saved:                       # a first start begins from the present (`_first_start`)
            self._unrecorded_sends()
        self.reconcile()
        self.state = "running"
        self._event("start", f"grid {self.params.lower}..{self.params.upper} x{len(self.levels)} "
                             f"{self.params.mode} {self.params.grid_type} at price {self.price}")
        if self._closing is not None:   # the last run began a close: finish it, whatever PnL says now
            close_and_stop(self, self._closing)
        else:
            self._check_risk()
        if not self.stopped:
            self._ensure_all()
        self._save()

    def _unrecorded_sends(self) -> None:
        """Orders the last process sent and was killed before recording (the store's journal): in
        doubt, so the start's reconcile asks the venue about each. A market order of a close that
        the kill cut short carries the close on, with the target it was sent for: its fill, listed
        later, must not be taken for the trader's."""
        if self.store is None:
            return
        for batch in self.store.sent_unrecorded():
            self.book.in_doubt.update(batch["ids"])
            if batch.get("closing") is not None:
                self._closing = self._closing or str(batch["closing"])
                if self._close_target is None and batch.get("close_target") is not None:
                    self._close_target = float(batch["close_target"])

    def step(self) -> None:
        """One turn of the loop: fills, risk rules, orders."""
        if self.stopped:
            return
        try:
            self._refresh_market()
            if self._closing is not None:   # a close whose answer was lost: finish it before anything else
                close_and_stop(self, self._closing)
                return
            if self._sync_fills():
                self._refresh_position()
            self._check_risk()
            if not self.stopped:
                self._ensure_all()
        finally:
            self._save()                # what was booked before an exchange error stays booked

    def shutdown(self, reason: str = "shutdown") -> int:
        """Cancel our resting orders (positions stay with their cells) and save; returns how many."""
        count = self.book.cancel_all()
        self._sync_fills()
        self._refresh_position()
        self._event("shutdown", f"{reason}: cancelled {count} orders")
        self._save()
        return count

    def book_late_fills(self) -> float:
        """Book what the venue listed since; returns the signed quantity of our orders that left
        the book (filled, or cancelled after filling some) whose fills are still unlisted. A
        stopping bot calls it until nothing is left, so its books equal the exchange when it exits.
        With nothing unlisted (shutdown booked what was listed) it asks the venue nothing."""
        if abs(self.book.unlisted()) <= EPS:
            return 0.0
        if self._sync_fills():
            self._refresh_position()
            self._save()
        return self.book.unlisted()

    def _first_start(self) -> Position | None:
        """No saved state: the grid starts from the present, whatever this account did before.

        Orders of an earlier life of this instance (a lost or moved database) are cancelled, and
        fills older than now are never booked: replaying them would hand the new grid positions
        an earlier close already flattened. A position already on the account and symbol is the
        trader's unless the config opts in (`adopt_position`): then it is returned, to become the
        grid's inventory with closing orders; otherwise PositionNotOwned (exit 2) names it. One
        exception: a position that orders of a start killed before it saved anything (the store's
        journal) made, all of it by the venue's record of each, is the grid's own and is returned.
        """
        for order in self.book.our_open_orders():
            self.book.cancel(order.id)
            self._event("stray_cancelled", f"first start: cancelled order {order.id} at {order.price} "
                                           "left by an earlier run of this instance")
        now = self.exchange.fetch_ticker(self.params.symbol).timestamp
        ours = [f.timestamp + 1 for f in self.exchange.fetch_fills(self.params.symbol, max(0, now - FILL_LOOKBACK_MS))
                if client_ids.belongs_to(f.client_id, self.instance_id)]
        self.book.fills_from_ms = self.book.last_fill_ts = max([now, *ours])
        # the journal is emptied by this start's first commit: its orders were cancelled above
        killed_start = [cid for batch in self.store.sent_unrecorded() for cid in batch["ids"]] if self.store else []
        pos = self.exchange.fetch_position(self.params.symbol)
        if abs(pos.qty) <= EPS:
            return None
        held = f"{self.params.symbol} already holds a position of {pos.qty:g} (entry {pos.entry_price:g}) on this account"
        made = self._executed_by(killed_start)
        if made is not None and abs(made - pos.qty) <= EPS:
            self._event("position_adopted", f"{held}: made by this instance's orders, sent by a start killed before "
                                            "it saved anything: adopted as the grid's inventory")
            return pos
        if not self.adopt_position:
            maybe_ours = (" (orders of an earlier start of this instance, killed before it saved anything, "
                          "made part of it at most)") if killed_start else ""
            raise PositionNotOwned(f"{held}{maybe_ours}; close it first, or set strategy_config.adopt_position to "
                                   "true to trade it as the grid's inventory")
        max_pos = self.params.max_position
        if max_pos is not None and abs(pos.qty) > max_pos + EPS:
            raise PositionNotOwned(f"{held}, more than max_position {max_pos:g}: it cannot be adopted")
        self._event("position_adopted", f"{held}: adopted as the grid's inventory (adopt_position)")
        return pos

    def _executed_by(self, cids: list[int]) -> float | None:
        """The signed quantity orders under these client ids executed, by the venue's record of
        each; None when there are none, or the venue cannot say for one of them."""
        if not cids:
            return None
        total = 0.0
        for cid in sorted(set(cids)):
            try:
                order = self.exchange.fetch_order_by_client_id(self.params.symbol, cid)
            except OrderNotFound:
                continue                    # never reached the venue
            except ExchangeError:
                return None
            total += order.filled_qty if order.side == "buy" else -order.filled_qty
        return round(total, 10)

    # ---- grid building ---------------------------------------------------------------------
    def _build(self) -> None:
        """Cells for the current params; what the previous grid held keeps a closing order on them."""
        levels = grid_levels(self.params.lower, self.params.upper, self.params.num, self.params.mode,
                             self.market.tick_size)
        if len(levels) - 1 > client_ids.MAX_LEVEL:
            raise ValueError(f"grid_num: at most {client_ids.MAX_LEVEL} levels")
        book = self.book
        book.foreign &= set(book.foreign_left)  # the layout's own cells start afresh, but for ids
        opened = book.abandon(book.cells)       # whose fills are still to be listed
        lots = take_lots(book, book.cells, self.price, opened)  # after: an order found gone filled is not handed over
        book.levels = levels
        book.cells = [Cell(i, side) for i, side in enumerate(cell_sides(levels, self.price, self.params.grid_type))]
        book.refs_changed()
        adopt_inventory(book, self.params.quantity, self.price, lots)

    def adjust_grid_range(self, lower: float | None, upper: float | None) -> dict:
        """Move the grid to a new range without restarting, by the one path every live change takes
        (strategies/reconfigure.py): orders at levels both ranges share keep their ids and queue
        place, and a failure answers truthfully (AdjustFailed: rolled back or in doubt)."""
        apply_params(self, self.params.with_range(self.params.lower if lower is None else lower,
                                                  self.params.upper if upper is None else upper))
        self._event("grid_adjusted", f"range now {self.params.lower}..{self.params.upper}")
        return {**self.grid_dict(), "outcome": "applied"}

    # ---- reconciliation and fills ----------------------------------------------------------
    def reconcile(self) -> None:
        """Make our view of resting orders equal the exchange's: adopt ours, cancel strays.

        Saved even when the venue fails midway (as a turn is): the fills it booked are in the
        store's ledger already, and books saved without them would never book them again."""
        try:
            self._booked(self.book.reconcile())
            self._refresh_position()
        finally:
            self._save()

    def _sync_fills(self) -> int:
        """Book every fill we have not booked yet; returns how many."""
        return self._booked(self.book.sync_fills())

    def _booked(self, fills: list) -> int:
        """Follow newly booked fills: the account position moves, and a fill frees margin."""
        for fill in fills:
            self.position = round(self.position + (fill.qty if fill.side == "buy" else -fill.qty), 10)
        if fills:
            for cell in self.cells:
                if cell.blocked in ("margin", "exposure"):
                    cell.blocked = None
                    self.book.touch(cell)
        return len(fills)

    # ---- risk ------------------------------------------------------------------------------
    def _check_risk(self) -> None:
        p = self.params
        pnl = self.grid_unrealized() if p.stop_loss is not None or p.take_profit is not None else 0.0
        if p.stop_loss is not None and pnl <= -p.stop_loss:
            close_and_stop(self, f"stop loss: unrealized PnL of the grid {pnl:.2f} <= -{p.stop_loss}")
            return
        if p.take_profit is not None and pnl >= p.take_profit:
            close_and_stop(self, f"take profit: unrealized PnL of the grid {pnl:.2f} >= {p.take_profit}")
            return
        low, high = self._bounds()
        if low <= self.price <= high:
            return
        where = f"price {self.price} left the range {p.lower}..{p.upper}"
        if p.boundary_action == "emergency_close":
            close_and_stop(self, f"{where}: emergency close")
        elif p.boundary_action == "adjust_range":
            half = (p.upper - p.lower) / 2
            tick = self.market.tick_size
            lower = round_to(max(tick, self.price - half), tick)
            self.log(f"{where}: re-centring the grid")
            try:
                self.adjust_grid_range(lower, round_to(lower + 2 * half, tick))
            except ValueError as exc:
                venue = exc.__cause__ if isinstance(exc, AdjustFailed) else None
                if isinstance(venue, ExchangeError):
                    # the venue failed midway (down, a rate limit), not the change: the old grid is
                    # back (or in doubt: reconciled first), and the turn after the loop's backoff
                    # re-centres; only a change that cannot be (max_position's margin) stops
                    self.log(f"{where}: re-centring failed ({exc}); trying again next turn")
                    raise venue from exc
                self._stop(f"{where}: adjust_range failed ({exc})")
        else:
            self.book.cancel_all()
            self._stop(f"{where}: stopped (position kept)")

    def _bounds(self) -> tuple[float, float]:
        tol = self.params.boundary_tolerance
        return self.params.lower * (1 - tol), self.params.upper * (1 + tol)

    def flatten(self, reason: str) -> None:
        """The trader's flatten: cancel the grid's orders, close its own position at market, stop.
        Sticky like every close: an exchange error midway is finished on the next turns."""
        try:
            close_and_stop(self, reason)
        finally:
            self._save()

    def _stop(self, reason: str) -> None:
        self.state = "stopped"
        self.stop_reason = reason
        self._event("stopped", reason)

    # ---- orders ----------------------------------------------------------------------------
    def _exposure(self, direction: int) -> float:
        """Worst-case position on one side: the net position if every resting order of that side
        (opening or closing, of any cell) and every one planned this turn filled. Exact for the net
        position, so inventory carried over from a previous range counts too."""
        side = "buy" if direction > 0 else "sell"
        return max(0.0, self.position * direction + self.book.resting(side) + self._planned[side])

    def _ensure_all(self) -> None:
        """Nearest cells first, so max_position is spent on the levels most likely to trade.

        The wanted orders go out as one batch. Planning counts them as resting for max_position;
        if some fail, the cells that planning held back for exposure this turn are planned again
        with the real outcome (as placing them one by one would have done), the others never.

        Only the cells that may want something are visited (`_unsettled`): a settled cell rests
        the one order it needs, and visiting it changes nothing whatever the price, so skipping it
        changes no decision; it becomes unsettled only when the books touch it (a fill, a cancel,
        a reconcile). That keeps a turn's work to the cells the price crossed, not the whole grid.
        """
        if self.book.resolve_doubts() is not None:     # placements without an answer: reconciled first
            self._refresh_position()
        price = self.price
        levels = self.levels
        attempted: set[int] = set()
        try:
            while True:
                self._planned = {"buy": 0.0, "sell": 0.0}
                planned: list[Planned] = []
                held_back: list[Cell] = []
                for i in sorted(self._visit(), key=lambda i: (abs(levels[i] + levels[i + 1] - 2 * price), i)):
                    if i not in attempted:
                        self._ensure(self.cells[i], planned, held_back)
                if not planned:
                    return
                attempted.update(cell.index for cell, _, _ in planned)
                if self.book.submit(planned, self._refused) or not held_back:
                    return
                for cell in held_back:
                    cell.blocked = None
        finally:
            self._visit()
            cells = self.cells
            self._unsettled = {i for i in self._unsettled if not self._settled(cells[i])}

    def _visit(self) -> set[int]:
        """The cells that may want something: the unsettled ones and those the books touched since
        (every cell on a live turn: see `incremental`)."""
        touched = self.book.take_touched()
        if touched is None or self.cells is not self._layout or not self.incremental:
            self._layout = self.cells
            self._unsettled = set(range(len(self.cells)))
        else:
            self._unsettled |= touched
        return self._unsettled

    def _settled(self, cell: Cell) -> bool:
        """The cell rests exactly the one order it needs (an opening order with nothing held, or
        a closing order for all it holds), or holds nothing and waits for a fill to lift a margin or
        exposure block (`_booked` touches it then), and no refusal waits out a backoff: `_ensure`
        and `wake_prices` find nothing to do on it, whatever the price and the exposure."""
        if cell.blocked in REFUSED:
            return False
        if cell.held <= EPS:
            return cell.close_order is None and (cell.open_order is not None or cell.blocked is not None)
        ref = cell.close_order
        return ref is not None and abs(ref.to_book - floor_to(cell.to_close, self.market.step_size)) <= EPS

    def _ensure(self, cell: Cell, planned: list[Planned], held_back: list[Cell]) -> None:
        """Cancel what no longer fits this cell now; add the order it lacks to `planned`.

        A holding below the market minimum cannot be closed alone: it waits for its opening
        order to fill more, or, with none resting, the level's next opening order is that much
        smaller, so the cell closes `quantity` in one order again.
        """
        self._unblock(cell)
        small = False
        if cell.held > EPS:
            small = self._too_small(cell)
            to_close = floor_to(cell.to_close, self.market.step_size)
            ref = cell.close_order
            if ref is not None and abs(ref.to_book - to_close) > EPS:
                if not self.book.cancel_close(cell):
                    return              # it filled meanwhile: the fill decides next turn
                to_close = floor_to(cell.to_close, self.market.step_size)   # less what it filled
            if cell.close_order is None and to_close > EPS and not small and cell.blocked not in REFUSED:
                self._plan(cell, client_ids.ROLE_CLOSE, to_close, planned)
        elif cell.close_order is not None:
            self.book.cancel(cell.close_order.id)
            cell.close_order = None
        if (cell.open_order is None and (cell.held <= EPS or small) and cell.blocked is None
                and not self.book.opening_unlisted(cell)):
            qty = floor_to(self.params.quantity - cell.held, self.market.step_size) if small else self.params.quantity
            max_pos = self.params.max_position
            if max_pos is not None and self._exposure(cell.direction) + qty > max_pos + EPS:
                cell.blocked = "exposure"
                held_back.append(cell)
                return
            self._plan(cell, client_ids.ROLE_OPEN, qty, planned)

    def _too_small(self, cell: Cell) -> bool:
        """A holding below the market minimum with no closing order: no order can close it alone."""
        return EPS < cell.held < self.market.min_qty - EPS and cell.close_order is None

    def _unblock(self, cell: Cell) -> None:
        """A refused level is tried again once its backoff is over (a price-band refusal only
        once the price moved too)."""
        if cell.blocked not in REFUSED or self.now_ms < cell.retry_at:
            return
        if cell.blocked == "band" and abs(self.price - cell.reject_price) < self.market.tick_size / 2:
            return
        cell.blocked = None

    def _plan(self, cell: Cell, role: int, qty: float, planned: list[Planned]) -> None:
        """Add this cell's order to the batch under a fresh client id (unless postOnly would cross)."""
        side, price = self.book.side_price(cell, role)
        if (side == "buy" and price >= self.price) or (side == "sell" and price <= self.price):
            return                      # postOnly would cross now: wait for the price
        qty = floor_to(qty, self.market.step_size)
        cid = self._fresh_id(cell, role)
        if cid is None:
            return
        planned.append((cell, role, OrderRequest(self.params.symbol, side, qty, price, post_only=True, client_id=cid)))
        self._planned[side] += qty

    def _fresh_id(self, cell: Cell, role: int) -> int | None:
        """The cell's next client id. Its 11-bit sequence wraps after 2,048 orders, so an id the
        books still read another way is skipped: a fill under a `foreign` id is carried, never
        booked on the cell, and a kept order's or one in doubt names another order. None (nothing
        is sent) only if every sequence of this level and role is taken."""
        for _ in range(client_ids.MAX_SEQ + 1):
            cell.seq = (cell.seq + 1) & client_ids.MAX_SEQ
            cid = client_ids.encode(self.instance_id, cell.index, role, cell.seq)
            if not self.book.taken(cid):
                self._out_of_ids.discard((cell.index, role))
                return cid
        if (cell.index, role) not in self._out_of_ids:     # said once, not on every turn it stays so
            self._out_of_ids.add((cell.index, role))
            self._event("skip_level", f"level {cell.index}: every client id of the level is still taken; nothing placed")
        return None

    def _refused(self, cell: Cell, role: int, request: OrderRequest, error: ExchangeError) -> bool:
        """The level's reaction to a refused order; False for an error the loop must handle.

        An InvalidOrder skips the level for a while, never for good: the wait doubles with each
        refusal in a row (a price-band refusal also waits for the price to move). A closing
        order refused CLOSE_REJECTIONS times in a row leaves a position nobody can close from
        here: the bot stops and says so.
        """
        if isinstance(error, PostOnlyRejected):
            return True                 # the price moved: retry next turn
        if isinstance(error, InsufficientMargin):
            cell.blocked = "margin"
            self._event("skip_level", f"level {cell.index} skipped until the next fill: {error}")
            return True
        if isinstance(error, InvalidOrder):
            cell.rejections += 1
            wait = min(REJECT_BACKOFF_MAX_MS, REJECT_BACKOFF_MS * 2 ** (cell.rejections - 1))
            cell.blocked = "band" if isinstance(error, PriceOutOfBand) else "invalid"
            cell.retry_at, cell.reject_price = self.now_ms + wait, self.price
            if role == client_ids.ROLE_CLOSE and cell.rejections >= CLOSE_REJECTIONS:
                self._stop(f"level {cell.index}: the closing {request.side} of {request.qty:g} at {request.price} "
                           f"was refused {cell.rejections} times ({error}); the grid's position of {self.owned():g} "
                           f"{self.params.symbol} stays open")
                return True
            when = " once the price moves" if cell.blocked == "band" else ""
            self._event("skip_level", f"level {cell.index} skipped for {wait / 1000:g} s{when} "
                                      f"(refusal {cell.rejections}): {error}")
            return True
        return False

    # ---- market and account ----------------------------------------------------------------
    def _refresh_market(self) -> None:
        ticker = self.exchange.fetch_ticker(self.params.symbol)
        self.price, self.now_ms = ticker.last, ticker.timestamp
        if self.entry and self.position:
            self.unrealized = self.position * (self.price - self.entry)

    def _refresh_position(self) -> None:
        pos = self.exchange.fetch_position(self.params.symbol)
        self.position, self.entry = pos.qty, pos.entry_price
        self.unrealized, self.realized = pos.unrealized_pnl, pos.realized_pnl

    def _equity(self) -> float:
        return self.exchange.fetch_balance().total

    def wake_prices(self) -> tuple[float, float]:
        """Prices at which a turn could do something besides matching resting orders.

        The backtest skips every tick strictly between them (and between the best bid and ask),
        which is what makes it fast without changing a single rule.
        """
        if self.stopped:
            return float("inf"), float("-inf")
        half = self.market.tick_size / 2
        # the range's bounds as they are: with a boundary_tolerance they are rarely on a tick, and
        # a tick less than half a tick outside them is out of range too (a tick on the bound wakes
        # a turn that finds nothing to do: harmless)
        low, high = self._bounds()
        owned = self.owned() if self.params.stop_loss is not None or self.params.take_profit is not None else 0.0
        if abs(owned) > EPS:
            for limit in (self.params.stop_loss, self.params.take_profit):
                if limit is not None:
                    for sign in (-1, 1):
                        p = self.book.grid_entry + sign * limit / owned
                        if p < self.price:
                            low = max(low, p)
                        else:
                            high = min(high, p)
        cells = self.cells
        for i in self._visit():             # a settled cell wants no order
            cell = cells[i]
            if cell.blocked in REFUSED:     # until its backoff is over (wake_ms)
                continue
            wants = []
            small = self._too_small(cell)
            # as _ensure decides: a margin refusal holds back opening orders only, so a closing
            # order it refused is tried again on every turn the price allows it
            if cell.to_close > EPS and cell.close_order is None and not small:
                wants.append(client_ids.ROLE_CLOSE)
            if cell.blocked is None and cell.open_order is None and (cell.held <= EPS or small):
                wants.append(client_ids.ROLE_OPEN)
            for role in wants:
                side, price = self.book.side_price(cell, role)
                if side == "buy":
                    high = min(high, price + half)
                else:
                    low = max(low, price - half)
        return low, high

    def wake_ms(self) -> int | None:
        """The exchange time at which a refused level's backoff ends (the next turn tries it again),
        or None: the backtest must not skip past it."""
        if self.stopped:
            return None
        return min((self.cells[i].retry_at for i in self._visit() if self.cells[i].blocked in REFUSED), default=None)

    # ---- views and persistence -------------------------------------------------------------
    def grid_dict(self) -> dict:
        p = self.params
        return {"lower": p.lower, "upper": p.upper, "num": p.num, "mode": p.mode, "type": p.grid_type,
                "levels": list(self.levels),
                "config_lower": self.config_params.lower, "config_upper": self.config_params.upper}

    def open_orders(self) -> list[dict]:
        return self.book.open_orders()

    def summary(self) -> dict:
        t = self.totals
        return {"price": self.price, "position": self.position, "entry_price": self.entry,
                "grid_profit": t.grid_profit, "realized_pnl": self.realized, "unrealized_pnl": self.unrealized,
                "fees": t.fees, "volume": t.volume, "fill_count": t.fill_count, "cycles": t.cycles,
                "state": self.state, "stop_reason": self.stop_reason}

    def _save(self) -> None:
        """Save the books when they changed (strategies/grid_state.py)."""
        grid_state.save(self)

    def _event(self, kind: str, message: str) -> None:
        self.log(message)
        if self.store is not None:
            self.store.add_event(kind, message)
