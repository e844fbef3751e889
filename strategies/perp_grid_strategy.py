"""PerpGridStrategy: a perpetual-futures grid that reconciles what should rest with what does.

The grid has price lines L[0] < ... < L[n-1]; cell i is the gap between L[i] and L[i+1]. At
(re)build each cell gets a side: long cells open with a postOnly buy at L[i] and close with a
sell at L[i+1]; short cells open with a sell at L[i+1] and close with a buy at L[i]. Neutral
grids make the cells below the price long and those above short (sides never mix positions:
a long cell holds only while the price is below its top, a short cell only above its bottom);
long grids make every cell long, short grids every cell short.

Every turn (`step`) the strategy reads new fills (by client id: instance, level, role), books
them on their cells, applies the risk rules, then makes the resting orders match each cell's
state: a cell holding a position must have a closing order for exactly that quantity (so
partial fills grow the closing order); an idle cell is armed when the price is on the right
side and max_position allows. A closing fill books (close - open) x qty less both fees as grid
profit; a cell whose position is closed and whose opening order is done re-arms.

Because the desired orders are derived from state, a restart is a reconcile: open orders are
adopted by their decoded client id, missed fills are replayed once (the fill ledger keys them
by trade id), and nothing is placed twice.

The orders one turn wants are sent together (`Exchange.place_orders`: one signed request per
chunk on a venue with batch orders, instead of one per level). A placement that fails without an
answer (timeout, network loss, or any error that escapes the batch) may still have reached the
venue: its client ids are "in doubt", and before anything is placed again the next turn
reconciles (fills, then open orders adopted by client id), so such a level is adopted, not
placed twice.

Exchange errors (see exchanges/base.py): InvalidOrder skips the level until the grid is rebuilt,
InsufficientMargin skips it until the next fill, PostOnlyRejected retries next turn; RateLimited,
ExchangeUnavailable and AuthenticationError propagate to the loop, which waits, backs off or
stops. No I/O here other than the exchange and the optional store (database.db.Database).
"""
from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable

from exchanges import client_ids
from exchanges.base import (Exchange, ExchangeError, ExchangeUnavailable, Fill, InsufficientMargin, InvalidOrder,
                            Order, OrderNotFound, OrderRequest, PostOnlyRejected)
from strategies.grid_math import floor_to, grid_levels, round_to
from strategies.grid_params import GridParams

EPS = 1e-9
STATE_KEY = "perp_grid"
MARKET_LEVEL = client_ids.MAX_LEVEL     # level of market orders that close the whole position
FILL_LOOKBACK_MS = 60_000               # late fills of a real venue still get read once


@dataclass
class OrderRef:
    id: str
    client_id: int | None
    price: float
    qty: float
    filled: float = 0.0

    @property
    def remaining(self) -> float:
        return max(0.0, self.qty - self.filled)


@dataclass
class Cell:
    index: int
    side: str                   # 'long' | 'short'
    held: float = 0.0           # position opened by this cell and not yet closed
    open_fees: float = 0.0      # fees paid opening `held`, booked pro rata when it closes
    seq: int = 0
    blocked: str | None = None  # 'invalid' until rebuild, 'margin' / 'exposure' until a fill
    open_order: OrderRef | None = None
    close_order: OrderRef | None = None

    @property
    def direction(self) -> int:
        return 1 if self.side == "long" else -1


@dataclass
class Totals:
    grid_profit: float = 0.0
    fees: float = 0.0
    volume: float = 0.0
    fill_count: int = 0
    cycles: int = 0


Planned = tuple[Cell, int, OrderRequest]     # (cell, role, request) of an order about to be sent


def cell_sides(levels: list[float], price: float, grid_type: str) -> list[str]:
    """Side of each cell: the cell's midpoint against the price decides in a neutral grid."""
    if grid_type in ("long", "short"):
        return [grid_type] * (len(levels) - 1)
    return ["long" if (levels[i] + levels[i + 1]) / 2 < price else "short" for i in range(len(levels) - 1)]


