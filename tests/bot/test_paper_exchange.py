"""Matching rules, margin, fees and persistence of the paper exchange (real SQLite files)."""
import pytest

from database.db import Database
from exchanges.base import InsufficientMargin, InvalidOrder, OrderNotFound, OrderRequest, PostOnlyRejected
from exchanges.paper_exchange import PaperExchange
from exchanges.paper_prices import CsvReplay, RandomWalk
from tests.bot.helpers import grid, move, paper, resting

SYM = "SOL_USDC_PERP"


def limit(side, qty, price, **kw):
    return OrderRequest(SYM, side, qty, price, **kw)


def test_resting_buy_fills_at_its_limit_with_the_maker_fee_when_price_trades_through():
    ex, src = paper(100.0)
    order = ex.place_order(limit("buy", 2, 99.0))
    move(ex, src, 99.5)
    assert ex.fetch_fills(SYM, 0) == []                   # above the limit: no fill
    move(ex, src, 98.0)                                   # trades through
    [fill] = ex.fetch_fills(SYM, 0)
    assert (fill.side, fill.price, fill.qty, fill.is_maker) == ("buy", 99.0, 2.0, True)
    assert fill.fee == pytest.approx(99.0 * 2 * 0.0002)
    assert fill.order_id == order.id and ex.fetch_open_orders(SYM) == []
    pos = ex.fetch_position(SYM)
    assert (pos.qty, pos.entry_price) == (2.0, 99.0)
    assert pos.unrealized_pnl == pytest.approx(2 * (98.0 - 99.0))


def test_resting_sell_fills_when_the_price_reaches_it():
    ex, src = paper(100.0)
    ex.place_order(limit("sell", 1, 101.0))
    move(ex, src, 101.0)                                  # "at or above"
    [fill] = ex.fetch_fills(SYM, 0)
    assert (fill.side, fill.price) == ("sell", 101.0)
    assert ex.fetch_position(SYM).qty == -1.0


def test_post_only_that_would_cross_is_rejected():
    ex, _ = paper(100.0)
    with pytest.raises(PostOnlyRejected):
        ex.place_order(limit("buy", 1, 100.0))
    with pytest.raises(PostOnlyRejected):
        ex.place_order(limit("sell", 1, 99.0))
    assert ex.fetch_open_orders(SYM) == []


def test_market_order_pays_taker_and_realizes_pnl_on_close():
    ex, src = paper(100.0)
    ex.place_order(OrderRequest(SYM, "buy", 3, type="market", post_only=False))
    move(ex, src, 110.0)
    ex.place_order(OrderRequest(SYM, "sell", 3, type="market", post_only=False, reduce_only=True))
    fills = ex.fetch_fills(SYM, 0)
    assert [f.is_maker for f in fills] == [False, False]
    fees = 100 * 3 * 0.0005 + 110 * 3 * 0.0005
    assert sum(f.fee for f in fills) == pytest.approx(fees)
    pos = ex.fetch_position(SYM)
    assert pos.qty == 0 and pos.realized_pnl == pytest.approx(30.0)
    assert ex.fetch_balance().total == pytest.approx(10000 + 30 - fees)


def test_reduce_only_never_grows_the_position():
    ex, src = paper(100.0)
    with pytest.raises(InvalidOrder, match="reduceOnly"):
        ex.place_order(limit("sell", 1, 101.0, reduce_only=True))          # flat: would open a short
    ex.place_order(OrderRequest(SYM, "buy", 1, type="market", post_only=False))
    ex.place_order(limit("sell", 3, 101.0, reduce_only=True))              # more than the position
    move(ex, src, 102.0)
    [_, fill] = ex.fetch_fills(SYM, 0)
    assert fill.qty == 1.0 and ex.fetch_position(SYM).qty == 0            # trimmed, never short
    assert ex.fetch_open_orders(SYM) == []


def test_margin_is_enforced_on_opening_orders():
    ex, _ = paper(100.0, balance=1000.0, leverage=10.0)                     # 10,000 notional at most
    ex.place_order(limit("buy", 60, 99.0))                                 # 594 margin
    with pytest.raises(InsufficientMargin):
        ex.place_order(limit("buy", 50, 98.0))                             # 490 more: too much
    ex.place_order(limit("buy", 40, 98.0))                                 # 392: fits


def test_invalid_sizes_and_prices_are_refused():
    ex, _ = paper(100.0, min_qty=0.1, step_size=0.1, tick_size=0.5)
    for req, match in ((limit("buy", 0.05, 99.0), "minimum"), (limit("buy", 0.15, 99.0), "step"),
                       (limit("buy", 1, 99.2), "tick")):
        with pytest.raises(InvalidOrder, match=match):
            ex.place_order(req)
    ex.place_order(limit("buy", 1, 99.0, client_id=7))
    with pytest.raises(InvalidOrder, match="client id 7"):
        ex.place_order(limit("buy", 1, 98.0, client_id=7))


