"""A venue that loses answers, over random paths (hypothesis): once it answers again, the books
name exactly the orders that rest, own exactly what the listed fills make, and a flatten leaves
the account flat.

A real venue's answer can be lost after the request took effect (a read timeout: the order rests,
or the cancel went through), or the request can be refused before it reached the venue (connection
refused). Each example drives the real strategy, as the loop does (a turn that raises an exchange
error is simply over; the next turn goes on), on a paper venue that lists fills late
(tests/bot/test_money_safety.py LateFills) and gives each request a fate drawn by hypothesis:
answered, lost after acting, or refused. Ops are price moves, live range changes, restarts on the
same database (between turns, or killed at the end of a turn before its books commit: a plain
turn, a range change, a size change or a flatten; the venue, on a database of its own, keeps what
it took), order-size changes and the trader's flatten.
"""
from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from database.db import Database
from exchanges.base import ExchangeError, ExchangeUnavailable, OrderRequest
from strategies.grid_state import STATE_KEY
from strategies.perp_grid_strategy import PerpGridStrategy, PositionNotOwned
from strategies.reconfigure import AdjustFailed, apply_params
from tests.bot.helpers import StepPrices, flatten_leaves_the_account_flat, grid, move, resting
from tests.bot.test_money_safety import LateFills

SYMBOL = "SOL_USDC_PERP"
PARAMS = dict(lower=95.0, upper=105.0, num=11, quantity=0.5, max_position=3.0, boundary_action="adjust_range")
ANSWERED, LOST, REFUSED = 0, 1, 2
OPS = st.lists(st.tuples(st.sampled_from(["move", "move", "move", "move", "range", "restart", "kill", "size",
                                          "flatten"]),
                         st.integers(-24, 24)), min_size=5, max_size=30)
RUNS = dict(ops=OPS, fates=st.lists(st.sampled_from([ANSWERED] * 6 + [LOST, REFUSED]), max_size=120),
            lag=st.sampled_from([0, 1, 3]), max_fill=st.sampled_from([None, 0.3]))


class LosesAnswers(LateFills):
    """Each request takes the next fate of `fates` (answered once they run out): a placement or a
    cancel LOST takes effect and then times out; any request REFUSED fails before it reaches."""

    def __init__(self, *args, fates: list[int], **kwargs):
        super().__init__(*args, **kwargs)
        self.fates = list(fates)

    def _fate(self) -> int:
        fate = self.fates.pop(0) if self.fates else ANSWERED
        if fate == REFUSED:
            raise ExchangeUnavailable("connection refused")
        return fate

    def place_order(self, request):
        fate = self._fate()
        order = super().place_order(request)
        if fate == LOST:
            raise ExchangeUnavailable("read timed out")
        return order

    def cancel_order(self, symbol, order_id=None, client_id=None):
        fate = self._fate()
        answer = super().cancel_order(symbol, order_id, client_id)
        if fate == LOST:
            raise ExchangeUnavailable("read timed out")
        return answer

    def fetch_open_orders(self, symbol):
        self._fate()
        return super().fetch_open_orders(symbol)

    def fetch_fills(self, symbol, since_ms):
        self._fate()
        return super().fetch_fills(symbol, since_ms)

    def fetch_order(self, symbol, order_id):
        self._fate()
        return super().fetch_order(symbol, order_id)


def test_an_order_whose_cancel_answer_was_lost_is_not_taken_for_filled(tmp_path):
    """A new order size cancels the resting openings; the first cancel goes through but its answer
    is lost. The next turn finds that order gone from the book with no fill listed. The books used
    to take it for filled (fills are listed late), so the trader's flatten waited for that fill,
    then sold the 0.5 the order never bought, and left the account short 0.5. The venue's record
    of the order (cancelled, nothing executed) says it traded nothing."""
    db = Database(tmp_path / "bot.db")
    ex = LosesAnswers(StepPrices(100.0), db=db, balance=100_000.0, lag=0, fates=[])
    strat = grid(ex, store=db, **PARAMS)
    strat.start()
    ex.fates = [LOST]
    with pytest.raises(AdjustFailed, match="read timed out"):
        apply_params(strat, replace(strat.params, quantity=0.7))
    move(ex, ex.source, 100.0)
    strat.step()
    assert strat.book.unlisted() == 0.0 and strat.book.gone_orders == {}
    strat.flatten("trader's flatten")
    assert strat.stopped and strat.stop_reason == "trader's flatten"
    assert ex.fetch_open_orders(SYMBOL) == [] and ex.pos_qty == 0.0
    db.close()