class PerpGridStrategy:
    """One grid on one symbol of one exchange account."""

    def __init__(self, exchange: Exchange, params: GridParams, instance_id: str, store: Any = None,
                 log: Callable[[str], None] = print, on_fill: Callable[[dict], None] | None = None) -> None:
        self.exchange = exchange
        self.params = params
        self.instance_id = instance_id
        self.store = store
        self.log = log
        self.on_fill = on_fill
        self.market = exchange.market(params.symbol)
        self.levels: list[float] = []
        self.cells: list[Cell] = []
        self.totals = Totals()
        self.carried = 0.0          # position not owned by any cell (left by a rebuild)
        self.position = 0.0
        self.entry = 0.0
        self.unrealized = 0.0
        self.realized = 0.0
        self.price = 0.0
        self.state = "starting"
        self.stop_reason = ""
        self.last_fill_ts = 0
        self._seen: set[str] = set()     # trade ids, when there is no store to dedupe them
        self._resting: dict[str, float] | None = None   # resting qty per side, rebuilt after changes
        self._planned: dict[str, float] = {"buy": 0.0, "sell": 0.0}   # qty per side about to be sent
        self._in_doubt: set[int] = set()    # client ids sent without an answer: maybe on the venue
        self._closing: str | None = None    # reason of a close-and-stop begun and not yet finished
        self._saved: dict | None = None     # a private copy of the state last written to the store

    # ---- lifecycle -------------------------------------------------------------------------
    @property
    def stopped(self) -> bool:
        return self.state == "stopped"

    def start(self) -> None:
        """Restore the saved grid, reconcile it with the exchange, and place the missing orders."""
        self._refresh_market()
        saved = self.store.load_state(STATE_KEY) if self.store is not None else None
        if saved and saved.get("grid") == self.params.grid_key():
            self._restore(saved)
            self.log(f"restored grid state: {self.totals.fill_count} fills, grid profit {self.totals.grid_profit:.4f}")
        else:
            if saved:                   # book the old grid's fills on the old cells, then rebuild
                self._restore(saved)
                self._event("grid_changed", "grid parameters changed since the last run: rebuilding")
                self._cancel_all()
                self._sync_fills()
            self._build()
        self.reconcile()
        self.state = "running"
        self._event("start", f"grid {self.params.lower}..{self.params.upper} x{len(self.levels)} "
                             f"{self.params.mode} {self.params.grid_type} at price {self.price}")
        if self._closing is not None:   # the last run began a close: finish it, whatever PnL says now
            self._close_and_stop(self._closing)
        else:
            self._check_risk()
        if not self.stopped:
            self._ensure_all()
        self._save()

    def step(self) -> None:
        """One turn of the loop: fills, risk rules, orders."""
        if self.stopped:
            return
        try:
            self._refresh_market()
            if self._closing is not None:   # a close whose answer was lost: finish it before anything else
                self._close_and_stop(self._closing)
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
        count = self._cancel_all()
        self._sync_fills()
        self._refresh_position()
        self._event("shutdown", f"{reason}: cancelled {count} orders")
        self._save()
        return count

    # ---- grid building ---------------------------------------------------------------------
    def _build(self) -> None:
        """Cells for the current params; any position left by a previous grid becomes carried."""
        self.carried += sum(c.held * c.direction for c in self.cells)
        self.levels = grid_levels(self.params.lower, self.params.upper, self.params.num, self.params.mode,
                                  self.market.tick_size)
        if len(self.levels) - 1 > client_ids.MAX_LEVEL:
            raise ValueError(f"grid_num: at most {client_ids.MAX_LEVEL} levels")
        sides = cell_sides(self.levels, self.price, self.params.grid_type)
        self.cells = [Cell(i, side) for i, side in enumerate(sides)]

    def adjust_grid_range(self, lower: float | None, upper: float | None) -> dict:
        """Move the grid to a new range without restarting; orders at levels both ranges share stay
        (strategies/reconfigure.py), and the old range comes back on failure."""
        from strategies.reconfigure import apply_params

        apply_params(self, self.params.with_range(self.params.lower if lower is None else lower,
                                                  self.params.upper if upper is None else upper))
        self._event("grid_adjusted", f"range now {self.params.lower}..{self.params.upper}")
        return self.grid_dict()

    # ---- reconciliation --------------------------------------------------------------------
    def reconcile(self) -> None:
        """Make our view of resting orders equal the exchange's: adopt ours, cancel strays."""
        self._sync_fills()
        open_orders = {o.id: o for o in self._our_open_orders()}
        known: set[str] = set()
        for cell in self.cells:
            for slot in ("open_order", "close_order"):
                ref = getattr(cell, slot)
                if ref is None:
                    continue
                live = open_orders.get(ref.id)
                if live is None:
                    setattr(cell, slot, None)       # filled (fills were read) or cancelled elsewhere
                else:
                    ref.filled = live.filled_qty
                    known.add(ref.id)
        for order in open_orders.values():
            if order.id not in known and not self._adopt(order):
                self._cancel(order.id)
                self._event("stray_cancelled", f"cancelled stray order {order.id} at {order.price}")
        self._in_doubt.clear()              # whatever reached the venue is adopted (or booked) now
        self._refresh_position()
        self._save()

    def _resolve_doubts(self) -> None:
        """Learn what became of placements without an answer before placing anything again.

        A timed-out order may rest on the venue (or have filled): placing its level again would
        double it. reconcile() books its fills and adopts it by client id; only a level whose
        order is really not there is placed again. If the venue is still unreachable this
        raises, and nothing is placed this turn.
        """
        if not self._in_doubt:
            return
        doubts = sorted(self._in_doubt)
        self.reconcile()
        adopted = {ref.client_id for c in self.cells for ref in (c.open_order, c.close_order) if ref is not None}
        for cid in doubts:
            found = "found resting: adopted" if cid in adopted else "not resting (never arrived, or filled and booked)"
            self._event("order_in_doubt", f"level {client_ids.decode(cid).level}: order {cid} sent without "
                                          f"an answer was {found}")

    def _adopt(self, order: Order) -> bool:
        """Attach an open order we placed but did not record (killed in between) to its cell."""
        cid = client_ids.decode(order.client_id)
        if cid.level >= len(self.cells):
            return False
        cell = self.cells[cid.level]
        slot = "open_order" if cid.role == client_ids.ROLE_OPEN else "close_order"
        side, price = self._order_side_price(cell, cid.role)
        if getattr(cell, slot) is not None or order.side != side or abs(order.price - price) > EPS:
            return False
        setattr(cell, slot, OrderRef(order.id, order.client_id, order.price, order.qty, order.filled_qty))
        cell.seq = max(cell.seq, cid.seq)
        return True

    # ---- fills -----------------------------------------------------------------------------
    def _sync_fills(self) -> int:
        """Book every fill we have not booked yet; returns how many."""
        fills = self.exchange.fetch_fills(self.params.symbol, max(0, self.last_fill_ts - FILL_LOOKBACK_MS))
        booked = 0
        for fill in fills:
            if not client_ids.belongs_to(fill.client_id, self.instance_id) or not self._is_new(fill):
                continue
            self._book(fill)
            booked += 1
        if booked:
            for cell in self.cells:
                if cell.blocked in ("margin", "exposure"):
                    cell.blocked = None
        return booked

    def _is_new(self, fill: Fill) -> bool:
        cid = client_ids.decode(fill.client_id)
        if self.store is not None:
            return self.store.record_fill(fill, cid.level, cid.role)
        if fill.trade_id in self._seen:
            return False
        self._seen.add(fill.trade_id)
        return True

    def _book(self, fill: Fill) -> None:
        cid = client_ids.decode(fill.client_id)
        self.last_fill_ts = max(self.last_fill_ts, fill.timestamp)
        signed = fill.qty if fill.side == "buy" else -fill.qty
        self.position = round(self.position + signed, 10)
        t = self.totals
        t.fees += fill.fee
        t.volume += fill.price * fill.qty
        t.fill_count += 1
        profit = None
        cell = self.cell_of(fill.order_id, cid.level)
        if cell is None or cid.level == MARKET_LEVEL:
            self.carried = round(self.carried + signed, 10)
        elif cid.role == client_ids.ROLE_OPEN:
            cell.held = round(cell.held + fill.qty, 10)
            cell.open_fees += fill.fee
            self._fill_ref(cell, "open_order", fill)
        else:
            closing = min(fill.qty, cell.held)
            open_price = self._order_side_price(cell, client_ids.ROLE_OPEN)[1]
            fee_share = cell.open_fees * closing / cell.held if cell.held > EPS else 0.0
            profit = (fill.price - open_price) * closing * cell.direction - fill.fee - fee_share
            cell.open_fees -= fee_share
            cell.held = round(cell.held - closing, 10)
            if cell.held <= EPS:
                cell.held, cell.open_fees = 0.0, 0.0
                t.cycles += 1
            t.grid_profit += profit
            self.carried = round(self.carried + signed + closing * cell.direction, 10)
            self._fill_ref(cell, "close_order", fill)
        if self.on_fill is not None:
            self.on_fill({"trade_id": fill.trade_id, "side": fill.side, "price": fill.price, "qty": fill.qty,
                          "fee": fill.fee, "timestamp": fill.timestamp, "level": cid.level, "profit": profit})

    def cell_of(self, order_id: str, level: int) -> Cell | None:
        """The cell resting this order, else the one its client id names: a live reconfiguration
        (strategies/reconfigure.py) moves kept orders to new cell indexes under their old ids."""
        for cell in self.cells:
            if any(ref is not None and ref.id == order_id for ref in (cell.open_order, cell.close_order)):
                return cell
        return self.cells[level] if level < len(self.cells) else None

    def _fill_ref(self, cell: Cell, slot: str, fill: Fill) -> None:
        ref = getattr(cell, slot)
        if ref is not None and ref.id == fill.order_id:
            ref.filled = round(ref.filled + fill.qty, 10)
            done = ref.remaining <= EPS
            if done:
                setattr(cell, slot, None)
            if self.store is not None:
                self.store.set_order_status(ref.id, "filled" if done else "open", ref.filled)

    # ---- risk ------------------------------------------------------------------------------
    def _check_risk(self) -> None:
        p = self.params
        if p.stop_loss is not None and self.unrealized <= -p.stop_loss:
            self._close_and_stop(f"stop loss: unrealized PnL {self.unrealized:.2f} <= -{p.stop_loss}")
            return
        if p.take_profit is not None and self.unrealized >= p.take_profit:
            self._close_and_stop(f"take profit: unrealized PnL {self.unrealized:.2f} >= {p.take_profit}")
            return
        low, high = self._bounds()
        if low <= self.price <= high:
            return
        where = f"price {self.price} left the range {p.lower}..{p.upper}"
        if p.boundary_action == "emergency_close":
            self._close_and_stop(f"{where}: emergency close")
        elif p.boundary_action == "adjust_range":
            half = (p.upper - p.lower) / 2
            tick = self.market.tick_size
            lower = round_to(max(tick, self.price - half), tick)
            self.log(f"{where}: re-centring the grid")
            try:
                self.adjust_grid_range(lower, round_to(lower + 2 * half, tick))
            except ValueError as exc:
                self._stop(f"{where}: adjust_range failed ({exc})")
        else:
            self._cancel_all()
            self._stop(f"{where}: stopped (position kept)")

    def _bounds(self) -> tuple[float, float]:
        tol = self.params.boundary_tolerance
        return self.params.lower * (1 - tol), self.params.upper * (1 + tol)

    def _close_and_stop(self, reason: str) -> None:
        """Cancel our orders, close the grid's position at market, and stop.

        The decision is sticky: `_closing` stays set (and saved) until the close has completed, so
        a close whose market order executed but whose answer was lost (ExchangeUnavailable) is
        finished on the next turn or after a restart, whatever the PnL says then. Each attempt
        books the fills first (a lost close's fill lands in `carried`) and closes only what the
        grid still owns, so a close that went through is never sent twice.
        """
        self._closing = reason
        self._cancel_all()
        self._sync_fills()
        self._refresh_position()
        owned = self.owned()                    # the grid's share only: the trader's own position stays
        qty = floor_to(abs(owned), self.market.step_size)
        if qty > EPS:
            side = "sell" if owned > 0 else "buy"
            # reduceOnly when it only shrinks the account's position (the usual case); a grid short
            # beside a bigger manual long is closed by a buy that the venue sees as growing the long
            reduces = owned * self.position > 0 and qty <= abs(self.position) + EPS
            cid = client_ids.encode(self.instance_id, MARKET_LEVEL, client_ids.ROLE_CLOSE, int(time.time()))
            self.exchange.place_order(OrderRequest(self.params.symbol, side, qty, type="market",
                                                   post_only=False, reduce_only=reduces, client_id=cid))
            self._sync_fills()
        for cell in self.cells:
            cell.held, cell.open_fees = 0.0, 0.0
        self.carried = 0.0
        self._closing = None
        self._refresh_position()
        self._stop(reason)

    def flatten(self, reason: str) -> None:
        """The trader's flatten: cancel the grid's orders, close its own position at market, stop.
        Sticky like every close: an exchange error midway is finished on the next turns."""
        try:
            self._close_and_stop(reason)
        finally:
            self._save()

    def owned(self) -> float:
        """The grid's own signed position: what its cells hold plus the inventory it carries."""
        return round(sum(c.held * c.direction for c in self.cells) + self.carried, 10)

    def _stop(self, reason: str) -> None:
        self.state = "stopped"
        self.stop_reason = reason
        self._event("stopped", reason)

    # ---- orders ----------------------------------------------------------------------------
    def _order_side_price(self, cell: Cell, role: int) -> tuple[str, float]:
        lo, hi = self.levels[cell.index], self.levels[cell.index + 1]
        if cell.side == "long":
            return ("buy", lo) if role == client_ids.ROLE_OPEN else ("sell", hi)
        return ("sell", hi) if role == client_ids.ROLE_OPEN else ("buy", lo)

    def _exposure(self, direction: int) -> float:
        """Worst-case position on one side: the net position if every resting order of that side
        (opening or closing, of any cell) and every one planned this turn filled. Exact for the net
        position, so inventory carried over from a previous range counts too."""
        if self._resting is None:
            self._resting = {"buy": 0.0, "sell": 0.0}
            for row in self.open_orders():
                self._resting[row["side"]] += row["qty"] - row["filled_qty"]
        side = "buy" if direction > 0 else "sell"
        return max(0.0, self.position * direction + self._resting[side] + self._planned[side])

    def _ensure_all(self) -> None:
        """Nearest cells first, so max_position is spent on the levels most likely to trade.

        The wanted orders go out as one batch. Planning counts them as resting for max_position;
        if some fail, the cells that planning held back for exposure this turn are planned again
        with the real outcome (as placing them one by one would have done), the others never.
        """
        self._resolve_doubts()
        price = self.price
        attempted: set[int] = set()
        while True:
            self._resting = None
            self._planned = {"buy": 0.0, "sell": 0.0}
            planned: list[Planned] = []
            held_back: list[Cell] = []
            for cell in sorted(self.cells, key=lambda c: abs(self.levels[c.index] + self.levels[c.index + 1] - 2 * price)):
                if cell.index not in attempted:
                    self._ensure(cell, planned, held_back)
            if not planned:
                return
            attempted.update(cell.index for cell, _, _ in planned)
            if self._submit(planned) or not held_back:
                return
            for cell in held_back:
                cell.blocked = None

    def _ensure(self, cell: Cell, planned: list[Planned], held_back: list[Cell]) -> None:
        """Cancel what no longer fits this cell now; add the order it lacks to `planned`."""
        if cell.held > EPS:
            ref = cell.close_order
            if ref is not None and abs(ref.remaining - cell.held) > EPS:
                if not self._cancel(ref.id):
                    return              # it filled meanwhile: the fill decides next turn
                cell.close_order = None
            if cell.close_order is None:
                self._plan(cell, client_ids.ROLE_CLOSE, cell.held, planned)
        elif cell.close_order is not None:
            self._cancel(cell.close_order.id)
            cell.close_order = None
        if cell.open_order is None and cell.held <= EPS and cell.blocked is None:
            max_pos = self.params.max_position
            if max_pos is not None and self._exposure(cell.direction) + self.params.quantity > max_pos + EPS:
                cell.blocked = "exposure"
                held_back.append(cell)
                return
            self._plan(cell, client_ids.ROLE_OPEN, self.params.quantity, planned)

    def _plan(self, cell: Cell, role: int, qty: float, planned: list[Planned]) -> None:
        """Add this cell's order to the batch under a fresh client id (unless postOnly would cross)."""
        side, price = self._order_side_price(cell, role)
        if (side == "buy" and price >= self.price) or (side == "sell" and price <= self.price):
            return                      # postOnly would cross now: wait for the price
        qty = floor_to(qty, self.market.step_size)
        cell.seq = (cell.seq + 1) & client_ids.MAX_SEQ
        cid = client_ids.encode(self.instance_id, cell.index, role, cell.seq)
        planned.append((cell, role, OrderRequest(self.params.symbol, side, qty, price, post_only=True, client_id=cid)))
        self._planned[side] += qty

    def _submit(self, planned: list[Planned]) -> bool:
        """Send the batch and book each result; True when every order was placed.

        An exception out of the batch leaves every request of it in doubt (some may have been
        placed), and so does a request the answer leaves out. A refusal of one request gets the
        level's reaction as for a single order; one without such a reaction (rate limit, a venue's
        own timeout) is also in doubt and raised to the loop once the others are booked.
        """
        requests = [req for _, _, req in planned]
        try:
            results: list[Order | ExchangeError] = self.exchange.place_orders(requests)
        except ExchangeError:
            self._doubt(requests)
            raise
        self._doubt(requests[len(results):])
        unhandled: list[OrderRequest] = []
        first_error: ExchangeError | None = None
        for (cell, role, req), result in zip(planned, results):
            if isinstance(result, Order):
                self._placed(cell, role, req, result)
            elif not self._refused(cell, result):
                unhandled.append(req)
                first_error = first_error or result
        self._doubt(unhandled)
        if first_error is not None:
            raise first_error
        if len(results) < len(requests):
            raise ExchangeUnavailable(f"the exchange answered {len(results)} of {len(requests)} orders")
        return all(isinstance(r, Order) for r in results)

    def _doubt(self, requests: list[OrderRequest]) -> None:
        """These requests may have reached the venue unheard: reconcile before placing again."""
        self._in_doubt.update(req.client_id for req in requests if req.client_id is not None)

    def _placed(self, cell: Cell, role: int, request: OrderRequest, order: Order) -> None:
        ref = OrderRef(order.id, request.client_id, request.price or order.price, request.qty, order.filled_qty)
        setattr(cell, "open_order" if role == client_ids.ROLE_OPEN else "close_order", ref)
        self._resting = None
        if self.store is not None:
            self.store.upsert_order(order, cell.index, role)

    def _refused(self, cell: Cell, error: ExchangeError) -> bool:
        """The level's reaction to a refused order; False for an error the loop must handle."""
        if isinstance(error, PostOnlyRejected):
            return True                 # the price moved: retry next turn
        if isinstance(error, InsufficientMargin):
            cell.blocked = "margin"
            self._event("skip_level", f"level {cell.index} skipped until the next fill: {error}")
            return True
        if isinstance(error, InvalidOrder):
            cell.blocked = "invalid"
            self._event("skip_level", f"level {cell.index} skipped: {error}")
            return True
        return False

    def _cancel(self, order_id: str) -> bool:
        """Cancel one order; False if it was already gone (filled or cancelled)."""
        try:
            self.exchange.cancel_order(self.params.symbol, order_id=order_id)
        except OrderNotFound:
            return False
        self._resting = None
        if self.store is not None:
            self.store.set_order_status(order_id, "canceled")
        return True

    def _cancel_all(self) -> int:
        """Cancel every resting order of this instance; returns how many.

        Only ours, by client id: the trader may have manual orders on the same account and
        symbol (a venue's cancel-all would take them too). Every order is attempted; a cancelled
        one leaves its cell, so after failures the cells name exactly the orders that may remain
        (and the first failure is raised).
        """
        mine = sorted(o.id for o in self._our_open_orders())
        results = self.exchange.cancel_orders(self.params.symbol, mine)   # concurrently where the venue allows
        failed = {oid: err for oid, err in zip(mine, results) if err is not None and not isinstance(err, OrderNotFound)}
        count = 0
        for order_id, error in zip(mine, results):
            if error is None:
                count += 1
                if self.store is not None:
                    self.store.set_order_status(order_id, "canceled")
                self._forget(lambda ref: ref.id == order_id, record=False)
        # the rest no longer rest: filled (the fills book them) or gone; a failed cancel keeps its cell
        self._forget(lambda ref: ref.id not in failed)
        self._resting = None
        if failed:
            raise next(iter(failed.values()))
        return count

    def _our_open_orders(self) -> list[Order]:
        """The exchange's open orders of this instance (by client id): never the trader's own."""
        return [o for o in self.exchange.fetch_open_orders(self.params.symbol)
                if client_ids.belongs_to(o.client_id, self.instance_id)]

    def _forget(self, which: Callable[[OrderRef], bool], record: bool = True) -> None:
        for cell in self.cells:
            for slot in ("open_order", "close_order"):
                ref = getattr(cell, slot)
                if ref is not None and which(ref):
                    if record and self.store is not None:
                        self.store.set_order_status(ref.id, "canceled")
                    setattr(cell, slot, None)

    # ---- market and account ----------------------------------------------------------------
    def _refresh_market(self) -> None:
        self.price = self.exchange.fetch_ticker(self.params.symbol).last
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
        low, high = self._bounds()
        low, high = low - half, high + half
        if self.position and self.entry:
            for limit in (self.params.stop_loss, self.params.take_profit):
                if limit is not None:
                    for sign in (-1, 1):
                        p = self.entry + sign * limit / self.position
                        if p < self.price:
                            low = max(low, p)
                        else:
                            high = min(high, p)
        for cell in self.cells:
            if cell.blocked is not None:
                continue
            wants = []
            if cell.held > EPS and cell.close_order is None:
                wants.append(client_ids.ROLE_CLOSE)
            if cell.open_order is None and cell.held <= EPS:
                wants.append(client_ids.ROLE_OPEN)
            for role in wants:
                side, price = self._order_side_price(cell, role)
                if side == "buy":
                    high = min(high, price + half)
                else:
                    low = max(low, price - half)
        return low, high

    # ---- views and persistence -------------------------------------------------------------
    def grid_dict(self) -> dict:
        p = self.params
        return {"lower": p.lower, "upper": p.upper, "num": p.num, "mode": p.mode, "type": p.grid_type,
                "levels": list(self.levels)}

    def open_orders(self) -> list[dict]:
        rows = []
        for cell in self.cells:
            for role, ref in ((client_ids.ROLE_OPEN, cell.open_order), (client_ids.ROLE_CLOSE, cell.close_order)):
                if ref is not None:
                    side = self._order_side_price(cell, role)[0]
                    rows.append({"id": ref.id, "client_id": ref.client_id, "side": side, "price": ref.price,
                                 "qty": ref.qty, "filled_qty": ref.filled, "level": cell.index,
                                 "role": "open" if role == client_ids.ROLE_OPEN else "close"})
        return rows

    def summary(self) -> dict:
        t = self.totals
        return {"price": self.price, "position": self.position, "entry_price": self.entry,
                "grid_profit": t.grid_profit, "realized_pnl": self.realized, "unrealized_pnl": self.unrealized,
                "fees": t.fees, "volume": t.volume, "fill_count": t.fill_count, "cycles": t.cycles,
                "state": self.state, "stop_reason": self.stop_reason}

    def _state(self) -> dict:
        return {"grid": self.params.grid_key(), "levels": list(self.levels), "carried": self.carried,
                "last_fill_ts": self.last_fill_ts, "totals": asdict(self.totals),
                "cells": [asdict(c) for c in self.cells], "closing": self._closing}

    def _restore(self, saved: dict) -> None:
        self.levels = saved["levels"]
        self.carried = saved["carried"]
        self.last_fill_ts = saved["last_fill_ts"]
        self._closing = saved.get("closing")
        self.totals = Totals(**saved["totals"])
        self.cells = []
        for raw in saved["cells"]:
            refs = {k: OrderRef(**raw[k]) if raw.get(k) else None for k in ("open_order", "close_order")}
            self.cells.append(Cell(**{**raw, **refs}))

    def _save(self) -> None:
        """Write the state when it differs from the last one written (most turns change nothing)."""
        if self.store is None:
            return
        state = self._state()
        if state != self._saved:
            self.store.save_state(STATE_KEY, state)
            self._saved = copy.deepcopy(state)      # never aliases a live list

    def _event(self, kind: str, message: str) -> None:
        self.log(message)
        if self.store is not None:
            self.store.add_event(kind, message)
