"""A level's 11-bit sequence wraps after 2,048 orders: its new client ids must never be ones the
books still read another way (an abandoned layout's `foreign` ids, ids in doubt, a kept order's).

Grid lines 100..104 (quantity 1) at price 102.4: buys at 100 and 101, sells at 103 and 104. Moving
the range to 101..105 cancels the buy at 100 (level 0, the first id of that level) and moves the
cell 101..102 with its resting buy to index 0, so its next orders are level 0's. (A cancelled
order's id is foreign only while a fill of it may still be listed: tests/bot/test_foreign_ids.py.)
"""
from exchanges import client_ids
from exchanges.paper_exchange import PaperExchange
from strategies.reconfigure import apply_params
from tests.bot.helpers import StepPrices, grid, move, paper, resting


class CancelAnswersNoOrder(PaperExchange):
    """A venue whose cancel answers without the order (`Exchange.cancel_order` may return None):
    what a cancelled order filled is unknown, so its client id stays foreign for good."""

    def cancel_order(self, symbol, order_id=None, client_id=None):
        super().cancel_order(symbol, order_id=order_id, client_id=client_id)
        return None


def test_a_new_order_never_reuses_a_cancelled_layouts_client_id_when_its_level_wraps():
    src = StepPrices(102.4)
    ex = CancelAnswersNoOrder(src)
    strat = grid(ex)
    strat.start()
    apply_params(strat, strat.params.with_range(101.0, 105.0))
    (foreign,) = [cid for cid in strat.book.foreign if client_ids.decode(cid).level == 0]
    cell = strat.cells[0]                       # 101..102, long: its buy at 101 was kept
    move(ex, src, 101.0)                        # it opens; its close at 102 is placed
    strat.step()
    # Stands in for the 2,046 orders this level would place before its sequence wraps: the
    # next id the cell takes is the cancelled buy's (one more would be the next after it).
    cell.seq = client_ids.decode(foreign).seq - 1
    move(ex, src, 102.0)                        # the close fills; the cell re-arms its buy at 101
    strat.step()
    assert ("buy", 101.0, 1.0) in resting(ex)
    assert cell.open_order is not None and cell.open_order.client_id != foreign
    move(ex, src, 101.0)                        # the new buy fills: it is this cell's, not carried
    strat.step()
    assert (cell.held, strat.carried, strat.owned()) == (1.0, 0.0, 1.0)
    assert ex.fetch_position("SOL_USDC_PERP").qty == 1.0
    assert cell.open_order is None and ("sell", 102.0, 1.0) in resting(ex)     # its closing order
    move(ex, src, 102.0)                        # and the level keeps trading
    strat.step()
    assert (strat.totals.cycles, strat.owned()) == (2, 0.0)


def test_a_wrapped_level_never_repeats_the_client_id_of_an_order_a_range_change_kept():
    ex, src = paper(102.4)
    strat = grid(ex)
    strat.start()
    apply_params(strat, strat.params.with_range(101.0, 105.0))
    kept = strat.cells[0].open_order            # the buy at 101 kept its old level's id: level 1
    assert client_ids.decode(kept.client_id).level == 1
    cell = strat.cells[1]                       # 102..103, short: its orders now take level 1's ids
    move(ex, src, 103.0)                        # its sell at 103 opens; the close's buy at 102 is placed
    strat.step()
    cell.seq = client_ids.decode(kept.client_id).seq - 1     # stands in for 2,046 more orders on it
    move(ex, src, 102.0)                        # the close fills; the cell re-arms its sell at 103
    strat.step()
    # the venue refuses a client id an open order has (the paper exchange as well): with the
    # kept buy's id the sell would be refused and the level sit out a backoff
    assert ("buy", 101.0, 1.0) in resting(ex) and ("sell", 103.0, 1.0) in resting(ex)
    assert cell.blocked is None and cell.open_order.client_id != kept.client_id
    mine = [o.client_id for o in ex.fetch_open_orders("SOL_USDC_PERP")]
    assert len(mine) == len(set(mine))          # a restart tells its orders apart by client id


def test_a_level_whose_every_client_id_is_taken_places_nothing_and_says_so():
    ex, src = paper(102.4)
    strat = grid(ex)
    said: list[str] = []
    strat.log = said.append
    strat.start()
    move(ex, src, 101.0)                        # cell 1 (101..102) opens; its close at 102 is placed
    strat.step()
    # Stands in for 2,048 range changes that each cancelled an opening order of level 1.
    strat.book.foreign |= {client_ids.encode("test_bot", 1, client_ids.ROLE_OPEN, s)
                           for s in range(client_ids.MAX_SEQ + 1)}
    move(ex, src, 102.0)                        # the close fills: the buy at 101 has no free id
    strat.step()
    assert strat.cells[1].held == 0.0 and strat.cells[1].open_order is None
    assert ("buy", 101.0, 1.0) not in resting(ex) and ("buy", 100.0, 1.0) in resting(ex)
    assert sum("level 1: every client id of the level is still taken" in m for m in said) == 1
    for _ in range(3):                          # said once, not on every turn it stays so
        move(ex, src, 102.0)
        strat.step()
    assert sum("level 1: every client id of the level is still taken" in m for m in said) == 1
    strat.book.foreign.clear()                  # the ids are free again: the level trades
    move(ex, src, 102.0)
    strat.step()
    assert ("buy", 101.0, 1.0) in resting(ex)
