"""Each reaction of PerpGridStrategy against hand-computed fills, fees and profit.

The grid is lines 100, 101, 102, 103, 104 (cells 0..3), quantity 1, maker fee 0.02%, price
102.4: neutral cells 0 and 1 are long (buys at 100 and 101), 2 and 3 short (sells at 103, 104).
"""
import pytest

from database.db import Database
from exchanges.base import AuthenticationError, ExchangeUnavailable, InvalidOrder
from exchanges.paper_exchange import PaperExchange
from tests.bot.helpers import StepPrices, grid, move, paper, resting

MAKER = 0.0002
INITIAL = [("buy", 100.0, 1.0), ("buy", 101.0, 1.0), ("sell", 103.0, 1.0), ("sell", 104.0, 1.0)]


def run(ex, src, strat, *prices):
    for p in prices:
        move(ex, src, p)
        strat.step()


def test_neutral_grid_bids_below_and_asks_above_all_post_only():
    ex, _ = paper(102.4)
    strat = grid(ex)
    strat.start()
    assert resting(ex) == INITIAL
    assert all(o.post_only for o in ex.fetch_open_orders("SOL_USDC_PERP"))


def test_long_cycle_books_close_minus_open_less_both_fees_and_rearms():
    ex, src = paper(102.4)
    strat = grid(ex)
    strat.start()
    run(ex, src, strat, 101.0)              # buy at 101 opens cell 1 ...
    assert resting(ex) == [("buy", 100.0, 1.0), ("sell", 102.0, 1.0), ("sell", 103.0, 1.0), ("sell", 104.0, 1.0)]
    assert strat.totals.grid_profit == 0    # ... its close sits one level up, the level is locked
    run(ex, src, strat, 102.0)              # the close fills
    assert strat.totals.grid_profit == pytest.approx(1.0 - 101 * MAKER - 102 * MAKER)   # 0.9594
    assert strat.totals.fees == pytest.approx(0.0406)
    assert (strat.totals.fill_count, strat.totals.cycles, strat.position) == (2, 1, 0)
    assert resting(ex) == INITIAL           # re-armed


def test_short_cycle_books_its_profit():
    ex, src = paper(102.4)
    strat = grid(ex)
    strat.start()
    run(ex, src, strat, 103.0)
    assert ("buy", 102.0, 1.0) in resting(ex) and ex.fetch_position("SOL_USDC_PERP").qty == -1
    run(ex, src, strat, 102.0)
    assert strat.totals.grid_profit == pytest.approx(1.0 - 103 * MAKER - 102 * MAKER)   # 0.959
    assert resting(ex) == INITIAL


def test_partial_opening_fills_grow_the_closing_order_and_profit_is_pro_rata():
    ex, src = paper(102.4, max_fill_qty=0.4)
    strat = grid(ex)
    strat.start()
    run(ex, src, strat, 101.0)
    assert ("sell", 102.0, 0.4) in resting(ex) and ("buy", 101.0, 0.6) in resting(ex)
    run(ex, src, strat, 101.0)
    assert ("sell", 102.0, 0.8) in resting(ex)
    run(ex, src, strat, 101.0)
    assert ("sell", 102.0, 1.0) in resting(ex) and not any(p == 101.0 for _, p, _ in resting(ex))
    run(ex, src, strat, 102.0)              # closes 0.4 of 1.0
    first = 0.4 * 1.0 - 0.4 * 102 * MAKER - 0.4 * 101 * MAKER
    assert strat.totals.grid_profit == pytest.approx(first)
    assert ("sell", 102.0, 0.6) in resting(ex)
    run(ex, src, strat, 102.0, 102.0)
    assert strat.totals.grid_profit == pytest.approx(1.0 - 101 * MAKER - 102 * MAKER)
    assert ("buy", 101.0, 1.0) in resting(ex) and strat.position == 0


def test_long_grid_only_bids_and_short_grid_only_asks():
    ex, _ = paper(102.4)
    strat = grid(ex, grid_type="long")
    strat.start()
    assert resting(ex) == [("buy", 100.0, 1.0), ("buy", 101.0, 1.0), ("buy", 102.0, 1.0)]
    ex2, _ = paper(102.4)
    strat2 = grid(ex2, grid_type="short")
    strat2.start()
    assert resting(ex2) == [("sell", 103.0, 1.0), ("sell", 104.0, 1.0)]


