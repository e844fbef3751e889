"""A stop whose market close loses its answer is finished, once; the state is saved only when it changed.

Same grid as test_strategy.py: lines 100..104, quantity 1, price 102.4.
"""
from __future__ import annotations

import pytest

from database.db import Database
from exchanges import client_ids
from exchanges.base import ExchangeUnavailable
from exchanges.paper_exchange import PaperExchange
from strategies.perp_grid_strategy import MARKET_LEVEL
from tests.bot.helpers import StepPrices, grid, move, resting

SYMBOL = "SOL_USDC_PERP"


class LosesMarketAnswers(PaperExchange):
    """Executes a market order, then loses its answer (ExchangeUnavailable), `lose` times."""

    def __init__(self, *args, lose: int = 1, **kwargs):
        super().__init__(*args, **kwargs)
        self.lose = lose
        self.market_orders = 0

    def place_order(self, request):
        order = super().place_order(request)
        if request.type == "market":
            self.market_orders += 1
            if self.lose:
                self.lose -= 1
                raise ExchangeUnavailable("read timed out")
        return order


class CountingDb(Database):
    """The real database, counting the writes the strategy makes."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.state_saves = 0
        self.status_writes: list[tuple[str, str]] = []

    def save_state(self, key, value):
        self.state_saves += 1
        super().save_state(key, value)

    def set_order_status(self, order_id, status, filled_qty=None):
        self.status_writes.append((order_id, status))
        super().set_order_status(order_id, status, filled_qty)


def market_fills(ex) -> list:
    return [f for f in ex.fetch_fills(SYMBOL, 0) if client_ids.decode(f.client_id).level == MARKET_LEVEL]


def lose_the_stop_loss_close(ex, strat) -> None:
    src = ex.source
    for price in (101.0, 100.0):            # long 2 @ 100.5
        move(ex, src, price)
        strat.step()
    move(ex, src, 99.7)                     # unrealized -1.6: stop loss; the close executes, its answer is lost
    with pytest.raises(ExchangeUnavailable):
        strat.step()
    assert ex.fetch_position(SYMBOL).qty == 0 and not strat.stopped


def test_a_stop_loss_close_that_lost_its_answer_is_finished_next_turn_without_a_second_close():
    ex = LosesMarketAnswers(StepPrices(102.4))
    strat = grid(ex, stop_loss=1.5, boundary_tolerance=0.5)
    strat.start()
    lose_the_stop_loss_close(ex, strat)
    move(ex, ex.source, 99.8)               # the account is flat now: the PnL alone would never stop it
    strat.step()
    assert strat.stopped and "stop loss" in strat.stop_reason
    assert ex.fetch_position(SYMBOL).qty == 0
    assert resting(ex) == []                # no closing orders re-placed for a position that is gone
    assert ex.market_orders == 1 and len(market_fills(ex)) == 1
    for price in (101.0, 103.0):            # nothing trades afterwards
        move(ex, ex.source, price)
        strat.step()
    assert ex.fetch_position(SYMBOL).qty == 0 and resting(ex) == []


def test_a_restart_in_the_middle_of_a_close_finishes_it(tmp_path):
    db = Database(tmp_path / "bot.db")
    ex = LosesMarketAnswers(StepPrices(102.4), db=db)
    strat = grid(ex, store=db, stop_loss=1.5, boundary_tolerance=0.5)
    strat.start()
    lose_the_stop_loss_close(ex, strat)
    db.close()                              # the bot dies here

    db2 = Database(tmp_path / "bot.db")
    ex2 = LosesMarketAnswers(StepPrices(99.8), db=db2, lose=0)
    again = grid(ex2, store=db2, stop_loss=1.5, boundary_tolerance=0.5)
    again.start()
    assert again.stopped and "stop loss" in again.stop_reason
    assert ex2.fetch_position(SYMBOL).qty == 0 and resting(ex2) == []
    assert ex2.market_orders == 0 and len(market_fills(ex2)) == 1
    db2.close()


def counted_grid(tmp_path):
    """A started grid on a real database that counts the strategy's writes."""
    db = CountingDb(tmp_path / "bot.db")
    ex = PaperExchange(StepPrices(102.4), db=db)
    strat = grid(ex, store=db)
    strat.start()
    return db, ex, strat


def test_the_state_is_saved_only_when_it_changed(tmp_path):
    db, ex, strat = counted_grid(tmp_path)
    saves = db.state_saves
    for _ in range(5):                      # nothing happens: nothing written
        move(ex, ex.source, 102.4)
        strat.step()
    assert db.state_saves == saves
    move(ex, ex.source, 101.0)              # a fill: written, and what is stored is the live state
    strat.step()
    assert db.state_saves == saves + 1
    assert db.load_state("perp_grid")["totals"]["fill_count"] == 1
    strat.levels.append(999.0)              # the saved copy does not alias the live list
    strat._save()
    assert db.state_saves == saves + 2
    db.close()


def test_cancel_all_records_each_cancelled_order_once(tmp_path):
    db, _, strat = counted_grid(tmp_path)
    db.status_writes.clear()
    assert strat.shutdown() == 4
    assert len(db.status_writes) == 4 and {s for _, s in db.status_writes} == {"canceled"}
    assert len({oid for oid, _ in db.status_writes}) == 4
    db.close()