def test_partial_fills_with_max_fill_qty():
    ex, src = paper(100.0, max_fill_qty=0.4)
    ex.place_order(limit("buy", 1, 99.0))
    move(ex, src, 98.0)
    move(ex, src, 98.0)
    assert [f.qty for f in ex.fetch_fills(SYM, 0)] == [0.4, 0.4]
    [order] = ex.fetch_open_orders(SYM)
    assert order.filled_qty == pytest.approx(0.8)
    move(ex, src, 98.0)
    assert [f.qty for f in ex.fetch_fills(SYM, 0)] == [0.4, 0.4, 0.2]
    assert ex.fetch_open_orders(SYM) == []


def test_cancel_by_id_and_client_id():
    ex, _ = paper(100.0)
    a = ex.place_order(limit("buy", 1, 99.0, client_id=11))
    ex.place_order(limit("buy", 1, 98.0, client_id=12))
    ex.cancel_order(SYM, order_id=a.id)
    ex.cancel_order(SYM, client_id=12)
    with pytest.raises(OrderNotFound):
        ex.cancel_order(SYM, order_id=a.id)
    ex.place_order(limit("sell", 1, 101.0))
    assert ex.cancel_all_orders(SYM) == 1


def test_funding_is_charged_every_interval_on_the_position():
    ex, src = paper(100.0, funding_rate=0.001, funding_interval_h=1 / 3600)   # every second
    ex.place_order(OrderRequest(SYM, "buy", 2, type="market", post_only=False))
    cash = ex.balance
    for _ in range(3):         # StepPrices advances 1 s per step from its start: each step is a funding time
        move(ex, src, 100.0)
    assert ex.funding == pytest.approx(2 * 100 * 0.001 * 3)
    assert ex.balance == pytest.approx(cash - 0.6)


def test_account_and_resting_orders_survive_a_restart(tmp_path):
    db = Database(tmp_path / "paper.db")
    ex, src = paper(100.0, db=db)
    ex.place_order(limit("buy", 1, 99.0, client_id=5))
    ex.place_order(limit("sell", 1, 101.0, client_id=6))
    move(ex, src, 99.0)
    db.close()

    db2 = Database(tmp_path / "paper.db")
    again, src2 = paper(123.0, db=db2)                  # the saved price wins over the new source
    assert again.price == 99.0 and src2.price == 99.0
    assert resting(again) == [("sell", 101.0, 1.0)]
    assert again.fetch_position(SYM).qty == 1.0
    assert [f.trade_id for f in again.fetch_fills(SYM, 0)] == ["P1"]
    move(again, src2, 101.0)
    assert [f.trade_id for f in again.fetch_fills(SYM, 0)] == ["P1", "P2"]   # ids keep counting
    assert again.fetch_position(SYM).qty == 0


def test_random_walk_is_reproducible_and_resumes_after_restore():
    a, b = RandomWalk(150, 0.01, seed=3), RandomWalk(150, 0.01, seed=3)
    assert [a.next()[1] for _ in range(5)] == [b.next()[1] for _ in range(5)]
    c = RandomWalk(150, 0.01, seed=3)
    c.restore(a.state())
    assert c.next()[1] == a.next()[1]


def test_csv_replay_and_its_errors(tmp_path):
    good = tmp_path / "p.csv"
    good.write_text("time,price\n1700000000,100.5\n1700000001,101\n2023-11-14T22:13:22Z,102\n")
    src = CsvReplay(good)
    assert src.price == 100.5          # the first row opens the market
    assert [src.next(), src.next(), src.next()] == [(1700000001000, 101.0), (1700000002000, 102.0), None]
    ex = PaperExchange(CsvReplay(good))
    assert ex.price == 100.5
    assert ex.step() and ex.step() and not ex.step() and ex.exhausted and ex.price == 102.0
    bad = tmp_path / "bad.csv"
    bad.write_text("time,price\n1,100\n2,abc\n")
    with pytest.raises(ValueError, match="bad.csv:3"):
        CsvReplay(bad)


def test_a_price_gap_fills_the_nearest_resting_order_first():
    """Short 1 @ 103; buys placed at 100.5 (first) and 102.5 (second); the price gaps to 100.

    The market trades through 102.5 before 100.5: the nearer buy closes the short, the farther
    one opens the long. Placement order would give entry 102.5 and the wrong realized PnL.
    """
    ex, src = paper(103.0)
    ex.place_order(OrderRequest(SYM, "sell", 1, type="market", post_only=False))
    ex.place_order(limit("buy", 1, 100.5))
    ex.place_order(limit("buy", 1, 102.5))
    move(ex, src, 100.0)
    assert [f.price for f in ex.fetch_fills(SYM, 0)][1:] == [102.5, 100.5]
    pos = ex.fetch_position(SYM)
    assert (pos.qty, pos.entry_price) == (1.0, 100.5)
    assert pos.realized_pnl == pytest.approx(0.5)        # closed at 102.5, not at 100.5


