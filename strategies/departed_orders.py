"""Orders of ours that left the exchange's book while some of their fills may still be listed.

A venue lists a fill some time after the order traded, and an order can leave the book in ways the
books did not see happen: it filled, the trader cancelled it on the venue, or a cancel or a
placement of ours went through without its answer. Until the fill history accounts for such an
order, the books must not take its fills for the trader's (a close would leave them on the
account), nor book them on a cell of the other side, nor give its client id to a new order.
This part of `OrderBook` (strategies/order_book.py, which mixes it in) remembers them:

- `vanished`: order id -> [signed quantity gone unlisted, when]; a close waits for these and
  counts them, and a stop waits for their fills (`unlisted`);
- `gone_orders`: order id -> [client id, cell index, quantity not listed, opened]; their fills
  book on the cell they left, and a layout change makes the id foreign (`abandon`). `opened` is
  [side, price] for an opening order whose execution the venue confirmed (None otherwise): a
  layout change that drops its cell hands what it opened to the new cells (`abandon`);
- `foreign` / `foreign_left`: client ids whose fills no cell of this layout may take; one known
  gone is freed once its fills are listed.

What a gone order executed is read from the venue's record of it (`Exchange.fetch_order`,
`fetch_order_by_client_id`) where the venue can say, never assumed from its disappearance alone.
"""
from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from exchanges import client_ids
from exchanges.base import Exchange, ExchangeError, Fill, Order, OrderNotFound
from strategies.book_records import EPS, VANISHED_MS

if TYPE_CHECKING:
    from strategies.book_records import Cell, OrderRef