def test_a_close_asks_again_what_an_order_gone_from_the_book_executed(tmp_path):
    """As above, but the venue also refuses the lookup of that order's record when it is found gone:
    the books fall back to "filled" (unlisted). The flatten then counted it as filled after its
    wait and sold 0.5; it must ask the record again first."""
    db = Database(tmp_path / "bot.db")
    ex = LosesAnswers(StepPrices(100.0), db=db, balance=100_000.0, lag=0, fates=[])
    strat = grid(ex, store=db, **PARAMS)
    strat.start()
    ex.fates = [LOST, ANSWERED, ANSWERED, REFUSED]     # the cancel; the rollback's fills, orders, lookup
    with pytest.raises(AdjustFailed, match="rolled back"):
        apply_params(strat, replace(strat.params, quantity=0.7))
    assert strat.book.unlisted() == 0.5
    strat.flatten("trader's flatten")
    assert strat.stopped and strat.stop_reason == "trader's flatten"
    assert ex.fetch_open_orders(SYMBOL) == [] and ex.pos_qty == 0.0
    db.close()


def test_a_placement_whose_answer_was_lost_and_that_filled_unlisted_is_closed_by_a_flatten(tmp_path):
    """The start's second order (the sell at 101) rests unheard, and fills before the start is
    tried again; the venue lists that fill a step later. The start's reconcile found it no longer
    resting and forgot it, so the trader's flatten took the short 0.5 it made for the trader's own
    and left it on the account. The venue's record of the order under that client id says it filled."""
    db = Database(tmp_path / "bot.db")
    ex = LosesAnswers(StepPrices(100.0), db=db, balance=100_000.0, lag=1, fates=[ANSWERED] * 5 + [LOST])
    strat = grid(ex, store=db, **PARAMS)
    with pytest.raises(ExchangeUnavailable):
        strat.start()               # nearest first: the buy at 99 answered, the sell at 101 sent unheard
    move(ex, ex.source, 101.0)      # it fills; listed a step later
    strat.start()                   # tried again, as the loop does (Bot.start_trading)
    assert ex.pos_qty == -0.5 and strat.book.unlisted() == -0.5
    flatten_leaves_the_account_flat(strat, ex)     # turns at 101 while the close waits for the fill
    db.close()


def test_a_flatten_first_learns_what_became_of_a_placement_whose_answer_was_lost(tmp_path):
    """As above, but the flatten comes before any turn could reconcile: the close fixed its target
    with the unheard sell's fill unknown to it, and stopped with the account short 0.5."""
    db = Database(tmp_path / "bot.db")
    ex = LosesAnswers(StepPrices(100.0), db=db, balance=100_000.0, lag=1, fates=[ANSWERED] * 5 + [LOST])
    strat = grid(ex, store=db, **PARAMS)
    with pytest.raises(ExchangeUnavailable):
        strat.start()
    move(ex, ex.source, 101.0)
    flatten_leaves_the_account_flat(strat, ex)     # turns at 101 while the close waits for the fill
    db.close()


def test_a_change_whose_repair_fails_too_is_reconciled_by_the_next_turn(tmp_path):
    """A size change's first cancel goes through unheard, and the venue is down for the rollback's
    reconcile: the change answers "in doubt", and the books hold the old grid's snapshot, with the
    order the venue did cancel. The next turn must learn what rests before anything else (the
    answer promises it), not wait for the loop's periodic reconcile with a level left empty."""
    db = Database(tmp_path / "bot.db")
    ex = LosesAnswers(StepPrices(100.0), db=db, balance=100_000.0, lag=0, fates=[])
    strat = grid(ex, store=db, **PARAMS)
    strat.start()
    ex.fates = [LOST, REFUSED]
    with pytest.raises(AdjustFailed, match="in doubt"):
        apply_params(strat, replace(strat.params, quantity=0.7))
    move(ex, ex.source, 100.0)
    strat.step()
    assert sorted(r["id"] for r in strat.open_orders()) == sorted(o.id for o in ex.fetch_open_orders(SYMBOL))
    assert len(ex.fetch_open_orders(SYMBOL)) == 10         # the cancelled level placed again
    db.close()


def test_fills_a_failed_start_booked_stay_booked_after_the_next_restart(tmp_path):
    """A restart's reconcile books a fill (into the store's fill ledger), then the venue fails on
    the open orders: the start is over. Its books were not saved, so the next start found the
    fill in the ledger as booked and never booked it on its cell: the grid owned 0 of the 0.5 the
    account held, and a flatten would leave it."""
    db = Database(tmp_path / "bot.db")
    ex = LosesAnswers(StepPrices(100.0), db=db, balance=100_000.0, lag=0, fates=[])
    grid(ex, store=db, **PARAMS).start()
    move(ex, ex.source, 99.0)               # the buy at 99 fills while the bot is down
    ex.fates = [ANSWERED, REFUSED]          # the restart's reconcile: the fills read, the open orders not
    with pytest.raises(ExchangeUnavailable):
        grid(ex, store=db, **PARAMS).start()
    again = grid(ex, store=db, **PARAMS)
    again.start()
    assert ex.pos_qty == 0.5 and again.owned() == 0.5 and again.totals.fill_count == 1
    db.close()