def test_max_position_caps_exposure_nearest_levels_first():
    ex, src = paper(102.4)
    strat = grid(ex, max_position=1.0)
    strat.start()
    assert resting(ex) == [("buy", 101.0, 1.0), ("sell", 103.0, 1.0)]
    run(ex, src, strat, 101.0)             # long 1: the buy at 100 would make 2
    assert resting(ex) == [("sell", 102.0, 1.0), ("sell", 103.0, 1.0)]
    run(ex, src, strat, 100.5)
    assert ex.fetch_position("SOL_USDC_PERP").qty == 1.0


def test_stop_loss_on_unrealized_pnl_closes_at_market_and_stops():
    ex, src = paper(102.4)
    strat = grid(ex, stop_loss=1.5)
    strat.start()
    run(ex, src, strat, 101.0, 100.0)       # long 2 @ 100.5, unrealized -1
    assert not strat.stopped
    run(ex, src, strat, 99.7)               # unrealized 2 * (99.7 - 100.5) = -1.6
    assert strat.stopped and "stop loss" in strat.stop_reason
    pos = ex.fetch_position("SOL_USDC_PERP")
    assert pos.qty == 0 and pos.realized_pnl == pytest.approx(-1.6)
    assert resting(ex) == []


def test_take_profit_on_unrealized_pnl():
    ex, src = paper(102.4)
    strat = grid(ex, take_profit=0.5, boundary_tolerance=0.5)
    strat.start()
    run(ex, src, strat, 103.0)              # short 1 @ 103, close buy at 102
    run(ex, src, strat, 102.4)              # unrealized 0.6 >= 0.5
    assert strat.stopped and "take profit" in strat.stop_reason
    assert ex.fetch_position("SOL_USDC_PERP").qty == 0


def test_boundary_stop_only_cancels_orders_and_keeps_the_position():
    ex, src = paper(102.4)
    strat = grid(ex)
    strat.start()
    run(ex, src, strat, 104.5)              # both sells fill, then the price is out
    assert strat.stopped and "left the range" in strat.stop_reason
    assert resting(ex) == [] and ex.fetch_position("SOL_USDC_PERP").qty == -2


def test_boundary_tolerance_delays_the_action():
    ex, src = paper(102.4)
    strat = grid(ex, boundary_tolerance=0.01)   # 104 * 1.01 = 105.04
    strat.start()
    run(ex, src, strat, 104.5)
    assert not strat.stopped
    run(ex, src, strat, 105.1)
    assert strat.stopped


def test_boundary_emergency_close_flattens():
    ex, src = paper(102.4)
    strat = grid(ex, boundary_action="emergency_close")
    strat.start()
    run(ex, src, strat, 99.0)
    assert strat.stopped and ex.fetch_position("SOL_USDC_PERP").qty == 0 and resting(ex) == []


def test_boundary_adjust_range_recentres_the_grid():
    ex, src = paper(102.4)
    strat = grid(ex, boundary_action="adjust_range")
    strat.start()
    run(ex, src, strat, 99.0)               # buys at 101 and 100 filled: long 2, kept by the new cells
    assert not strat.stopped
    assert strat.grid_dict()["levels"] == [97.0, 98.0, 99.0, 100.0, 101.0]
    # the held units close at 100 and 101, the new long cells buy at 97 and 98
    assert resting(ex) == [("buy", 97.0, 1.0), ("buy", 98.0, 1.0), ("sell", 100.0, 1.0), ("sell", 101.0, 1.0)]
    # One rule for a live change (strategies/reconfigure.py): cell 100..101 exists in both ranges,
    # so it keeps its unit bought at 100, closing at 101 (and its orders, had they rested yet);
    # the unit of the vanished cell 101..102 (bought at 101) gets a closing order on a new cell.
    assert [(c.held, c.cost) for c in strat.cells[2:]] == [(1.0, 101.0), (1.0, None)]
    assert strat.owned() == 2.0 == ex.fetch_position("SOL_USDC_PERP").qty and strat.carried == 0


def test_max_position_counts_a_filled_order_once_not_also_as_still_resting():
    ex, src = paper(102.4)
    strat = grid(ex, grid_type="short", max_position=3.0)
    strat.start()                           # short cells open with sells at 101..104: 101 and 102 cross
    run(ex, src, strat, 102.0)              # a turn that weighs those two (room for both) and places nothing
    assert resting(ex) == [("sell", 103.0, 1.0), ("sell", 104.0, 1.0)]
    move(ex, src, 103.5)                    # between two turns the sell at 103 fills (short 1) ...
    run(ex, src, strat, 100.5)              # ... and the price falls below 101, where a sell rests again
    assert ex.fetch_position("SOL_USDC_PERP").qty == -1.0
    # short 1 + the sell at 104 + a sell at 101 is 3: it fits (the filled 103 no longer rests); a
    # sell at 102 would make 4 (held back), and the close's buy at 102 waits for the price
    assert resting(ex) == [("sell", 101.0, 1.0), ("sell", 104.0, 1.0)]
    assert [c.blocked for c in strat.cells] == [None, "exposure", None, None]


