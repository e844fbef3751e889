"""What a grid saves in its store, and how a restart reads it back.

After every turn that changed them, the strategy saves its books (the cells' holdings and
orders, the inventory carried, the totals, the orders in doubt or gone) and a close in progress,
under the store's `grid_state` key `perp_grid`. A restart reads them back before it trades: the
range it trades (`choose_range`), then the books (`restore`). A state this build cannot read, with
fields a newer build added or simply damaged, raises StateUnreadable, and nothing is saved over it:
bot/main.py stops with exit 2 and cancels the instance's resting orders, because no order may trade
without its books. The strategy's turns and the books themselves live in perp_grid_strategy.py and
order_book.py; this module is only the saved form.
"""
from __future__ import annotations

import copy
from dataclasses import asdict, fields
from typing import TYPE_CHECKING, Callable

from strategies.book_records import Cell, OrderRef, Totals
from strategies.order_book import OrderBook

if TYPE_CHECKING:
    from strategies.perp_grid_strategy import PerpGridStrategy

STATE_KEY = "perp_grid"


class StateUnreadable(ValueError):
    """The saved books cannot be read: written by a newer build (fields this one does not know),
    or damaged. Nothing may be saved over them, and no order may trade without them."""


# ---- the strategy's state ---------------------------------------------------------------------
def load(strategy: PerpGridStrategy) -> dict | None:
    """The saved state, or None on a first start; StateUnreadable (its file named) when it
    cannot be read. Nothing here changes it: a state a newer build wrote stays for that build."""
    if strategy.store is None:
        return None
    try:
        saved = strategy.store.load_state(STATE_KEY)
        if saved is not None and not (isinstance(saved, dict) and isinstance(saved.get("grid"), dict)):
            raise StateUnreadable("it is damaged (not a grid state)")
    except ValueError as exc:               # json's errors; StateUnreadable
        raise unreadable(strategy, exc) from None
    return saved


def unreadable(strategy: PerpGridStrategy, exc: Exception) -> StateUnreadable:
    """The error a trader reads: why, and which file to move aside to start afresh."""
    reason = str(exc) if isinstance(exc, StateUnreadable) else f"it is damaged ({type(exc).__name__}: {exc})"
    where = getattr(strategy.store, "path", "the database")
    return StateUnreadable(f"the saved grid state in {where} cannot be read: {reason}. It was left as it is; "
                           f"run the build that wrote it, or move {where} aside to start this grid afresh")


def choose_range(strategy: PerpGridStrategy, saved: dict) -> None:
    """The range a restart trades: the effective one (set live) unless the trader edited the
    config file's range since the last start. Either way a log line says which."""
    try:
        live, config = saved.get("grid") or {}, strategy.params.grid_key()
        if saved.get("config_grid") is None or live == config:
            return
        if saved["config_grid"] == config:
            strategy.params = strategy.params.with_range(live["lower"], live["upper"])
            strategy.log(f"range {live['lower']}..{live['upper']} (set live) kept: the config file's range "
                         f"{config['lower']}..{config['upper']} is unchanged since the last start")
        else:
            strategy.log(f"range {config['lower']}..{config['upper']} of the config file used: it was edited "
                         f"since the last start (the grid traded {live.get('lower')}..{live.get('upper')})")
    except (KeyError, TypeError, ValueError) as exc:
        raise unreadable(strategy, exc) from None


def restore(strategy: PerpGridStrategy, saved: dict) -> None:
    """The strategy's books and its close in progress as saved."""
    try:
        restore_book(strategy.book, saved,
                     lambda: strategy.exchange.fetch_position(strategy.params.symbol).entry_price)
    except StateUnreadable as exc:
        raise unreadable(strategy, exc) from None
    strategy._closing = saved.get("closing")
    strategy._close_target = saved.get("close_target")


def save(strategy: PerpGridStrategy) -> None:
    """Write the state when it differs from the last one written (most turns change nothing)."""
    if strategy.store is None:
        return
    state = {"grid": strategy.params.grid_key(), "config_grid": strategy.config_params.grid_key(),
             **book_state(strategy.book), "closing": strategy._closing, "close_target": strategy._close_target}
    if state != strategy._saved:
        strategy.store.save_state(STATE_KEY, state)
        strategy._saved = copy.deepcopy(state)      # never aliases a live list


