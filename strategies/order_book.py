"""The grid's books against one exchange account: which orders are ours, what they filled, what the grid owns.

PerpGridStrategy decides what should rest; this module keeps the record straight whatever the
venue does, and decides nothing about the grid:
- client ids (instance, level, role, sequence; exchanges/client_ids.py) tie every order and fill
  to its cell, so a restart adopts its open orders instead of placing them twice, and the
  trader's own orders and other bots' are never touched;
- orders in doubt: a placement without an answer may have reached the venue; its client id is
  kept until a reconcile has booked its fills and adopted it (or found it absent);
- fill booking: each fill once (by trade id, in the store's fill ledger), never one from before
  the grid's first start; an opening fill grows its cell's holding, a closing fill books
  (close - open) x qty less both fees as grid profit, and the close-and-stop's market fills never
  become inventory, however late they are listed;
- the grid's own position (`owned`) and its own average entry, which the risk rules use instead
  of the account's (a manual position on the same account is not the grid's);
- orders gone from the book whose fills may still be listed: strategies/departed_orders.py, mixed
  in. The records themselves (cells, order refs, totals) are strategies/book_records.py.
It talks to the exchange and the optional store (database.db.Database) only.
"""
from __future__ import annotations

from typing import Any, Callable

from exchanges import client_ids
from exchanges.base import (Exchange, ExchangeError, ExchangeUnavailable, Fill, Order, OrderNotFound,
                            OrderRequest)
from strategies.book_records import EPS, FILL_LOOKBACK_MS, MARKET_LEVEL, Cell, OrderRef, Totals, average_entry
from strategies.departed_orders import DepartedOrders

Planned = tuple[Cell, int, OrderRequest]     # (cell, role, request) of an order about to be sent
Refusal = Callable[[Cell, int, OrderRequest, ExchangeError], bool]   # the grid's reaction; False: not handled


