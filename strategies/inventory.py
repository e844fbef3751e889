"""Which side each cell trades, and how a position the cells did not open gets closing orders.

A grid's layout changes at a first start that adopts a position, at a rebuild (new parameters)
and at a live range change (strategies/reconfigure.py). Each time, what the old cells held, the
inventory carried and any adopted position become "lots" (signed qty, cost), and the lots are
spread over the new free cells as holdings with closing orders, so no unit the grid holds is
ever left without one. These functions work on the books (strategies/order_book.py) and the
price alone: the grid's decisions per turn stay in strategies/perp_grid_strategy.py.
"""
from __future__ import annotations

from strategies.book_records import EPS, Cell
from strategies.order_book import OrderBook

Lot = tuple[float, float]       # (signed qty, cost)


def cell_sides(levels: list[float], price: float, grid_type: str) -> list[str]:
    """Side of each cell: the cell's midpoint against the price decides in a neutral grid."""
    if grid_type in ("long", "short"):
        return [grid_type] * (len(levels) - 1)
    return ["long" if (levels[i] + levels[i + 1]) / 2 < price else "short" for i in range(len(levels) - 1)]


def fit(chunks: list[Lot], slots: int) -> list[Lot]:
    """(qty, cost) chunks for at most `slots` cells: the last one takes all the rest, at their average cost."""
    if len(chunks) <= slots:
        return chunks
    rest = chunks[slots - 1:]
    qty = sum(q for q, _ in rest)
    return chunks[:slots - 1] + [(qty, sum(q * c for q, c in rest) / qty)]


def take_lots(book: OrderBook, lost: list[Cell], price: float, opened: list[Lot] = ()) -> list[Lot]:
    """(signed qty, cost) of what the `lost` cells hold and of the inventory carried, which is
    handed over: the new layout gives them closing orders (`adopt_inventory`), so no unit the
    grid holds is left without one. Called while the old levels still price them.

    A cell's closing orders that left the book filled, their fills not listed yet
    (`Cell.unbooked`), already sold that part: it is not handed over (a new closing order would
    sell it twice) but carried, and their fills take it away when listed (the layout change makes
    their ids foreign: `OrderBook.abandon`). The other way round for `opened`: what the lost
    cells' opening orders bought or sold with their fills unlisted (`OrderBook.abandon` returns
    it). The grid holds it on the venue, so it is handed over like a holding, and carried with the
    opposite sign until those fills, foreign by then, are listed and offset it."""
    lots: list[Lot] = []
    sold = 0.0
    for c in lost:
        if c.held <= EPS:
            continue
        pending = min(c.held, sum(c.unbooked.values()))
        if c.held - pending > EPS:
            lots.append((round(c.held - pending, 10) * c.direction, book.open_price(c)))
        sold += pending * c.direction
    if abs(book.carried) > EPS:
        lots.append((book.carried, book.grid_entry or price))
    lots.extend(opened)
    book.carried = round(sold - sum(q for q, _ in opened), 10)
    return lots


def adopt_inventory(book: OrderBook, quantity: float, price: float, lots: list[Lot]) -> None:
    """Give positions the new cells did not open (signed qty, cost) closing orders.

    Each lot is cut in `quantity` chunks over the free cells (holding nothing and resting no
    order: a cell a live change kept keeps its orders) whose closing price lies beyond
    the price on the side that closes it (for a long: the cells whose top is above the price,
    nearest first, the cheapest chunk nearest), each made a cell of that side holding the
    chunk at its cost, so it closes one level on as if the grid had opened it there. The
    last such cell takes whatever is left; with none (the price beyond the range) it is
    carried.
    """
    book.touch_all()
    levels = book.levels
    for direction in (1, -1):
        chunks: list[Lot] = []
        for qty, cost in sorted(((abs(q), c) for q, c in lots if q * direction > EPS), key=lambda l: l[1] * direction):
            while qty > EPS:
                chunks.append((min(qty, quantity), cost))
                qty = round(qty - quantity, 10)
        free = [c for c in book.cells if c.held <= EPS and c.open_order is None and c.close_order is None]
        if direction > 0:
            cells = [c for c in free if levels[c.index + 1] > price]
        else:
            cells = [c for c in free if levels[c.index] < price][::-1]
        if not cells:
            book.carried = round(book.carried + direction * sum(q for q, _ in chunks), 10)
            continue
        for cell, (qty, cost) in zip(cells, fit(chunks, len(cells))):
            cell.side = "long" if direction > 0 else "short"
            cell.held, cell.cost, cell.open_fees = round(qty, 10), cost, 0.0