def test_a_gap_up_fills_the_lowest_sell_first():
    ex, src = paper(100.0)
    ex.place_order(OrderRequest(SYM, "buy", 1, type="market", post_only=False))
    ex.place_order(limit("sell", 1, 102.5))
    ex.place_order(limit("sell", 1, 100.5))
    move(ex, src, 103.0)
    pos = ex.fetch_position(SYM)
    assert (pos.qty, pos.entry_price) == (-1.0, 102.5)
    assert pos.realized_pnl == pytest.approx(0.5)


def test_a_gap_through_the_grid_books_the_right_entry_and_spares_the_stop_loss():
    """Grid 100..104 at 102.4: a short opens at 103, its close buy at 102 rests after the
    opening buys at 101 and 100. A gap to 99.5 must close the short at 102 and open longs at 101
    and 100 (entry 100.5, unrealized -2): a stop loss of 3 must not fire (placement order gave
    entry 101.5, unrealized -4, and a stop)."""
    ex, src = paper(102.4)
    strat = grid(ex, stop_loss=3.0, boundary_tolerance=0.1)
    strat.start()
    move(ex, src, 103.0)
    strat.step()
    assert ("buy", 102.0, 1.0) in resting(ex)
    move(ex, src, 99.5)
    strat.step()
    pos = ex.fetch_position(SYM)
    assert (pos.qty, pos.entry_price) == (2.0, 100.5)
    assert not strat.stopped, strat.stop_reason
    assert strat.totals.grid_profit == pytest.approx(1.0 - 103 * 0.0002 - 102 * 0.0002)


def test_touch_fill_model_fills_at_the_limit_when_the_price_reaches_it():
    ex, src = paper(100.0)
    assert ex.fill_model == "touch"
    ex.place_order(limit("buy", 1, 99.0))
    move(ex, src, 99.0)
    assert [(f.price, f.qty) for f in ex.fetch_fills(SYM, 0)] == [(99.0, 1.0)]


def test_through_fill_model_needs_the_price_one_tick_beyond_the_limit():
    """The conservative model: an order at the touch may be behind the queue, so it fills only
    when the price trades through it by a tick (then at its limit, as maker)."""
    ex, src = paper(100.0, fill_model="through", tick_size=0.01)
    ex.place_order(limit("buy", 1, 99.0))
    ex.place_order(limit("sell", 1, 101.0))
    move(ex, src, 99.0)
    assert ex.fetch_fills(SYM, 0) == []                   # touched, not traded through
    move(ex, src, 98.99)
    [fill] = ex.fetch_fills(SYM, 0)
    assert (fill.side, fill.price, fill.is_maker) == ("buy", 99.0, True)
    move(ex, src, 101.0)
    assert len(ex.fetch_fills(SYM, 0)) == 1
    move(ex, src, 101.01)
    assert [f.price for f in ex.fetch_fills(SYM, 0)] == [99.0, 101.0]


def test_an_unknown_fill_model_is_refused():
    with pytest.raises(ValueError, match="fill_model"):
        paper(100.0, fill_model="optimistic")
    ex = PaperExchange.from_config({"fill_model": "through", "initial_price": 100}, instance_id="x")
    assert ex.fill_model == "through"


@pytest.mark.parametrize("with_db", [False, True])
def test_fetch_order_answers_for_orders_open_cancelled_and_filled_by_id_and_by_client_id(tmp_path, with_db):
    """As a venue's order history does: what tells a cancelled order from a filled one whose fill
    is not listed yet (strategies/departed_orders.py, `_unlisted_of`)."""
    db = Database(tmp_path / "paper.db") if with_db else None
    ex, src = paper(100.0, db=db)
    kept, cancelled, filled = (ex.place_order(limit("buy", 1.0, p, client_id=int(p))) for p in (97.0, 98.0, 99.0))
    ex.cancel_order("SOL_USDC_PERP", order_id=cancelled.id)
    move(ex, src, 98.5)
    answers = [ex.fetch_order("SOL_USDC_PERP", o.id) for o in (kept, cancelled, filled)]
    assert [(o.status, o.filled_qty) for o in answers] == [("open", 0.0), ("canceled", 0.0), ("filled", 1.0)]
    by_client_id = [ex.fetch_order_by_client_id("SOL_USDC_PERP", cid) for cid in (97, 98, 99)]
    assert [(o.id, o.status) for o in by_client_id] == [(o.id, o.status) for o in answers]
    with pytest.raises(OrderNotFound):
        ex.fetch_order("SOL_USDC_PERP", "O999")
    with pytest.raises(OrderNotFound):
        ex.fetch_order_by_client_id("SOL_USDC_PERP", 96)
