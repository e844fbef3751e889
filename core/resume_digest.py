"""What happened while the fleet was down: the books each bot published before and after `resume`.

Every bot rewrites logs/{id}/bot_status.json each turn (core/bot_status.py). Before `resume`
starts an instance that file still holds the books of the last turn before the power loss; the
restarted bot reconciles with the exchange (booking the fills that happened while it was down)
before its first publish, so its first status newer than the resume holds the books now. The
digest compares the two, reading only these files: `resume` imports no trading code.
"""
from __future__ import annotations

import time
from pathlib import Path

from core.books import books_of

DIGEST_TIMEOUT = 60.0   # a bot that has not reconciled within a minute is reported, not waited for
POLL_S = 0.1
UNPUBLISHED = ("starting", "waiting")   # statuses written before the books were reconciled


def saved_books(home: Path, records: list[dict]) -> dict[str, dict | None]:
    """Each instance's books at its last save (read before it is started again)."""
    return {rec["instance_id"]: books_of(home, rec) for rec in records}


def books_after(home: Path, records: list[dict], since: float,
                timeout: float = DIGEST_TIMEOUT) -> dict[str, dict | None]:
    """Each instance's first reconciled books published after `since` (unix seconds), or None
    when none came within `timeout` (one deadline for the whole fleet: they restart in parallel)."""
    found: dict[str, dict | None] = {rec["instance_id"]: None for rec in records}
    deadline = time.monotonic() + timeout
    while True:
        for rec in records:
            if found[rec["instance_id"]] is None:
                status = books_of(home, rec)
                if _fresh(status, since):
                    found[rec["instance_id"]] = status
        if all(found.values()) or time.monotonic() >= deadline:
            return found
        time.sleep(POLL_S)


def _fresh(status: dict | None, since: float) -> bool:
    if not status or status.get("state") in UNPUBLISHED:
        return False
    try:
        return float(status.get("updated_at") or 0) > since
    except (TypeError, ValueError):
        return False


def _num(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _qty(value: object) -> str:
    number = _num(value)
    return "?" if number is None else f"{number:g}"


def digest_line(iid: str, before: dict | None, after: dict | None) -> str:
    """One line, e.g. `bp_sol_01: 3 fills booked on reconcile; position 2.5 -> 1 SOL_USDC_PERP;
    realized +1.20 USDC` (the fills and the realized PnL are what changed while it was down)."""
    if before is None:
        return f"{iid}: no books were saved before it went down"
    if after is None:
        where = f"{_qty(before.get('position'))} {before.get('symbol') or ''}".rstrip()
        return f"{iid}: books not published yet (position at the last save {where})"
    fills_then, fills_now = _num(before.get("fill_count")), _num(after.get("fill_count"))
    if fills_then is None or fills_now is None:
        fills = "? fills booked on reconcile"
    elif fills_now < fills_then:     # the books were rebuilt: a negative count would be a lie
        fills = f"fill count {fills_then:.0f} -> {fills_now:.0f} (books rebuilt)"
    else:
        fills = f"{fills_now - fills_then:.0f} fills booked on reconcile"
    parts = [fills,
             f"position {_qty(before.get('position'))} -> {_qty(after.get('position'))} "
             f"{after.get('symbol') or before.get('symbol') or ''}".rstrip()]
    then, now = _num(before.get("realized_pnl")), _num(after.get("realized_pnl"))
    if then is not None and now is not None:
        quote = f" {after['quote']}" if after.get("quote") else ""
        parts.append(f"realized {now - then:+.2f}{quote}")
    if after.get("state") == "stopped":
        parts.append(f"stopped: {after.get('message') or 'no reason given'}")
    return f"{iid}: " + "; ".join(parts)


def digest(home: Path, records: list[dict], before: dict[str, dict | None], since: float,
           timeout: float = DIGEST_TIMEOUT) -> list[str]:
    """The digest lines of the resumed instances (records; `before` from saved_books). One whose
    books were never saved has nothing to compare, so it is not waited for."""
    waited = books_after(home, [rec for rec in records if before.get(rec["instance_id"])], since, timeout)
    return [digest_line(iid, before.get(iid), waited.get(iid))
            for iid in sorted(rec["instance_id"] for rec in records)]
