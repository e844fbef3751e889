"""Fills the venue lists late, over random paths (hypothesis): the books never book one with the
wrong sign, and a flatten leaves the account flat.

A real venue lists a fill in its history some time after the order traded (Backpack: seconds),
so a turn, a restart or a live range change can come between. Each example drives the real
strategy on a paper venue that lists every fill `lag` steps late (tests/bot/test_money_safety.py
LateFills), with partial fills, live range changes (some cells keep their orders under their old
level's client ids), order-size and max_position changes, restarts on the same database, and
sequences that wrap at once (`seq_room`), so freed client ids are taken again. Each hand-picked
case in tests/bot/test_foreign_ids.py was first found here.
"""
from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from database.db import Database
from exchanges import client_ids
from strategies.perp_grid_strategy import PerpGridStrategy
from strategies.reconfigure import apply_params
from tests.bot.helpers import StepPrices, flatten_leaves_the_account_flat, grid, move
from tests.bot.test_money_safety import LateFills

SYMBOL = "SOL_USDC_PERP"
PARAMS = dict(lower=95.0, upper=105.0, num=11, quantity=0.5, max_position=3.0, boundary_action="adjust_range")
OPS = st.lists(st.tuples(st.sampled_from(["move", "move", "move", "move", "range", "restart", "size", "max_position"]),
                         st.integers(-24, 24)), min_size=5, max_size=40)
RUNS = dict(ops=OPS, lag=st.sampled_from([0, 1, 3]), max_fill=st.sampled_from([None, 0.3]),
            seq_room=st.sampled_from([1, 4]))


def drive(ex: LateFills, db: Database, ops: list, seq_room: int) -> PerpGridStrategy:
    """The strategy after `ops` (it may have stopped, like a bot whose range change failed)."""
    strat = grid(ex, store=db, **PARAMS)
    strat.start()
    for op, offset in ops:
        if op == "move":
            move(ex, ex.source, round(100.0 + offset * 0.25, 2))
            strat.step()
        elif op == "range":                     # a live range change: some cells keep their orders
            lower = round(95.0 + offset * 0.25, 2)
            strat.adjust_grid_range(lower, round(lower + 10.0, 2))
        elif op == "restart":                   # killed and started again on the same books
            strat = grid(ex, store=db, **PARAMS)
            strat.start()
        elif op == "size":                      # same layout: resting opening orders are replaced
            apply_params(strat, replace(strat.params, quantity=0.5 if offset % 2 else 0.7))
        else:                                   # same layout: the farthest openings may be cancelled
            apply_params(strat, replace(strat.params, max_position=1.0 + abs(offset) * 0.25))
        for cell in strat.cells:                # the next ids wrap soon: freed ids are taken again
            cell.seq = max(cell.seq, client_ids.MAX_SEQ + 1 - seq_room)
        if strat.stopped:
            break
    return strat


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(**RUNS)
def test_the_books_own_exactly_what_the_listed_fills_make(ops, lag, max_fill, seq_room):
    """Once the history lists the last moves' fills, the books saw each listed fill once and own
    exactly the position those fills make (an order resting at the last price may fill on while
    the history catches up), every foreign id still waits for a fill, and no two resting orders
    share a client id."""
    with tempfile.TemporaryDirectory() as tmp:
        db = Database(Path(tmp) / "bot.db")
        ex = LateFills(StepPrices(100.0), db=db, balance=100_000.0, max_fill_qty=max_fill, lag=lag)
        strat = drive(ex, db, ops, seq_room)
        for _ in range(lag + 1):
            move(ex, ex.source, ex.source.price)
            strat.step()
        listed = ex.fetch_fills(SYMBOL, 0)
        assert strat.totals.fill_count == len(listed)
        assert strat.owned() == pytest.approx(sum(f.qty if f.side == "buy" else -f.qty for f in listed), abs=1e-9)
        assert set(strat.book.foreign_left) <= strat.book.foreign
        assert not strat.book.foreign - set(strat.book.foreign_left)    # every answer here says what it filled
        mine = [o.client_id for o in ex.fetch_open_orders(SYMBOL)]
        assert len(mine) == len(set(mine))
        db.close()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(**RUNS)
def test_a_flatten_leaves_the_account_flat_whatever_was_not_listed_yet(ops, lag, max_fill, seq_room):
    """The trader's flatten after any such path: the grid stops with nothing resting and the
    account flat (it holds no position of the trader's own here), and says no close was incomplete."""
    with tempfile.TemporaryDirectory() as tmp:
        db = Database(Path(tmp) / "bot.db")
        ex = LateFills(StepPrices(100.0), db=db, balance=100_000.0, max_fill_qty=max_fill, lag=lag)
        strat = drive(ex, db, ops, seq_room)
        if not strat.stopped:
            flatten_leaves_the_account_flat(strat, ex)
        db.close()