def test_a_close_killed_after_its_market_order_left_does_not_send_it_again():
    """The sell at 101 fills (listed 3 steps late) and the trader flattens: the close waits for that
    fill, then fixes its target and buys 0.5 at market, and the bot is killed before the turn
    commits. The new process found no trace of that order, took the sell's fill for the grid's
    and the flat account for a trader's long beside it, and bought 0.5 more: long 0.5 after a
    flatten. The journal names the market order (`in_doubt`) with the close's target."""
    with driven([("move", 4), ("flatten", 0), ("move", 0), ("move", 0), ("kill", 0)], [], 3, None) as (ex, strat):
        assert strat.stopped and strat.stop_reason == "trader's flatten"
        assert ex.fetch_open_orders(SYMBOL) == [] and ex.pos_qty == 0.0


def test_a_flatten_killed_after_its_market_order_left_is_finished_by_the_next_process(tmp_path):
    """The flatten's own turn sends the market order and is killed before it commits: nothing in
    the database says a close began. The new process took the cells' short 0.5 for still held
    while the account was flat (the books no longer agreed with the exchange) and went on trading.
    The journal carries the close on: the next start finishes it and stops."""
    db = Database(tmp_path / "bot.db")
    ex = LosesAnswers(StepPrices(100.0), db=Database(tmp_path / "venue.db"), balance=100_000.0, lag=0, fates=[])
    strat = grid(ex, store=db, **PARAMS)
    strat.start()
    move(ex, ex.source, 101.0)                  # the sell at 101 fills: short 0.5
    strat.step()
    killed_in(db, lambda: strat.flatten("trader's flatten"))
    assert ex.pos_qty == 0.0                    # the market buy went through
    again = grid(ex, store=db, **PARAMS)
    again.start()
    assert again.stopped and again.stop_reason == "trader's flatten"
    assert ex.fetch_open_orders(SYMBOL) == [] and ex.pos_qty == 0.0 and again.owned() == 0.0
    db.close()


def test_a_first_start_killed_after_sending_adopts_the_position_its_orders_made(tmp_path):
    """A first start sends its orders and is killed before it saves anything; the buy at 99 fills.
    The next start is a first start again: it began from the present, cancelled that life's
    orders, and refused the 0.5 long as a trader's position (exit 2: the bot did not come back).
    The journal names those orders and the venue's records say they made all of it: it is the
    grid's own, adopted as inventory with its closing order."""
    db = Database(tmp_path / "bot.db")
    ex = LosesAnswers(StepPrices(100.0), db=Database(tmp_path / "venue.db"), balance=100_000.0, lag=0, fates=[])
    killed_in(db, grid(ex, store=db, **PARAMS).start)
    move(ex, ex.source, 99.0)
    again = grid(ex, store=db, **PARAMS)
    again.start()
    assert ex.pos_qty == 0.5 and again.owned() == 0.5
    assert ("sell", 100.0, 0.5) in resting(ex) and again.totals.fill_count == 0     # its fill is history
    move(ex, ex.source, 100.0)                  # the sell closes it: flat, books and account alike
    again.step()
    assert ex.pos_qty == 0.0 and again.owned() == 0.0
    db.close()


def test_a_first_start_killed_after_sending_still_refuses_a_position_its_orders_did_not_all_make(tmp_path):
    """As above, and the trader also bought 0.2 on the account: not all of it is the grid's."""
    db = Database(tmp_path / "bot.db")
    ex = LosesAnswers(StepPrices(100.0), db=Database(tmp_path / "venue.db"), balance=100_000.0, lag=0, fates=[])
    killed_in(db, grid(ex, store=db, **PARAMS).start)
    move(ex, ex.source, 99.0)
    ex.place_order(OrderRequest(SYMBOL, "buy", 0.2, type="market", post_only=False))
    with pytest.raises(PositionNotOwned, match="earlier start of this instance"):
        grid(ex, store=db, **PARAMS).start()
    assert ex.fetch_open_orders(SYMBOL) == []
    db.close()


def turn(action) -> None:
    """One turn as the loop takes it: an exchange error (or a change that failed) ends it."""
    try:
        action()
    except (ExchangeError, ValueError):
        pass


class Killed(Exception):
    """The process dies: the open transaction is lost with it."""


def killed_in(db: Database, action) -> None:
    """A turn whose every request took effect on the venue, then a SIGKILL before it commits."""
    try:
        with db.transaction():
            turn(action)
            raise Killed
    except Killed:
        pass