# ---- the books --------------------------------------------------------------------------------
def book_state(book: OrderBook) -> dict:
    return {"levels": list(book.levels), "carried": book.carried, "last_fill_ts": book.last_fill_ts,
            "totals": asdict(book.totals), "cells": [asdict(c) for c in book.cells],
            "grid_entry": book.grid_entry, "fills_from_ms": book.fills_from_ms, "vanished": dict(book.vanished),
            "settled": sorted(book.settled), "foreign": sorted(book.foreign),
            # a build before it ignores this key and keeps these ids foreign for good: safe
            "foreign_left": {str(cid): qty for cid, qty in sorted(book.foreign_left.items())},
            "gone_orders": dict(book.gone_orders), "in_doubt": sorted(book.in_doubt)}


def _gone_order(cid: int | None, index: int, left: float, opened: list | None = None) -> list:
    """A saved `gone_orders` entry, checked. One saved before entries said what an opening order
    opened has none: it is not handed to a new layout, as then."""
    if opened is not None:
        side, price = opened
        if side not in ("buy", "sell"):
            raise ValueError(f"gone order side {side!r}")
        opened = [side, float(price)]
    return [None if cid is None else int(cid), int(index), float(left), opened]


def restore_book(book: OrderBook, saved: dict, fallback_entry: Callable[[], float]) -> None:
    """The books as saved; `fallback_entry` (the account's entry) for a state saved before the
    grid kept its own. StateUnreadable when they cannot be read (the caller saves nothing then)."""
    try:
        book.touch_all()
        book.levels = saved["levels"]
        book.carried = saved["carried"]
        book.last_fill_ts = saved["last_fill_ts"]
        book.fills_from_ms = saved.get("fills_from_ms", 0)
        book.vanished = dict(saved.get("vanished", {}))
        book.settled = set(saved.get("settled", []))
        book.foreign = set(saved.get("foreign", []))
        # placements sent unheard (kept by a start tried again too): the start's reconcile learns their fate
        book.in_doubt |= {int(cid) for cid in saved.get("in_doubt", [])}
        book.foreign_left = {int(cid): float(qty) for cid, qty in saved.get("foreign_left", {}).items()}
        book.gone_orders = {str(oid): _gone_order(*gone) for oid, gone in saved.get("gone_orders", {}).items()}
        book.totals = Totals(**_known(Totals, saved["totals"], "totals"))
        book.refs_changed()
        book.cells = []
        for raw in saved["cells"]:
            refs = {k: _saved_ref(book, raw[k]) if raw.get(k) else None for k in ("open_order", "close_order")}
            book.cells.append(Cell(**{**_known(Cell, raw, "cell"), **refs}))
        book.grid_entry = saved["grid_entry"] if "grid_entry" in saved else fallback_entry()
    except StateUnreadable:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise StateUnreadable(f"it is damaged ({type(exc).__name__}: {exc})") from None


def _saved_ref(book: OrderBook, raw: dict) -> OrderRef:
    """An order ref as saved. One saved before `executed` existed has a single `filled`, which
    a reconcile may have set from the venue (pieces not listed yet included): it is taken as
    `executed`, and `filled` is read again from the fill ledger."""
    _known(OrderRef, raw, "order")
    if "executed" in raw:
        return OrderRef(**raw)
    return OrderRef(**{**raw, "filled": book._booked_of(raw["id"], raw["filled"]), "executed": raw["filled"]})


def _known(cls: type, raw: dict, what: str) -> dict:
    """`raw` as the fields of `cls`; StateUnreadable naming any field this build does not know."""
    unknown = sorted(set(raw) - {f.name for f in fields(cls)})
    if unknown:
        raise StateUnreadable(f"it has fields this build does not know ({what}: {', '.join(unknown)}): "
                              "a newer build wrote it")
    return raw
