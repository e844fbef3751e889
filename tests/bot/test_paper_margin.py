"""The paper engine decides a placement's margin from running sums (issue 12): every decision must
be the one the exact check over every resting order gives, whatever placements, partial fills,
taker fills and cancels came before (hypothesis)."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exchanges.base import InsufficientMargin, OrderRequest
from exchanges.paper_exchange import EPS, PaperExchange
from tests.bot.helpers import cancel_nth, move, paper

SYM = "SOL_USDC_PERP"
OPS = st.lists(st.tuples(st.sampled_from(["buy", "sell", "cancel", "move"]), st.integers(1, 30),
                         st.integers(-20, 20), st.booleans()), min_size=1, max_size=150)


def exact_refusal(ex: PaperExchange, side: str, qty: float, price: float) -> bool:
    """The exact check as place_order words it: both sides' resting opening orders summed afresh."""
    crosses = price >= ex.price if side == "buy" else price <= ex.price
    at = ex.price if crosses else price
    resting = {s: ex._resting(s) for s in ("buy", "sell")}
    need = (ex._opening_notional(side, resting[side] + [(at, qty)])
            - ex._opening_notional(side, resting[side])) / ex.leverage
    return need > ex.equity() - ex._used_margin(resting["buy"], resting["sell"]) + EPS


@settings(max_examples=80, deadline=None)
@given(OPS, st.sampled_from([150.0, 400.0, 2000.0]), st.sampled_from([None, 0.3]), st.sampled_from([1.0, 10.0]))
def test_every_placement_is_refused_exactly_when_the_exact_margin_check_refuses(ops, balance, max_fill, leverage):
    ex, src = paper(100.0, balance=balance, max_fill_qty=max_fill, leverage=leverage)
    for op, n, offset, reduce_only in ops:
        if op == "move":
            move(ex, src, round(100.0 + offset * 0.25, 2))
        elif op == "cancel":
            cancel_nth(ex, SYM, n)
        else:
            qty, price = round(n * 0.3, 2), round(ex.price + offset * 0.25, 2)
            if price <= 0 or (reduce_only and ex._reducible(op) <= EPS):
                continue
            refuses = exact_refusal(ex, op, qty, price) if not reduce_only else False
            try:
                ex.place_order(OrderRequest(SYM, op, qty, price, post_only=False, reduce_only=reduce_only))
                refused = False
            except InsufficientMargin:
                refused = True
            assert refused == refuses
    for side in ("buy", "sell"):                # the running sums stay on the exact ones
        qty, notional = ex._sums[side]
        resting = ex._resting(side)
        assert qty == pytest.approx(sum(q for _, q in resting), abs=1e-9)
        assert notional == pytest.approx(sum(p * q for p, q in resting), abs=1e-7)


def test_a_full_account_refuses_the_order_that_needs_a_cent_more_than_is_free():
    """At the line the exact check decides (the running sums are only trusted away from it)."""
    ex, _src = paper(100.0, balance=100.0, leverage=1.0, maker_fee=0.0)
    ex.place_order(OrderRequest(SYM, "buy", 0.5, 99.0))           # 49.5 of 100 used
    with pytest.raises(InsufficientMargin, match="order needs 50.51 margin, 50.50 free"):
        ex.place_order(OrderRequest(SYM, "sell", 0.5, 101.02))
    ex.place_order(OrderRequest(SYM, "sell", 0.5, 101.0))          # exactly what is free: accepted
    assert ex.fetch_balance().free == pytest.approx(0.0, abs=1e-9)
