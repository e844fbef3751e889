"""core/resume_digest.py: the digest `resume` prints, read from real bot_status.json files."""
from __future__ import annotations

import time

from core.bot_status import write_bot_status
from core.resume_digest import books_after, digest, saved_books

BOOKS = {"instance_id": "bp_sol_01", "symbol": "SOL_USDC_PERP", "quote": "USDC", "state": "trading",
         "position": 2.5, "realized_pnl": 10.0, "fill_count": 40}


def _publish(home, **changes) -> None:
    path = home / "logs" / "bp_sol_01" / "bot_status.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_bot_status(path, {**BOOKS, "updated_at": time.time(), **changes})


REC = {"instance_id": "bp_sol_01"}


def test_reconciled_books_after_the_resume_give_fills_position_and_realized(home):
    _publish(home)
    before = saved_books(home, [REC])
    since = time.time()
    _publish(home, position=1.0, realized_pnl=11.2, fill_count=43, updated_at=since + 1)
    assert digest(home, [REC], before, since, timeout=5) == \
        ["bp_sol_01: 3 fills booked on reconcile; position 2.5 -> 1 SOL_USDC_PERP; realized +1.20 USDC"]


def test_a_bot_that_only_says_waiting_or_never_publishes_is_books_not_published_yet(home):
    _publish(home)
    before = saved_books(home, [REC])
    since = time.time()
    assert books_after(home, [REC], since, timeout=0.3) == {"bp_sol_01": None}   # the stale file is not now
    _publish(home, state="waiting", position=None, fill_count=None, updated_at=since + 1)
    assert digest(home, [REC], before, since, timeout=0.3) == \
        ["bp_sol_01: books not published yet (position at the last save 2.5 SOL_USDC_PERP)"]


def test_an_instance_without_saved_books_says_so(home):
    _publish(home, updated_at=time.time() + 60)
    assert digest(home, [REC], {"bp_sol_01": None}, time.time(), timeout=0.3) == \
        ["bp_sol_01: no books were saved before it went down"]


def test_a_fill_count_that_went_down_is_shown_as_it_is_never_as_negative_fills(home):
    _publish(home)
    before = saved_books(home, [REC])
    since = time.time()
    _publish(home, fill_count=0, updated_at=since + 1)
    [line] = digest(home, [REC], before, since, timeout=5)
    assert line.startswith("bp_sol_01: fill count 40 -> 0 (books rebuilt); position 2.5 -> 2.5")
