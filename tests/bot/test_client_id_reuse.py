"""A level's 11-bit sequence wraps after 2,048 orders: its new client ids must never be ones the
books still read another way (an abandoned layout's `foreign` ids, ids in doubt, a kept order's).

Grid lines 100..104 (quantity 1) at price 102.4: buys at 100 and 101, sells at 103 and 104. Moving
the range to 101..105 cancels the buy at 100 (level 0, the first id of that level) and moves the
cell 101..102 with its resting buy to index 0, so its next orders are level 0's.
"""
from exchanges import client_ids
from strategies.reconfigure import apply_params
from tests.bot.helpers import grid, move, paper, resting


def test_a_new_order_never_reuses_a_cancelled_layouts_client_id_when_its_level_wraps():
    ex, src = paper(102.4)
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