class OrderBook(DepartedOrders):
    """The cells' holdings and orders of one grid instance, kept equal to what the exchange did."""

    def __init__(self, exchange: Exchange, symbol: str, instance_id: str, grid_type: str, store: Any = None,
                 event: Callable[[str, str], None] = lambda _k, _m: None,
                 on_fill: Callable[[dict], None] | None = None) -> None:
        self.exchange = exchange
        self.symbol = symbol
        self.instance_id = instance_id
        self.grid_type = grid_type
        self.store = store
        self.event = event
        self.on_fill = on_fill
        self.levels: list[float] = []
        self.cells: list[Cell] = []
        self.totals = Totals()
        self.carried = 0.0          # position not owned by any cell (left by a rebuild)
        self.grid_entry = 0.0       # average entry of the grid's own position (owned())
        self.fills_from_ms = 0      # the first start: older fills belong to no grid of ours
        self.last_fill_ts = 0
        self._seen: set[str] = set()     # trade ids, when there is no store to dedupe them
        # What the cells' order refs add up to, summed once after they change (`refs_changed`):
        # resting qty per side (max_position asks every turn) and their client ids (every order
        # planned asks whether its id is taken); None until asked.
        self._resting: dict[str, float] | None = None
        self._ref_ids: set[int] | None = None
        self.in_doubt: set[int] = set()     # client ids sent without an answer: maybe on the venue
        self.unsure = False                 # a repair failed midway: the next turn reconciles first
        self.vanished: dict[str, list] = {}     # order id -> [signed qty gone from the book unlisted, when (ms)]
        self.settled: set[str] = set()      # orders a completed close already covered: fills change no holding
        self.foreign: set[int] = set()      # client ids of an abandoned layout (a failed range change)
        # Of those, the ones whose orders are known gone: what each filled that no listed fill shows
        # yet. Once the history lists it, no fill can come under the id any more and it is free again
        # (2,048 ids per level and role: kept forever, they would run out under adjust_range).
        self.foreign_left: dict[int, float] = {}
        # Our orders gone from the book (filled, or cancelled by us) with fills not listed yet:
        # order id -> [its client id, the index of the cell it left, the quantity not listed yet].
        # Its fills book on that cell (a kept order's client id names another level), and a layout
        # change makes the id foreign (`abandon`).
        self.gone_orders: dict[str, list] = {}
        self.touched: set[int] | None = None    # cells changed since the grid last looked (None: any)

    # ---- what changed (the strategy visits only these cells; see PerpGridStrategy._ensure_all) --
    def touch(self, cell: Cell) -> None:
        """This cell's holding, orders or block changed: the grid must look at it again."""
        if self.touched is not None:
            self.touched.add(cell.index)

    def touch_all(self) -> None:
        """Many cells may have changed (a reconcile, a cancel-all, a new layout): look at all of them."""
        self.touched = None

    def take_touched(self) -> set[int] | None:
        """The cells changed since the last call (None: any of them), and start counting afresh."""
        touched, self.touched = self.touched, set()
        return touched

    # ---- the grid's own position -------------------------------------------------------------
    def owned(self) -> float:
        """The grid's own signed position: what its cells hold plus the inventory it carries.
        (Cells holding nothing add exact zeros, so they are left out of the sum: same result.)"""
        return round(sum(c.held if c.side == "long" else -c.held for c in self.cells if c.held) + self.carried, 10)

    def unrealized(self, price: float) -> float:
        """Unrealized PnL of the grid's own position at its own average entry: what the exchange
        would show if the grid traded alone on the account (never a manual position's PnL)."""
        owned = self.owned()
        return owned * (price - self.grid_entry) if abs(owned) > EPS else 0.0

    def side_price(self, cell: Cell, role: int) -> tuple[str, float]:
        """Side and limit price of a cell's opening or closing order."""
        lo, hi = self.levels[cell.index], self.levels[cell.index + 1]
        if cell.side == "long":
            return ("buy", lo) if role == client_ids.ROLE_OPEN else ("sell", hi)
        return ("sell", hi) if role == client_ids.ROLE_OPEN else ("buy", lo)

    def open_price(self, cell: Cell) -> float:
        """What the cell's holding cost: its opening level, or the price it was adopted at."""
        return cell.cost if cell.cost is not None else self.side_price(cell, client_ids.ROLE_OPEN)[1]

    def emptied(self, cell: Cell) -> None:
        """A cell whose holding is gone opens at its own level again, on its grid's side."""
        self.touch(cell)
        cell.held, cell.open_fees = 0.0, 0.0
        cell.unbooked.clear()
        if cell.cost is not None and self.grid_type in ("long", "short"):
            cell.side = self.grid_type
        cell.cost = None

    def clear_holdings(self) -> None:
        """The grid's position is closed (the exchange confirmed it): nothing is held any more, and
        fills of orders that had left the book unlisted were part of what the close covered."""
        self.touch_all()
        for cell in self.cells:
            self.emptied(cell)
        self.carried, self.grid_entry = 0.0, 0.0
        self.settled.update(self.vanished)
        for order_id in self.vanished:
            self.gone_orders.pop(order_id, None)
        self.vanished.clear()

    def refs_changed(self) -> None:
        """An order ref of a cell was set or dropped, or the cells replaced: the sums over the refs
        (`resting`, `taken`) are taken again when next asked."""
        self._resting = self._ref_ids = None

    def resting(self, side: str) -> float:
        """Quantity our resting orders of one side still want to trade."""
        if self._resting is None:          # summed in open_orders()'s order, without building its rows
            resting = self._resting = {"buy": 0.0, "sell": 0.0}
            for cell in self.cells:
                opens, closes = ("buy", "sell") if cell.side == "long" else ("sell", "buy")     # as side_price
                if cell.open_order is not None:
                    resting[opens] += cell.open_order.remaining
                if cell.close_order is not None:
                    resting[closes] += cell.close_order.remaining
        return self._resting[side]

    # ---- fills -------------------------------------------------------------------------------
    def sync_fills(self) -> list[Fill]:
        """Book every fill of ours not booked yet; returns those booked now."""
        fills = self.exchange.fetch_fills(self.symbol, max(0, self.last_fill_ts - FILL_LOOKBACK_MS))
        booked = []
        owned: float | None = None      # the grid's position between two fills (nothing else moves it here)
        for fill in fills:
            if self.store is None and fill.trade_id in self._seen:
                continue                # booked already (the look-back window lists it again): not decoded again
            if not client_ids.belongs_to(fill.client_id, self.instance_id) or self._before_first_start(fill) \
                    or not self._is_new(fill):
                continue
            owned = self._book(fill, self.owned() if owned is None else owned)
            booked.append(fill)
        return booked

    def _before_first_start(self, fill: Fill) -> bool:
        """A fill older than this grid's first start (an earlier life of the instance id), unless
        it is of an order this grid placed (a venue clock behind ours must not lose a fill)."""
        if fill.timestamp >= self.fills_from_ms:
            return False
        return self.store is None or not self.store.has_order(fill.order_id)

    def _is_new(self, fill: Fill) -> bool:
        cid = client_ids.decode(fill.client_id)
        if self.store is not None:
            return self.store.record_fill(fill, cid.level, cid.role)
        if fill.trade_id in self._seen:
            return False
        self._seen.add(fill.trade_id)
        return True

    def _book(self, fill: Fill, owned_before: float) -> float:
        """Book one fill on its cell; `owned_before` is owned() now. Returns owned() after it."""
        cid = client_ids.decode(fill.client_id)
        self.last_fill_ts = max(self.last_fill_ts, fill.timestamp)
        signed = fill.qty if fill.side == "buy" else -fill.qty
        t = self.totals
        t.fees += fill.fee
        t.volume += fill.price * fill.qty
        t.fill_count += 1
        profit = None
        cell = self.cell_of(fill.order_id, cid.level)
        if fill.order_id in self.vanished:
            qty, since = self.vanished.pop(fill.order_id)
            if abs(qty - signed) > EPS:
                self.vanished[fill.order_id] = [round(qty - signed, 10), since]
        if cid.level == MARKET_LEVEL or fill.order_id in self.settled:
            pass                        # a close-and-stop's, or covered by one: the exchange position said so
        elif cell is None or fill.client_id in self.foreign or fill.side != self.side_price(cell, cid.role)[0]:
            # no cell of this layout traded it, or the cell's side changed since (a range change
            # handed it inventory of the other side): never booked with the wrong sign
            self.carried = round(self.carried + signed, 10)
        elif cid.role == client_ids.ROLE_OPEN:
            self.touch(cell)
            cell.held = round(cell.held + fill.qty, 10)
            cell.open_fees += fill.fee
            self._fill_ref(cell, "open_order", fill)
        else:
            self.touch(cell)
            if fill.order_id in cell.unbooked:      # a gone close's fill, listed after it left the book
                left = round(cell.unbooked.pop(fill.order_id) - fill.qty, 10)
                if left > EPS:
                    cell.unbooked[fill.order_id] = left
            closing = min(fill.qty, cell.held)
            fee_share = cell.open_fees * closing / cell.held if cell.held > EPS else 0.0
            profit = (fill.price - self.open_price(cell)) * closing * cell.direction - fill.fee - fee_share
            cell.open_fees -= fee_share
            cell.held = round(cell.held - closing, 10)
            if cell.held <= EPS:
                self.emptied(cell)
                t.cycles += 1
            t.grid_profit += profit
            self.carried = round(self.carried + signed + closing * cell.direction, 10)
            self._fill_ref(cell, "close_order", fill)
        self._listed(fill)
        self._gone_listed(fill)
        owned_after = self.owned()
        self.grid_entry = average_entry(owned_before, self.grid_entry, owned_after - owned_before, fill.price)
        if self.on_fill is not None:
            self.on_fill({"trade_id": fill.trade_id, "side": fill.side, "price": fill.price, "qty": fill.qty,
                          "fee": fill.fee, "timestamp": fill.timestamp, "level": cid.level, "profit": profit})
        return owned_after

    def cell_of(self, order_id: str, level: int) -> Cell | None:
        """The cell that holds this order (resting, or a cancelled close whose fill is unlisted),
        or the one it left the book from (`gone_orders`), else the one its client id names. The
        client id is the last resort because a live change (strategies/reconfigure.py) moves kept
        orders to new cell indexes under their old client ids."""
        named = self.cells[level] if level < len(self.cells) else None
        for cell in ([named] if named is not None else []) + self.cells:   # the usual case first
            if order_id in cell.unbooked or any(ref is not None and ref.id == order_id
                                                for ref in (cell.open_order, cell.close_order)):
                return cell
        gone = self.gone_orders.get(order_id)
        if gone is not None and gone[1] < len(self.cells):    # it left the book from this cell
            return self.cells[gone[1]]
        return named

    def _fill_ref(self, cell: Cell, slot: str, fill: Fill) -> None:
        ref = getattr(cell, slot)
        if ref is not None and ref.id == fill.order_id:
            ref.filled = round(ref.filled + fill.qty, 10)
            self.refs_changed()         # what rests changed: max_position must not count it twice
            done = ref.to_book <= EPS
            if done:
                setattr(cell, slot, None)
            if self.store is not None:
                self.store.set_order_status(ref.id, "filled" if done else "open", ref.traded)

    # ---- placing -----------------------------------------------------------------------------
    def taken(self, client_id: int) -> bool:
        """A client id a new order must not take: an abandoned layout's (`foreign`: its fills are
        carried), one in doubt (it may rest on the venue), a gone order's whose fills are not all
        listed (once a layout change makes its id foreign, two orders under it could not be told
        apart), or a resting order's (a live change keeps orders under their old level's ids, so
        another cell's order may carry this level's)."""
        if client_id in self.foreign or client_id in self.in_doubt:
            return True
        if any(gone[0] == client_id for gone in self.gone_orders.values()):
            return True
        return client_id in self.ref_client_ids()

    def ref_client_ids(self) -> set[int]:
        """The client ids of the cells' orders (summed once after the refs change: `refs_changed`)."""
        if self._ref_ids is None:
            self._ref_ids = {ref.client_id for cell in self.cells for ref in (cell.open_order, cell.close_order)
                             if ref is not None}
        return self._ref_ids

    def submit(self, planned: list[Planned], refused: Refusal) -> bool:
        """Send the batch and book each result; True when every order was placed.

        An exception out of the batch leaves every request of it in doubt (some may have been
        placed), and so does a request the answer leaves out. A refusal of one request gets the
        grid's reaction (`refused`); one it does not handle (rate limit, a venue's own timeout)
        is also in doubt and raised to the loop once the others are booked.
        """
        requests = [req for _, _, req in planned]
        self.note_sending([req.client_id for req in requests if req.client_id is not None])
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
            elif not refused(cell, role, req, result):
                unhandled.append(req)
                first_error = first_error or result
        self._doubt(unhandled)
        if first_error is not None:
            raise first_error
        if len(results) < len(requests):
            raise ExchangeUnavailable(f"the exchange answered {len(results)} of {len(requests)} orders")
        return all(isinstance(r, Order) for r in results)

    def note_sending(self, ids: list[int], **context: Any) -> None:
        """Journal orders about to be sent (`Database.note_sending`): a kill before this turn
        commits must not lose them. Not where the venue keeps its records in the same database
        (`Exchange.commits_with`): the kill rolls them back with the books."""
        if self.store is not None and not self.exchange.commits_with(self.store):
            self.store.note_sending(ids, **context)

    def _doubt(self, requests: list[OrderRequest]) -> None:
        """These requests may have reached the venue unheard: reconcile before placing again."""
        self.in_doubt.update(req.client_id for req in requests if req.client_id is not None)

    def _placed(self, cell: Cell, role: int, request: OrderRequest, order: Order) -> None:
        ref = OrderRef(order.id, request.client_id, request.price or order.price, request.qty,
                       executed=order.filled_qty)
        setattr(cell, "open_order" if role == client_ids.ROLE_OPEN else "close_order", ref)
        self.touch(cell)
        cell.rejections = 0
        self.refs_changed()
        if self.store is not None:
            self.store.upsert_order(order, cell.index, role)

    # ---- cancelling --------------------------------------------------------------------------
    def cancel_close(self, cell: Cell) -> bool:
        """Cancel a closing order whose size no longer fits; False if it was already gone.

        The replacement is sized from the cancel's answer, never from the books alone: what the
        order filled up to the cancel and the fill history does not list yet is already closed
        (`Cell.unbooked`, until its fill is booked), so it is not closed a second time.
        """
        return self.cancel_ref(cell, "close_order") is not False

    def cancel_ref(self, cell: Cell, slot: str) -> float | None | bool:
        """Cancel a cell's order and drop its ref. False if it was already gone (the ref stays:
        its fill books on this cell); else what it filled up to the cancel that no booked fill
        shows yet (the history lists it later), None when the venue's answer has no order."""
        ref = getattr(cell, slot)
        try:
            answer = self.exchange.cancel_order(self.symbol, order_id=ref.id)
        except OrderNotFound:
            return False
        if self.store is not None:
            self.store.set_order_status(ref.id, "canceled")
        if not isinstance(answer, Order):
            self._gone(cell, slot, 0.0)
            return None
        unlisted = max(0.0, round(answer.filled_qty - ref.filled, 10))
        self._gone(cell, slot, unlisted)    # a piece not listed yet is waited for by a close (`vanished`)
        return unlisted

    def cancel(self, order_id: str) -> bool:
        """Cancel one order; False if it was already gone (filled or cancelled)."""
        try:
            self.exchange.cancel_order(self.symbol, order_id=order_id)
        except OrderNotFound:
            return False
        self.refs_changed()
        if self.store is not None:
            self.store.set_order_status(order_id, "canceled")
        return True

    def cancel_all(self) -> int:
        """Cancel every resting order of this instance; returns how many.

        Only ours, by client id: the trader may have manual orders on the same account and
        symbol (a venue's cancel-all would take them too). Every order is attempted (concurrently
        where the venue allows); a cancelled one leaves its cell, so after failures the cells name
        exactly the orders that may remain (and the first failure is raised). An order of ours
        that left the book without our cancel is remembered as gone (`_gone`), and so is what a
        cancelled one had filled beyond its booked fills (its answer says so; the history lists
        it later): a close counts it and a stopping bot waits for it (`unlisted`).
        """
        self.touch_all()
        mine = sorted(o.id for o in self.our_open_orders())
        results = self.exchange.cancel_orders(self.symbol, mine)
        failed = {oid: r for oid, r in zip(mine, results) if isinstance(r, ExchangeError) and not isinstance(r, OrderNotFound)}
        cancelled = {oid: r for oid, r in zip(mine, results) if not isinstance(r, ExchangeError)}
        cancelled_or_gone = set(cancelled)     # as the store records them (a gone one's fills still book)
        for cell in self.cells:
            for slot in ("open_order", "close_order"):
                ref = getattr(cell, slot)
                if ref is None or ref.id in failed:
                    continue                # a failed cancel keeps its cell: it may still rest
                if ref.id in cancelled:
                    answer = cancelled[ref.id]
                    unlisted = round(answer.filled_qty - ref.filled, 10) if isinstance(answer, Order) else 0.0
                    if unlisted > EPS:              # as cancel_close: not closed a second time
                        self._gone(cell, slot, unlisted)
                    else:
                        setattr(cell, slot, None)
                else:
                    cancelled_or_gone.add(ref.id)
                    self._gone(cell, slot)  # filled (the fills book it) or cancelled elsewhere
        if self.store is not None:
            for order_id in cancelled_or_gone:
                self.store.set_order_status(order_id, "canceled")
        self.refs_changed()
        if failed:
            raise next(iter(failed.values()))
        return len(cancelled)

    def our_open_orders(self) -> list[Order]:
        """The exchange's open orders of this instance (by client id): never the trader's own."""
        return [o for o in self.exchange.fetch_open_orders(self.symbol)
                if client_ids.belongs_to(o.client_id, self.instance_id)]

    # ---- reconciliation ----------------------------------------------------------------------
    def reconcile(self) -> list[Fill]:
        """Make our view of resting orders equal the exchange's: adopt ours, cancel strays.
        Returns the fills booked on the way."""
        self.touch_all()
        booked = self.sync_fills()
        open_orders = {o.id: o for o in self.our_open_orders()}
        known: set[str] = set()
        for cell in self.cells:
            for slot in ("open_order", "close_order"):
                ref = getattr(cell, slot)
                if ref is None:
                    continue
                live = open_orders.get(ref.id)
                if live is None:
                    self._gone(cell, slot)
                else:
                    ref.executed = live.filled_qty      # never `filled`: its unlisted pieces are booked when listed
                    known.add(ref.id)
        for order in open_orders.values():
            if order.id not in known and not self._adopt(order):
                self.cancel(order.id)
                self.event("stray_cancelled", f"cancelled stray order {order.id} at {order.price}")
        self.refs_changed()                 # adopted orders are refs now
        for client_id in sorted(self.in_doubt - self.ref_client_ids()):
            self._gone_unheard(client_id)
        self.in_doubt.clear()               # whatever reached the venue is adopted, booked or remembered gone now
        self.unsure = False
        self.unlisted()                     # forgets orders gone long ago without a fill
        return booked

    def resolve_doubts(self) -> list[Fill] | None:
        """Learn what became of placements without an answer before placing anything again.

        A timed-out order may rest on the venue (or have filled): placing its level again would
        double it. reconcile() books its fills and adopts it by client id; only a level whose
        order is really not there is placed again. If the venue is still unreachable this
        raises, and nothing is placed this turn. The same after a repair that failed midway
        (`unsure`: a cancel's answer may have been lost, so a restored order may be gone). None
        when nothing was in doubt.
        """
        if not self.in_doubt and not self.unsure:
            return None
        doubts = sorted(self.in_doubt)
        booked = self.reconcile()
        adopted = self.ref_client_ids()
        for cid in doubts:
            found = "found resting: adopted" if cid in adopted else "not resting (never arrived, or filled and booked)"
            self.event("order_in_doubt", f"level {client_ids.decode(cid).level}: order {cid} sent without "
                                         f"an answer was {found}")
        return booked

    def _adopt(self, order: Order) -> bool:
        """Attach an open order we placed but did not record (killed in between) to its cell."""
        cid = client_ids.decode(order.client_id)
        if cid.level >= len(self.cells) or order.client_id in self.foreign:    # an abandoned layout's
            return False
        cell = self.cells[cid.level]
        slot = "open_order" if cid.role == client_ids.ROLE_OPEN else "close_order"
        side, price = self.side_price(cell, cid.role)
        if getattr(cell, slot) is not None or order.side != side or abs(order.price - price) > EPS:
            return False
        setattr(cell, slot, OrderRef(order.id, order.client_id, order.price, order.qty,
                                     self._booked_of(order.id, order.filled_qty), order.filled_qty))
        self.touch(cell)
        cell.seq = max(cell.seq, cid.seq)
        return True

    def _booked_of(self, order_id: str, fallback: float) -> float:
        """What the books already booked of an order they had no count for (an adopted order's
        listed fills were booked on the cell its client id names): its fills in the store's
        ledger. Without a store (every live bot has one) there is no ledger: `fallback`, the
        venue's figure, which would count pieces it lists later twice."""
        return self.store.booked_qty(order_id) if self.store is not None else fallback

    # ---- views and persistence ---------------------------------------------------------------
    def open_orders(self) -> list[dict]:
        rows = []
        for cell in self.cells:
            for role, ref in ((client_ids.ROLE_OPEN, cell.open_order), (client_ids.ROLE_CLOSE, cell.close_order)):
                if ref is not None:
                    rows.append({"id": ref.id, "client_id": ref.client_id, "side": self.side_price(cell, role)[0],
                                 "price": ref.price, "qty": ref.qty, "filled_qty": ref.traded, "level": cell.index,
                                 "role": "open" if role == client_ids.ROLE_OPEN else "close"})
        return rows
