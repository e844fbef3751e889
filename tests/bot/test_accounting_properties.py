"""The accounting identities of the grid, over random price paths and configurations (hypothesis).

Each example runs the real strategy on the paper exchange along a random path, then checks what
must hold whatever the path: the account's equity change is realized + unrealized - fees -
funding; the position is the sum of the signed fills, and the grid owns exactly that; the grid
profit is, cycle by cycle, (close - open) x qty less both fees, recomputed here from the
exchange's own fill list; and |position| never exceeds max_position after any turn.
"""
from __future__ import annotations

from collections import defaultdict

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exchanges import client_ids
from exchanges.paper_exchange import PaperExchange
from strategies.grid_params import GridParams
from strategies.perp_grid_strategy import MARKET_LEVEL, PerpGridStrategy
from tests.bot.helpers import StepPrices

SYMBOL = "SOL_USDC_PERP"
TICK = 0.01
BALANCE = 100_000.0


@st.composite
def configs(draw) -> dict:
    lower = draw(st.integers(80, 100)) * 1.0
    width = draw(st.integers(5, 40)) * 1.0
    quantity = draw(st.integers(1, 20)) / 10
    return {
        "params": GridParams(SYMBOL, lower, lower + width, draw(st.integers(3, 12)), quantity,
                             mode=draw(st.sampled_from(["arithmetic", "geometric"])),
                             grid_type=draw(st.sampled_from(["neutral", "long", "short"])),
                             max_position=draw(st.one_of(st.none(), st.integers(1, 6).map(lambda k: k * quantity))),
                             boundary_tolerance=0.5),
        "start": round(lower + width * draw(st.floats(0.1, 0.9)), 2),
        "max_fill_qty": draw(st.sampled_from([None, 0.3, 0.7])),
        "funding_rate": draw(st.sampled_from([0.0, 0.0001, -0.0002])),
        "moves": draw(st.lists(st.integers(-150, 150), min_size=10, max_size=60)),   # ticks per step
    }


def grid_profit_from_fills(strategy: PerpGridStrategy, fills) -> float:
    """The grid profit recomputed from the exchange's fill list alone: per cell, each closing fill
    earns (close - open level) x qty x direction less its own fee and its share of the opening
    fees paid for what it closes (so a whole cycle pays both fees)."""
    held: dict[int, float] = defaultdict(float)
    open_fees: dict[int, float] = defaultdict(float)
    profit = 0.0
    for f in fills:
        cid = client_ids.decode(f.client_id)
        if cid.level == MARKET_LEVEL:
            continue
        long = strategy.cells[cid.level].side == "long"
        lo, hi = strategy.levels[cid.level], strategy.levels[cid.level + 1]
        if cid.role == client_ids.ROLE_OPEN:
            held[cid.level] += f.qty
            open_fees[cid.level] += f.fee
            continue
        share = open_fees[cid.level] * f.qty / held[cid.level]
        open_fees[cid.level] -= share
        held[cid.level] -= f.qty
        profit += ((f.price - lo) if long else (hi - f.price)) * f.qty - f.fee - share
    return profit


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(configs())
def test_the_books_keep_every_accounting_identity(cfg):
    source = StepPrices(cfg["start"])
    ex = PaperExchange(source, balance=BALANCE, leverage=100.0, max_fill_qty=cfg["max_fill_qty"],
                       funding_rate=cfg["funding_rate"], funding_interval_h=0.01)
    strat = PerpGridStrategy(ex, cfg["params"], "prop", log=lambda _m: None)
    strat.start()
    max_pos = cfg["params"].max_position
    price = cfg["start"]
    for ticks in cfg["moves"]:
        price = max(1.0, round(price + ticks * TICK, 2))
        source.price = price
        ex.step()
        strat.step()
        if max_pos is not None:
            assert abs(ex.pos_qty) <= max_pos + 1e-9
        if strat.stopped:
            break

    fills = ex.fetch_fills(SYMBOL, 0)
    pos = ex.fetch_position(SYMBOL)
    # the account: equity change = realized + unrealized - fees - funding
    assert ex.equity() - BALANCE == pytest.approx(pos.realized_pnl + pos.unrealized_pnl - ex.fees - ex.funding,
                                                  abs=1e-6)
    # position = sum of signed fills, and it is the grid's own
    signed = sum(f.qty if f.side == "buy" else -f.qty for f in fills)
    assert pos.qty == pytest.approx(signed, abs=1e-9)
    assert strat.owned() == pytest.approx(pos.qty, abs=1e-9)
    # the books saw every fill, once
    assert strat.totals.fill_count == len(fills)
    assert strat.totals.fees == pytest.approx(sum(f.fee for f in fills), abs=1e-9)
    # each closed cycle = (close - open) x qty - both fees
    assert strat.totals.grid_profit == pytest.approx(grid_profit_from_fills(strat, fills), abs=1e-6)
