"""What the books keep beside their orders so a turn need not look through all of them must
always equal looking through all of them (hypothesis):
- the paper exchange's best bid and ask, and which client ids rest (kept as orders rest and leave:
  placements, partial and whole fills, taker fills, cancels, a restart from its database);
- the grid's `OrderBook.taken(client_id)` (collected once after the cells' order refs change:
  placements, fills, cancels, range changes that keep some orders and drop others).
A path that changes what rests without telling them would show here as a difference.
"""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from database.db import Database
from exchanges.base import InvalidOrder, OrderRequest
from exchanges.paper_exchange import PaperExchange
from strategies.grid_params import GridParams
from strategies.perp_grid_strategy import PerpGridStrategy
from tests.bot.helpers import cancel_nth, move, paper

SYM = "SOL_USDC_PERP"
PAPER_OPS = st.lists(st.tuples(st.sampled_from(["buy", "sell", "cancel", "move", "reopen"]), st.integers(0, 40),
                               st.integers(-12, 12), st.booleans()), min_size=1, max_size=120)


def scanned(ex: PaperExchange) -> tuple[float, float, set[int]]:
    """The best bid and ask and the resting client ids, by looking at every open order."""
    orders = ex.fetch_open_orders(SYM)
    bids = [o.price for o in orders if o.side == "buy"]
    asks = [o.price for o in orders if o.side == "sell"]
    return (max(bids, default=float("-inf")), min(asks, default=float("inf")),
            {o.client_id for o in orders if o.client_id is not None})


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(PAPER_OPS, st.sampled_from([None, 0.3]))
def test_the_paper_books_best_prices_and_client_ids_are_those_of_its_open_orders(tmp_path, ops, max_fill):
    db = Database(tmp_path / "paper.db")
    ex, src = paper(100.0, db=db, balance=100_000.0, max_fill_qty=max_fill)
    try:
        for op, n, offset, post_only in ops:
            if op == "move":
                move(ex, src, round(100.0 + offset * 0.5, 2))
            elif op == "cancel":
                cancel_nth(ex, SYM, n)
            elif op == "reopen":                # a restart reads the book back from its database
                ex = PaperExchange(src, db=db, balance=100_000.0, max_fill_qty=max_fill)
            else:
                price, cid = round(100.0 + offset * 0.5, 2), n % 12     # client ids collide on purpose
                resting = cid in scanned(ex)[2]
                try:
                    ex.place_order(OrderRequest(SYM, op, 0.5, price, post_only=post_only, client_id=cid))
                    placed = True
                except InvalidOrder as exc:     # a postOnly cross, or a client id in use
                    placed = False
                    assert resting or "postOnly" in str(exc), exc
                assert not (placed and resting), f"client id {cid} was taken by a resting order"
            bid, ask, cids = scanned(ex)
            assert ex.best_bid_ask() == (bid, ask)
            assert ex._client_ids == cids
    finally:
        db.close()


GRID_OPS = st.lists(st.tuples(st.sampled_from(["move", "move", "move", "range"]), st.integers(-30, 30)),
                    min_size=5, max_size=60)


def scanned_taken(strategy: PerpGridStrategy, cid: int) -> bool:
    book = strategy.book
    return (cid in book.foreign or cid in book.in_doubt or any(g[0] == cid for g in book.gone_orders.values())
            or any(ref is not None and ref.client_id == cid for c in book.cells for ref in (c.open_order, c.close_order)))


@settings(max_examples=40, deadline=None)
@given(GRID_OPS, st.sampled_from(["neutral", "long", "short"]), st.sampled_from([None, 0.3]))
def test_taken_is_what_a_scan_of_every_cell_would_say_after_any_turn_or_range_change(ops, grid_type, max_fill):
    ex, src = paper(100.0, balance=100_000.0, max_fill_qty=max_fill)
    strategy = PerpGridStrategy(ex, GridParams(SYM, 95.0, 105.0, 11, 0.5, grid_type=grid_type, max_position=3.0),
                                "props", log=lambda _m: None)
    strategy.start()
    for op, offset in ops:
        if op == "move":
            move(ex, src, round(100.0 + offset * 0.25, 2))
            strategy.step()
        else:                                   # a live range change: kept orders keep old levels' ids
            lower = round(95.0 + offset * 0.25, 2)
            strategy.adjust_grid_range(lower, round(lower + 10.0, 2))
        candidates = {f.client_id for f in ex.fetch_fills(SYM, 0)} | {o.client_id for o in ex.fetch_open_orders(SYM)}
        candidates |= strategy.book.foreign
        for cid in candidates:
            assert strategy.book.taken(cid) == scanned_taken(strategy, cid), cid


@pytest.mark.parametrize("kept", [True, False])
def test_a_range_change_that_keeps_an_order_still_counts_its_client_id_as_taken(kept):
    """The hand-picked case behind the property: after a range change, the orders it kept carry
    their old level's client ids on new cells, and `taken` knows them at once."""
    ex, src = paper(100.0, balance=100_000.0)
    strategy = PerpGridStrategy(ex, GridParams(SYM, 95.0, 105.0, 11, 0.5), "props", log=lambda _m: None)
    strategy.start()
    strategy.adjust_grid_range(96.0 if kept else 150.0, 106.0 if kept else 160.0)
    for order in ex.fetch_open_orders(SYM):
        assert strategy.book.taken(order.client_id)