def test_max_position_counts_inventory_carried_over_from_the_old_range():
    ex, src = paper(102.4)
    strat = grid(ex, boundary_action="adjust_range", max_position=2.0)
    strat.start()
    run(ex, src, strat, 99.0)               # long 2 kept by the cells of the range 97..101
    assert strat.owned() == 2.0
    assert [side for side, _, _ in resting(ex)] == ["sell", "sell"]   # any buy could make it 3
    run(ex, src, strat, 101.0)              # both closing sells fill: flat
    assert ex.fetch_position("SOL_USDC_PERP").qty == 0
    # the short cells' closes would bring it back to +2: no room for an opening buy at 97 or 98
    assert resting(ex) == [("buy", 99.0, 1.0), ("buy", 100.0, 1.0)]


def test_adjust_grid_range_live_and_rejection_changes_nothing():
    ex, _ = paper(102.4)
    strat = grid(ex)
    strat.start()
    with pytest.raises(ValueError, match="lower must be below upper"):
        strat.adjust_grid_range(105.0, 101.0)
    assert resting(ex) == INITIAL
    new = strat.adjust_grid_range(101.0, 105.0)
    assert new["levels"] == [101.0, 102.0, 103.0, 104.0, 105.0]
    assert resting(ex) == [("buy", 101.0, 1.0), ("sell", 103.0, 1.0), ("sell", 104.0, 1.0), ("sell", 105.0, 1.0)]