class DepartedOrders:
    """The bookkeeping of orders gone from the book. OrderBook sets these attributes up and mixes
    this in; it uses the books' cells, store and exchange, and their `touch`, `touch_all`,
    `side_price` and `refs_changed`."""

    exchange: Exchange
    symbol: str
    store: Any
    cells: list[Cell]
    vanished: dict[str, list]
    gone_orders: dict[str, list]
    foreign: set[int]
    foreign_left: dict[int, float]

    def _listed(self, fill: Fill) -> None:
        """A foreign id's order whose every fill is now booked frees the id (`foreign_left`)."""
        left = self.foreign_left.get(fill.client_id)
        if left is None:
            return
        left = round(left - fill.qty, 10)
        if left > EPS:
            self.foreign_left[fill.client_id] = left
        else:
            del self.foreign_left[fill.client_id]
            self.foreign.discard(fill.client_id)

    def make_foreign(self, client_id: int, unlisted: float | None) -> None:
        """No cell of the coming layout may take this order's fills: they are carried. `unlisted`:
        what the order, known gone, filled that no booked fill shows yet (None: unknown, or it may
        still rest); the id stays foreign until fills listed later account for it, for good when
        unknown. A gone order with nothing unlisted can trade no more: its id stays free."""
        if unlisted is None:
            self.foreign.add(client_id)
            self.foreign_left.pop(client_id, None)
        elif unlisted > EPS:
            self.foreign.add(client_id)
            self.foreign_left[client_id] = unlisted

    def _gone(self, cell: Cell, slot: str, unlisted: float | None = None) -> None:
        """An order of ours left the exchange's book: filled (its fills maybe not listed yet) or
        cancelled elsewhere (or by a cancel of ours whose answer was lost), or cancelled by us after
        filling `unlisted` that no listed fill shows yet. What it traded unlisted (None: the venue's
        record says, `_unlisted_of`) is remembered (`vanished`) until its fills account for it: a
        close must not take it for the trader's, and a stop waits for it."""
        self.touch(cell)
        ref = getattr(cell, slot)
        qty, sure = self._unlisted_of(ref) if unlisted is None else (unlisted, True)
        if qty > EPS:
            opening = slot == "open_order"
            side = self.side_price(cell, client_ids.ROLE_OPEN if opening else client_ids.ROLE_CLOSE)[0]
            self._remember_gone(ref.id, ref.client_id, side, qty, cell.index, [side, ref.price] if opening and sure else None)
        setattr(cell, slot, None)
        self.refs_changed()

    def _unlisted_of(self, ref: OrderRef) -> tuple[float, bool]:
        """What an order gone from the book without our cancel's answer traded that no booked fill
        shows, and whether the venue said so: by the venue's record of it (executedQuantity), so an
        order cancelled elsewhere, or by a cancel whose answer was lost, is never taken for filled
        (a close would then trade the quantity it never did, and leave it on the account). Where
        the venue cannot say (no record yet, an error), all it had left, not sure: taken as filled
        until its fills are listed or VANISHED_MS passes, but never handed to a new layout."""
        try:
            order = self.exchange.fetch_order(self.symbol, ref.id)
        except ExchangeError:
            return ref.to_book, False
        beyond = _executed_beyond(order, ref.filled)
        if beyond is None:          # still open: one of the two lists lags
            return ref.to_book, False
        return beyond, True

    def confirm_vanished(self) -> None:
        """Before a close counts the orders gone from the book unlisted (`vanished`) as filled, the
        venue's record of each is asked again: a lookup that failed when the order left the book
        fell back to "filled", and a close must not trade a quantity the order never did. What the
        record shows executed beyond the fills booked of it (the store's ledger) is what stays. A
        venue error is raised (the close's turn ends and asks again next turn); an order the venue
        has no record of stays counted as filled."""
        if self.store is None:
            return
        for order_id, (signed, since) in list(self.vanished.items()):
            try:
                order = self.exchange.fetch_order(self.symbol, order_id)
            except OrderNotFound:
                continue
            left = _executed_beyond(order, self.store.booked_qty(order_id))
            if left is None:
                continue
            if left <= EPS:
                del self.vanished[order_id]
                self._forget_gone(order_id)
            else:
                self.vanished[order_id] = [left if signed > 0 else -left, since]
                gone = self.gone_orders.get(order_id)
                if gone is not None:
                    gone[2] = left
                    cell = self._gone_cell(gone)
                    if cell is not None and order_id in cell.unbooked:
                        cell.unbooked[order_id] = left

    def _remember_gone(self, order_id: str, client_id: int | None, side: str, unlisted: float,
                       cell_index: int | None, opened: list | None = None) -> None:
        """An order of ours gone from the book with `unlisted` of it not listed yet: a close waits
        for it (`vanished`), and its fills book on the cell it left (`gone_orders`; None: on none).
        That cell does not send it again meanwhile: a closing order's quantity is left out of what
        the cell still has to close (`Cell.unbooked`), and an opening order's cell opens nothing
        until its fills are listed (`opening_unlisted`). Sent again, it would trade the same
        quantity twice once the price came back. `opened`: [side, price] of an opening order whose
        execution the venue confirmed (see `abandon`)."""
        self.vanished[order_id] = [unlisted if side == "buy" else -unlisted, int(time.time() * 1000)]
        if cell_index is not None:
            self.gone_orders[order_id] = [client_id, cell_index, unlisted, opened]
            cell = self.cells[cell_index]
            if side == self.side_price(cell, client_ids.ROLE_CLOSE)[0]:
                cell.unbooked[order_id] = unlisted

    def _gone_cell(self, gone: list) -> Cell | None:
        return self.cells[gone[1]] if gone[1] < len(self.cells) else None

    def _forget_gone(self, order_id: str) -> None:
        """A gone order is known to trade no more unlisted: its cell may send its order again."""
        gone = self.gone_orders.pop(order_id, None)
        cell = self._gone_cell(gone) if gone is not None else None
        if cell is not None:
            self.touch(cell)
            cell.unbooked.pop(order_id, None)

    def opening_unlisted(self, cell: Cell) -> bool:
        """The cell's opening order left the book having traded what no listed fill shows yet: the
        cell holds it on the venue, not yet in the books, and must not open again."""
        return any(index == cell.index and client_id is not None
                   and client_ids.decode(client_id).role == client_ids.ROLE_OPEN
                   for client_id, index, *_ in self.gone_orders.values())

    def _gone_listed(self, fill: Fill) -> None:
        """A fill of a gone order is listed: it is forgotten once all it had left is."""
        gone = self.gone_orders.get(fill.order_id)
        if gone is not None:
            gone[2] = round(gone[2] - fill.qty, 10)
            if gone[2] <= EPS:
                del self.gone_orders[fill.order_id]

    def abandon(self, cells: list[Cell], moved: dict[int, int] | None = None) -> list[tuple[float, float]]:
        """Cells a layout change drops (all of them, for a rebuild); `moved`: old index -> new
        index of the cells it keeps. An order of a dropped cell still referenced left the book
        without our cancel (it filled): it is gone. A gone order whose fills are not all listed
        (`gone_orders`) books them on the cell it left, so one of a kept cell follows it to its new
        index; one of a dropped cell would be booked on the new layout's cell its client id's
        level names, which may be of the other side: its id is foreign until its fills are listed,
        and they are carried with their true sign.

        Returns (signed qty, price) of what the dropped cells' opening orders opened, by the
        venue's record of each, with its fills still unlisted: the grid holds it on the venue
        already, so the new layout must give it a closing order (`inventory.take_lots`); left to
        the listed fills, it would be carried with none."""
        self.touch_all()
        for cell in cells:
            for slot in ("open_order", "close_order"):
                if getattr(cell, slot) is not None:
                    self._gone(cell, slot)
        opened: list[tuple[float, float]] = []
        for order_id, gone in list(self.gone_orders.items()):
            if moved is not None and gone[1] in moved:
                gone[1] = moved[gone[1]]
                continue
            del self.gone_orders[order_id]
            if gone[0] is not None:
                self.make_foreign(gone[0], gone[2])
                if gone[3] is not None and gone[2] > EPS:     # its fills, carried when listed, offset it
                    side, price = gone[3]
                    opened.append((gone[2] if side == "buy" else -gone[2], price))
        return opened

    def unlisted(self) -> float:
        """Signed quantity of our orders that left the book and whose fills are not listed: recent
        ones only (VANISHED_MS), an older one was cancelled elsewhere, not filled."""
        recent = int(time.time() * 1000) - VANISHED_MS
        for order_id in [k for k, (_, since) in self.vanished.items() if since < recent]:
            del self.vanished[order_id]
            self._forget_gone(order_id)
        return round(sum(qty for qty, _ in self.vanished.values()), 10)

    def _gone_unheard(self, client_id: int) -> None:
        """A placement whose answer was lost no longer rests: it never arrived, was cancelled, or
        filled with its fill not listed yet. The venue's record of it (`fetch_order_by_client_id`)
        says which. One that executed more than the books booked of it is remembered gone like any
        order of ours (`vanished`, and `gone_orders` on the cell that sent it), so a close waits
        for that fill instead of taking the position it made for the trader's. Without a record,
        or without the store's fill ledger to say what was booked of it, nothing is assumed."""
        if self.store is None:
            return
        try:
            order = self.exchange.fetch_order_by_client_id(self.symbol, client_id)
        except ExchangeError:
            return
        unlisted = _executed_beyond(order, self.store.booked_qty(order.id))
        if unlisted is None or unlisted <= EPS or order.id in self.vanished:
            return
        cid = client_ids.decode(client_id)
        sent_by_a_cell = (cid.level < len(self.cells) and client_id not in self.foreign
                          and self.side_price(self.cells[cid.level], cid.role)[0] == order.side)
        opened = [order.side, order.price] if cid.role == client_ids.ROLE_OPEN else None
        self._remember_gone(order.id, client_id, order.side, unlisted, cid.level if sent_by_a_cell else None, opened)


def _executed_beyond(order: Order, booked: float) -> float | None:
    """What the venue's record of an order says it executed beyond `booked` (never below 0), or
    None while the order still rests."""
    return None if order.status == "open" else max(0.0, round(order.filled_qty - booked, 10))