def killable(strat: PerpGridStrategy, offset: int) -> Callable[[], object]:
    """The turn a kill cuts short, by `offset`: a plain turn, a live range change, a size change or
    the trader's flatten."""
    lower = round(95.0 + offset * 0.25, 2)
    return [strat.step, lambda: strat.adjust_grid_range(lower, round(lower + 10.0, 2)),
            lambda: apply_params(strat, replace(strat.params, quantity=0.5 if offset % 8 < 4 else 0.7)),
            lambda: strat.flatten("trader's flatten")][offset % 4]


def drive(ex: LosesAnswers, db: Database, ops: list) -> PerpGridStrategy:
    """The strategy after `ops` and enough turns on an answering venue for the history to catch up."""
    strat = grid(ex, store=db, **PARAMS)
    turn(strat.start)
    for op, offset in ops:
        if op == "move":
            move(ex, ex.source, round(100.0 + offset * 0.25, 2))
            turn(strat.start if strat.state == "starting" else strat.step)    # as the loop does
        elif op == "range":
            lower = round(95.0 + offset * 0.25, 2)
            turn(lambda: strat.adjust_grid_range(lower, round(lower + 10.0, 2)))
        elif op == "restart":                   # killed between turns and started again on the same books
            strat = grid(ex, store=db, **PARAMS)
            turn(strat.start)
        elif op == "kill":                      # killed at the end of a turn, before its books commit
            move(ex, ex.source, round(100.0 + offset * 0.25, 2))
            action = strat.start if strat.state == "starting" else killable(strat, offset)
            if db.load_state(STATE_KEY) is None:    # a first start killed so has its own test
                turn(action)
            else:
                killed_in(db, action)
                strat = grid(ex, store=db, **PARAMS)
                turn(strat.start)
        elif op == "size":
            turn(lambda: apply_params(strat, replace(strat.params, quantity=0.5 if offset % 2 else 0.7)))
        else:                                   # the trader's flatten, amid lost answers too
            turn(lambda: strat.flatten("trader's flatten"))
        if strat.stopped:
            break
    ex.fates = []                               # the venue answers again
    if strat.stopped:
        return strat
    if strat.state == "starting":
        strat = grid(ex, store=db, **PARAMS)
        strat.start()
    for _ in range(ex.lag + 3):
        move(ex, ex.source, ex.source.price)
        strat.step()
    return strat


@contextmanager
def driven(ops: list, fates: list[int], lag: int, max_fill: float | None) -> Iterator[tuple[LosesAnswers, PerpGridStrategy]]:
    """The venue and the strategy after `drive`, on a database of their own for the block."""
    with tempfile.TemporaryDirectory() as tmp:
        db = Database(Path(tmp) / "bot.db")
        venue = Database(Path(tmp) / "venue.db")      # the venue's own: a bot's lost turn leaves it as it is
        ex = LosesAnswers(StepPrices(100.0), db=venue, balance=100_000.0, max_fill_qty=max_fill, lag=lag,
                          fates=fates)
        try:
            yield ex, drive(ex, db, ops)
        finally:
            db.close()
            venue.close()


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(**RUNS)
def test_once_the_venue_answers_the_books_name_what_rests_and_own_what_filled(ops, fates, lag, max_fill):
    with driven(ops, fates, lag, max_fill) as (ex, strat):
        if strat.stopped or strat._closing is not None:     # a flatten's: the next property's business
            return
        listed = ex.fetch_fills(SYMBOL, 0)
        assert strat.totals.fill_count == len(listed)
        assert strat.owned() == pytest.approx(sum(f.qty if f.side == "buy" else -f.qty for f in listed), abs=1e-9)
        booked = sorted(r["id"] for r in strat.open_orders())
        assert booked == sorted(o.id for o in ex.fetch_open_orders(SYMBOL))
        # no opening order was traded twice: a cell holds at most one order's size (0.5 or 0.7), unless
        # a range change handed it inventory (`cost` set: the last free cell takes all that is left)
        opened = [(c.index, c.held) for c in strat.cells if c.cost is None and c.held > 0.7 + 1e-9]
        assert opened == []


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(**RUNS)
def test_a_flatten_after_lost_answers_leaves_the_account_flat(ops, fates, lag, max_fill):
    with driven(ops, fates, lag, max_fill) as (ex, strat):
        if not strat.stopped:                   # a flatten among the ops may still be closing: it goes on
            flatten_leaves_the_account_flat(strat, ex)
        else:                                   # the flatten among the ops, finished once the venue answered
            assert strat.stop_reason == "trader's flatten"
            assert ex.fetch_open_orders(SYMBOL) == [] and ex.pos_qty == pytest.approx(0.0, abs=1e-9)
