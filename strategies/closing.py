"""The close-and-stop: the grid's own position closed at market until the exchange says so.

Stop loss, take profit, an emergency close at the range's edge and the trader's flatten all end
here. It is the grid's one path that sends market orders, and the one where a lost answer or a
late-listed fill could close twice or leave a position behind, so it reads the exchange's position
at every step rather than the books. The strategy (strategies/perp_grid_strategy.py) keeps the
close's state (`_closing`, `_close_target`, `_close_waits`) and saves it, so a turn or a restart
after an error carries the same close on; each market order is journaled with it before it is sent
(`Database.note_sending`), so a restart after a kill that lost the turn carries it on too.
"""
from __future__ import annotations

import time
from typing import TYPE_CHECKING

from exchanges import client_ids
from exchanges.base import OrderRequest
from strategies.grid_math import floor_to
from strategies.book_records import EPS, MARKET_LEVEL

if TYPE_CHECKING:
    from strategies.perp_grid_strategy import PerpGridStrategy

CLOSE_ATTEMPTS = 3                      # market orders one close may send (a partial fill leaves a remainder)
CLOSE_WAIT_TURNS = 5                    # turns a close waits for fills of orders gone from the book


def close_and_stop(strategy: PerpGridStrategy, reason: str) -> None:
    """Cancel our orders, close the grid's position at market until the exchange confirms it, stop.

    The exchange's position is the truth: when the close begins, the account position the
    grid's close must reach (`_close_target`: what the trader holds beside the grid) is fixed
    and saved, and each market order sends what the exchange position still lacks, not what
    the books say. So a close whose fills are listed late, whose answer was lost (the next turn
    or a restart goes on: `_closing` is saved) or that filled partly and expired is never sent
    twice nor taken as done; after CLOSE_ATTEMPTS market orders, or below the market minimum,
    the stop reason names what remains. Orders of ours that left the book with their fills not
    listed yet are waited for (CLOSE_WAIT_TURNS), then counted as filled, before the target is
    fixed, each for what the venue's record says it executed (`confirm_vanished`: a lookup that
    failed when it left the book is asked again, and an error here ends the turn rather than
    guess); so are placements whose answer was lost and that filled (`resolve_doubts` first). The
    close's fills (market level, by client id) never become inventory, however late they are
    listed. Only when the exchange position reaches the target are the cells emptied.
    """
    strategy._closing = reason
    strategy.book.resolve_doubts()      # a placement whose answer was lost may have filled: counted below
    strategy.book.cancel_all()
    strategy._sync_fills()
    strategy._refresh_position()
    if strategy._close_target is None:
        if abs(strategy.book.unlisted()) > EPS:
            strategy.book.confirm_vanished()    # what each such order really executed, asked again
        if abs(strategy.book.unlisted()) > EPS and strategy._close_waits < CLOSE_WAIT_TURNS:
            strategy._close_waits += 1      # orders of ours filled, their fills not listed yet:
            strategy.log(f"close: waiting for the fills of {len(strategy.book.vanished)} orders gone from the book")
            return                          # the grid's share is unknown until they are
        # the trader's own stays; orders of ours that left the book unlisted count as filled
        strategy._close_target = round(strategy.position - strategy.owned() - strategy.book.unlisted(), 10)
    remains = round(strategy.position - strategy._close_target, 10)
    for _ in range(CLOSE_ATTEMPTS):
        qty = floor_to(abs(remains), strategy.market.step_size)
        if qty < max(strategy.market.min_qty, EPS):
            break
        side = "sell" if remains > 0 else "buy"
        # reduceOnly when it only shrinks the account's position (the usual case); a grid short
        # beside a bigger manual long is closed by a buy that the venue sees as growing the long
        reduces = remains * strategy.position > 0 and qty <= abs(strategy.position) + EPS
        cid = client_ids.encode(strategy.instance_id, MARKET_LEVEL, client_ids.ROLE_CLOSE, int(time.time()))
        # killed before this turn commits, the next start goes on from here
        strategy.book.note_sending([cid], closing=strategy._closing, close_target=strategy._close_target)
        order = strategy.exchange.place_order(OrderRequest(strategy.params.symbol, side, qty, type="market",
                                                           post_only=False, reduce_only=reduces, client_id=cid))
        if order.filled_qty < qty - EPS:
            strategy._event("close_partial", f"market close {side} {qty:g} filled {order.filled_qty:g} "
                                             f"({order.status}): sending the rest")
        strategy._sync_fills()
        strategy._refresh_position()
        by_answer = round(remains + (order.filled_qty if side == "buy" else -order.filled_qty), 10)
        remains = min(by_answer, round(strategy.position - strategy._close_target, 10), key=abs)
    if abs(remains) <= EPS < abs(strategy.position - strategy._close_target):
        strategy.log("close: the answers say done, the exchange position does not yet: checking next turn")
        return
    strategy.book.clear_holdings()
    strategy._closing, strategy._close_target, strategy._close_waits = None, None, 0
    if abs(remains) > EPS:
        what = "long" if remains > 0 else "short"
        why = (f"below the market minimum {strategy.market.min_qty:g}" if abs(remains) < strategy.market.min_qty
               else f"after {CLOSE_ATTEMPTS} market orders")
        reason += (f"; close incomplete: {abs(remains):g} {strategy.params.symbol} {what} of the grid remains on "
                   f"the exchange ({why}; account position {strategy.position:g})")
    strategy._stop(reason)