class FailingAt(PaperExchange):
    """A paper exchange that fails the way a venue does for chosen prices."""

    def __init__(self, *args, fail: dict | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fail = fail or {}

    def place_order(self, request):
        if request.price in self.fail:
            raise self.fail[request.price]
        return super().place_order(request)


def test_adjust_rolls_back_to_the_old_range_when_the_rebuild_fails():
    ex = FailingAt(StepPrices(102.4), fail={106.0: ExchangeUnavailable("timeout")})
    strat = grid(ex)
    strat.start()
    with pytest.raises(ValueError, match="restored"):
        strat.adjust_grid_range(100.0, 108.0)   # lines 100, 102, 104, 106, 108: 106 fails
    assert strat.grid_dict()["lower"] == 100.0 and strat.grid_dict()["upper"] == 104.0
    assert resting(ex) == INITIAL


def test_invalid_order_and_margin_skip_the_level_without_crashing():
    ex = FailingAt(StepPrices(102.4), fail={101.0: InvalidOrder("price band")})
    strat = grid(ex)
    strat.start()
    assert resting(ex) == [("buy", 100.0, 1.0), ("sell", 103.0, 1.0), ("sell", 104.0, 1.0)]
    poor, _ = paper(102.4, balance=150.0, leverage=1.0)    # margin for one order only
    strat2 = grid(poor)
    strat2.start()
    assert len(resting(poor)) == 1
    assert sum(c.blocked == "margin" for c in strat2.cells) == 3


def test_a_refused_order_of_the_batch_leaves_its_room_under_max_position_to_the_next_level():
    ex = FailingAt(StepPrices(102.4), fail={101.0: InvalidOrder("price band")})
    strat = grid(ex, max_position=1.0)
    strat.start()                           # as one by one: 101 refused, so 100 takes the buy side
    assert resting(ex) == [("buy", 100.0, 1.0), ("sell", 103.0, 1.0)]
    assert [c.blocked for c in strat.cells] == [None, "invalid", None, "exposure"]


def test_post_only_rejection_retries_next_turn():
    ex, src = paper(102.4)
    strat = grid(ex)
    strat.start()
    run(ex, src, strat, 101.0)              # cell 1 holds 1, close at 102
    ex.cancel_all_orders("SOL_USDC_PERP")   # say the venue dropped the orders ...
    strat.reconcile()
    move(ex, src, 102.5)                    # ... and the price gapped above the close price
    strat.step()
    assert ("sell", 102.0, 1.0) not in resting(ex)
    run(ex, src, strat, 101.5)              # back below: the close is placed again
    assert ("sell", 102.0, 1.0) in resting(ex)


def test_a_transient_error_mid_turn_keeps_what_was_booked_and_never_books_it_twice(tmp_path):
    db = Database(tmp_path / "bot.db")
    ex = FailingAt(StepPrices(102.4), db=db)
    strat = grid(ex, store=db)
    strat.start()
    ex.fail = {102.0: ExchangeUnavailable("timeout")}      # the close after the fill cannot be placed
    ex.source.price = 101.0
    ex.step()
    with pytest.raises(ExchangeUnavailable):
        strat.step()
    assert db.load_state("perp_grid")["totals"]["fill_count"] == 1   # booked and saved before the error
    ex.fail = {}
    strat.step()
    assert strat.totals.fill_count == 1 and ("sell", 102.0, 1.0) in resting(ex)


def test_authentication_error_propagates_to_the_loop():
    class NoAuth(PaperExchange):
        def fetch_ticker(self, symbol):
            raise AuthenticationError("bad key")

    strat = grid(NoAuth(StepPrices(102.4)))
    with pytest.raises(AuthenticationError):
        strat.start()


def test_restart_adopts_unrecorded_orders_and_replays_missed_fills_once(tmp_path):
    db = Database(tmp_path / "bot.db")
    ex, src = paper(102.4, db=db)
    strat = grid(ex, store=db)
    strat.start()
    run(ex, src, strat, 101.0)
    # Killed after the exchange acted but before the strategy saved: forget the close order and
    # let a fill happen that the strategy never read.
    state = db.load_state("perp_grid")
    state["cells"][1]["close_order"] = None
    state["cells"][0]["open_order"] = None  # still resting at 100: must be adopted, not doubled
    db.save_state("perp_grid", state)
    move(ex, src, 103.0)                    # close at 102 and the short at 103 both fill
    db.close()

    db2 = Database(tmp_path / "bot.db")
    ex2, src2 = paper(0.0, db=db2)
    again = grid(ex2, store=db2)
    again.start()
    prices = [p for _, p, _ in resting(ex2)]
    assert len(prices) == len(set(prices))  # no duplicate order at any price
    assert ("buy", 100.0, 1.0) in resting(ex2)
    assert again.totals.fill_count == 3 and len(ex2.fetch_fills("SOL_USDC_PERP", 0)) == 3
    assert again.totals.grid_profit == pytest.approx(1.0 - 101 * MAKER - 102 * MAKER)
    assert again.position == ex2.fetch_position("SOL_USDC_PERP").qty == -1
    again.start()                           # a second reconcile changes nothing
    assert again.totals.fill_count == 3 and [p for _, p, _ in resting(ex2)] == prices


def test_a_restart_with_a_changed_range_books_the_old_fills_on_the_old_grid(tmp_path):
    db = Database(tmp_path / "bot.db")
    ex, src = paper(102.4, db=db)
    strat = grid(ex, store=db)
    strat.start()
    run(ex, src, strat, 101.0)              # cell 1 long 1 @ 101, close at 102
    move(ex, src, 102.0)                    # the close fills while the bot is down
    db.close()

    db2 = Database(tmp_path / "bot.db")
    ex2, _ = paper(0.0, db=db2)
    moved = grid(ex2, store=db2, lower=98.0, upper=106.0)
    moved.start()
    assert moved.totals.grid_profit == pytest.approx(1.0 - 101 * MAKER - 102 * MAKER)
    assert moved.carried == 0 and moved.grid_dict()["levels"] == [98.0, 100.0, 102.0, 104.0, 106.0]


class LostAnswer(PaperExchange):
    """A paper exchange that places an order at a chosen price, then loses the answer (a timeout);
    `orders_down` makes its open-order query time out too."""

    def __init__(self, *args, lose: set | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.lose = set(lose or ())
        self.requests = 0
        self.orders_down = False

    def fetch_open_orders(self, symbol):
        if self.orders_down:
            raise ExchangeUnavailable("read timed out")
        return super().fetch_open_orders(symbol)

    def place_order(self, request):
        self.requests += 1
        order = super().place_order(request)
        if request.price in self.lose:
            self.lose.discard(request.price)
            raise ExchangeUnavailable("read timed out")
        return order


def test_an_order_placed_without_an_answer_is_adopted_next_turn_not_placed_twice():
    ex = LostAnswer(StepPrices(102.4), lose={101.0})
    strat = grid(ex)
    with pytest.raises(ExchangeUnavailable):
        strat.start()                       # nearest first: 103, then 101 placed but its answer lost
    assert resting(ex) == [("buy", 101.0, 1.0), ("sell", 103.0, 1.0)]
    strat.step()
    assert resting(ex) == INITIAL           # 101 adopted, the rest placed once
    assert ex.requests == 4
    assert sorted((r["side"], r["price"]) for r in strat.open_orders()) == [(s, p) for s, p, _ in INITIAL]


def test_a_lost_closing_order_is_adopted_and_its_fill_booked_once():
    ex = LostAnswer(StepPrices(102.4), lose={102.0})
    strat = grid(ex)
    strat.start()
    ex.source.price = 101.0
    ex.step()
    with pytest.raises(ExchangeUnavailable):
        strat.step()                        # the buy at 101 filled; its close at 102 rests unheard
    strat.step()
    assert resting(ex).count(("sell", 102.0, 1.0)) == 1
    assert strat.cells[1].close_order is not None
    move(ex, ex.source, 102.0)
    strat.step()
    assert strat.totals.grid_profit == pytest.approx(1.0 - 101 * MAKER - 102 * MAKER)
    assert resting(ex) == INITIAL and strat.position == 0


def test_the_venue_still_unreachable_places_nothing_until_it_has_answered():
    ex = LostAnswer(StepPrices(102.4), lose={101.0})
    strat = grid(ex)
    with pytest.raises(ExchangeUnavailable):
        strat.start()
    placed = ex.requests
    ex.orders_down = True
    with pytest.raises(ExchangeUnavailable):
        strat.step()
    assert ex.requests == placed            # no placement while the lost order is unexplained
    ex.orders_down = False
    strat.step()
    assert resting(ex) == INITIAL


# ---- only our own orders and our own share of the position ---------------------------------------
def foreign_orders(ex) -> list:
    """A manual order (no client id) and another bot's (another instance's tag) on the same symbol."""
    from exchanges import client_ids
    from exchanges.base import OrderRequest

    other = client_ids.encode("someone_else", 1, client_ids.ROLE_OPEN, 1)
    assert not client_ids.belongs_to(other, "test_bot")
    return [ex.place_order(OrderRequest("SOL_USDC_PERP", "buy", 1.0, 90.0)),
            ex.place_order(OrderRequest("SOL_USDC_PERP", "sell", 1.0, 110.0, client_id=other))]


def test_shutdown_cancels_only_our_orders_never_the_traders_own():
    ex, src = paper(102.4)
    mine_before = foreign_orders(ex)
    strat = grid(ex)
    strat.start()
    assert len(resting(ex)) == 4 + 2                 # the manual orders are not strays to cancel either
    run(ex, src, strat, 102.6)
    assert strat.shutdown("test") == 4
    assert sorted(o.id for o in ex.fetch_open_orders("SOL_USDC_PERP")) == sorted(o.id for o in mine_before)


def test_a_range_exit_cancels_only_our_orders():
    ex, src = paper(102.4)
    theirs = foreign_orders(ex)
    strat = grid(ex)                                 # stop_only
    strat.start()
    run(ex, src, strat, 104.5)
    assert strat.stopped
    assert sorted(o.id for o in ex.fetch_open_orders("SOL_USDC_PERP")) == sorted(o.id for o in theirs)


def test_emergency_close_closes_only_the_grids_share_of_the_position():
    from exchanges.base import OrderRequest

    ex, src = paper(102.4)
    strat = grid(ex, boundary_action="emergency_close")
    strat.start()
    ex.place_order(OrderRequest("SOL_USDC_PERP", "buy", 3.0, type="market", post_only=False))   # the trader's 3
    theirs = foreign_orders(ex)
    run(ex, src, strat, 100.5, 99.0)                 # the grid buys 101 and 100: account long 5, the grid's 2
    assert strat.stopped and "emergency close" in strat.stop_reason
    assert ex.fetch_position("SOL_USDC_PERP").qty == pytest.approx(3.0)
    assert sorted(o.id for o in ex.fetch_open_orders("SOL_USDC_PERP")) == sorted(o.id for o in theirs)


def test_emergency_close_of_a_short_grid_beside_a_manual_long_leaves_exactly_the_long():
    from exchanges.base import OrderRequest

    ex, src = paper(102.4)
    strat = grid(ex, boundary_action="emergency_close")
    strat.start()
    ex.place_order(OrderRequest("SOL_USDC_PERP", "buy", 3.0, type="market", post_only=False))   # the trader's, later
    run(ex, src, strat, 103.5, 105.0)                # the grid sells 103 and 104 (short 2): account long 1
    assert strat.stopped
    assert ex.fetch_position("SOL_USDC_PERP").qty == pytest.approx(3.0)   # the grid's short bought back
