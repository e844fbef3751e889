"""One short, phone-readable message per event: what happened, to which instance and symbol, what to run.

As in freqtrade's rpc layer, every channel gets the same title and body; Apprise only formats it
for Telegram, e-mail, JSON and the rest. Text from the event (stop reasons, stderr) was masked by
the supervisor; the notifier masks the finished message again before it leaves.
"""
from __future__ import annotations

import time

from core import events as ev

BODY_MAX = 700  # a phone notification shows a few lines; the rest is in `status` and the logs
DM = "daemon-manager"


def _minutes(seconds: object) -> str:
    try:
        return f"{float(seconds) / 60:.0f} min"
    except (TypeError, ValueError):
        return "a while"


def _fig(value: object, signed: bool = False) -> str:
    """A number as a trader reads it on a phone: 1234.5, +3.2; '-' when unknown."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return "-"
    text = f"{value:+,.2f}" if signed else f"{value:,.2f}"
    return text[:-3] if text.endswith(".00") else text


def _short(text: object, limit: int = 200) -> str:
    s = " ".join(str(text or "").split())
    return s if len(s) <= limit else s[: limit - 1] + "…"


def render(event: dict, symbol: str = "", config: str = "") -> tuple[str, str]:
    """(title, body) for one event; symbol and config (relative to the home) come from its instance."""
    kind, iid, p = event["kind"], event.get("instance", "?"), event.get("payload") or {}
    who = f"{iid} {symbol}".strip()
    start = f"{DM} start -c {config} -d" if config else f"{DM} start -i {iid} -d"
    status = f"{DM} status -i {iid}"
    when = time.strftime("%H:%M UTC", time.gmtime(float(event.get("time") or time.time())))
    if kind == ev.FATAL:
        tail = [line for line in p.get("stderr_tail") or [] if line.strip()]
        title, lines = f"FATAL {who}", [f"Gave up at {when}: {_short(p.get('reason'), 300)}"]
        lines += [f"stderr: {_short(tail[-1])}"] if tail else []
        lines += [f"Check: {status}", f"Then: {start}"]
    elif kind == ev.EXITED:
        verb = "Stopped" if p.get("state") == "stopped" else "Exited"
        title, lines = f"STOPPED {who}", [f"{verb} at {when}: {_short(p.get('stop_reason'), 300)}",
                                          "Check the position and orders on the exchange.", f"Restart: {start}"]
    elif kind == ev.RESTART_LOOP:
        title = f"RESTART LOOP {who}"
        lines = [f"{p.get('restarts', '?')} restarts in {_minutes(p.get('window_s', 600))}; last: {_short(p.get('last'))}",
                 f"Check: {status}"]
    elif kind in (ev.MEMORY_RESTART, ev.HANG_RESTART):
        what = "memory limit" if kind == ev.MEMORY_RESTART else "hung loop"
        title, lines = f"RESTARTED {who} ({what})", [f"At {when}: {_short(p.get('reason'))}", f"Check: {status}"]
    elif kind == ev.UNRESPONSIVE:
        title = f"UNRESPONSIVE {who}"
        lines = [f"Its supervisor stopped checking in at {when}: {_short(p.get('reason'))}",
                 f"Check: {status}", f"Then: {DM} restart -i {iid}"]
    elif kind == ev.ORPHAN_ENDED:
        title, lines = f"ORPHAN ENDED {who}", [f"A bot left without its supervisor was ended: {_short(p.get('reason'))}",
                                               f"Restart: {start}"]
    elif kind == ev.WAITING:
        title = f"WAITING {who}"
        lines = [f"Exchange unreachable for {_minutes(p.get('waited_s'))}: {_short(p.get('message'))}",
                 "No new orders until it is back.", f"Check: {status}"]
    elif kind == ev.TRADING:
        title, lines = f"TRADING {who}", [f"Back to trading at {when} after {_minutes(p.get('waited_s'))} of waiting."]
    elif kind == ev.RESUMED:
        failed = p.get("failed") or {}
        title = "FLEET RESUMED" + (f": {len(failed)} failed" if failed else "")
        lines = [f"Started: {', '.join(p.get('started') or []) or 'none'}"]
        lines += [f"Failed: {iid_}: {_short(why, 80)}" for iid_, why in list(failed.items())[:5]]
        down = p.get("digest") or []                     # what happened while the fleet was down
        lines += [_short(line, 120) for line in down[:5]] + ([f"... and {len(down) - 5} more"] if len(down) > 5 else [])
        lines += [f"Check: {DM} list"]
    elif kind == ev.FILL:
        title = f"FILL {who}"
        lines = [f"{str(p.get('side', '')).upper()} {p.get('qty')} @ {p.get('price')}"]
    elif kind == ev.DAILY_SUMMARY and iid == ev.FLEET:
        title = f"DAILY fleet: {p.get('instances', 0):.0f} instances"
        lines = [f"PnL {_fig(p.get('realized_pnl'))} ({_fig(p.get('pnl_today'), True)} today)",
                 f"Grid profit {_fig(p.get('grid_profit'))}, equity {_fig(p.get('equity'))}",
                 f"Fills {_fig(p.get('fill_count'))} ({_fig(p.get('fills_today'), True)} today)", f"See: {DM} list"]
    elif kind == ev.DAILY_SUMMARY:
        quote = f" {p['quote']}" if p.get("quote") else ""
        title = f"DAILY {who}"
        lines = [f"PnL {_fig(p.get('realized_pnl'))}{quote} ({_fig(p.get('realized_pnl_today'), True)} today)",
                 f"Grid profit {_fig(p.get('grid_profit'))}{quote}, equity {_fig(p.get('equity'))}{quote}",
                 f"Fills {_fig(p.get('fill_count'))} ({_fig(p.get('fill_count_today'), True)} today), "
                 f"position {p['position'] if p.get('position') is not None else '-'}, {p.get('state') or 'state unknown'}"]
    elif kind in (ev.RELOADED, ev.RELOAD_FAILED):
        ok = kind == ev.RELOADED
        title = f"{'RELOADED' if ok else 'RELOAD FAILED'} {who}"
        lines = [f"{'Applied' if ok else 'Nothing applied'} at {when}: {_short(p.get('reason') or p.get('message'))}"]
        lines += [_short(change, 100) for change in (p.get("changes") or [])[:5]] + [f"Check: {status}"]
    elif kind == ev.TEST:
        title, lines = "gridbot alerts: test", [f"Test from {p.get('host', 'the fleet')} at {when}: alerts reach this channel."]
    else:
        title, lines = f"{kind.upper()} {who}", [_short(p)]
    body = "\n".join(lines)
    return title, body if len(body) <= BODY_MAX else body[: BODY_MAX - 1] + "…"
