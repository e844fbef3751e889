"""`list`: one line per instance with its books (position, PnL, grid profit, equity) and a fleet
total per quote currency; `--json` carries the same per-instance fields.

Run by `watch -n 1`, so it reads only the registry and each bot's small published status file:
no psutil, no config validation, no trading code; and the forms `watch` uses are answered before
argparse and the other commands load (plain_list). Nor pathlib or json (only --json needs json):
with re, enum and urllib.parse they were half of a `list` at 50 instances. Colours only on a
terminal, never with NO_COLOR.
"""
from __future__ import annotations

import os
import sys

from core.books import BOOK_FIELDS, books_of, fleet_totals, shown_state
from core.exit_codes import EXIT_FAIL, EXIT_OK
from core.formats import dash, fmt_uptime, rel
from core.home import home_dir
from core.instance_manager import InstanceRegistry

COLUMNS = ("ID", "STATE", "PID", "BOT", "UPTIME", "RESTARTS", "CPU%", "MEM(MB)", "PORT", "SYMBOL", "POSITION",
           "UPNL", "RPNL", "GRID", "EQUITY", "CONFIG")
JSON_KEYS = ("instance_id", "pid", "bot_pid", "web_port", "restart_count", "uptime_s", "cpu_percent", "memory_mb",
             "config_file", "exit_code", "last_error", "cpu_warning")
GREEN, YELLOW, RED, RESET = "\x1b[32m", "\x1b[33m", "\x1b[31m", "\x1b[0m"
STATE_COLOURS = {"running": GREEN, "waiting": YELLOW, "starting": YELLOW, "backoff": YELLOW, "stopping": YELLOW,
                 "fatal": RED, "dead": RED, "unresponsive": RED, "orphaned": RED}
PNL_COLUMNS = ("UPNL", "RPNL", "GRID")


def use_colour() -> bool:
    """On a terminal, unless NO_COLOR is set to anything non-empty (no-color.org)."""
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR")


def signed(value: float | None) -> str:
    return "-" if value is None else f"{value:+.2f}"


def money(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def qty(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def colour_of(column: str, text: str) -> str | None:
    if column == "STATE":
        return STATE_COLOURS.get(text.rstrip("!"))
    if column in PNL_COLUMNS and text not in ("-", "+0.00", "-0.00"):
        return GREEN if text.startswith("+") else RED
    return None


def render(rows: list[tuple], header: tuple, colour: bool) -> str:
    """Columns padded on the plain text, then coloured, so escape codes never skew the alignment."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = []
    for n, row in enumerate([header, *rows]):
        cells = []
        for column, cell, width in zip(header, row, widths):
            text = str(cell).ljust(width)
            code = colour_of(column, str(cell)) if colour and n else None
            cells.append(f"{code}{text}{RESET}" if code else text)
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def cmd_list(home: str | os.PathLike, args: argparse.Namespace) -> int:  # noqa: F821
    return show_list(home, show_all=args.all, as_json=args.json)


def show_list(home: str | os.PathLike, show_all: bool, as_json: bool) -> int:
    """`list [--all] [--json]`, however the command line was parsed."""
    registry = InstanceRegistry(home)
    recs = registry.list_instances(include_dead=True)
    notes = registry.end_orphans(recs, "list")  # a bot whose supervisor died must not trade on
    if not show_all:
        recs = [r for r in recs if r["alive"] or r["needs_attention"]]
    entries = []
    for r in recs:
        books = books_of(home, r) or {}
        entry = {**{k: r.get(k) for k in JSON_KEYS}, "status": shown_state(r, books or None),
                 "pid": r.get("pid") if r["alive"] else None,
                 "bot_pid": r.get("bot_pid") if r["bot_alive"] else None,
                 **{k: books.get(k) for k in BOOK_FIELDS}}
        entry["symbol"] = entry["symbol"] or r.get("symbol")
        entries.append((r, entry))
    if as_json:
        import json

        print(json.dumps([e for _, e in entries], indent=2))
        return EXIT_OK
    rows = []
    for r, e in entries:
        live_bot = r["bot_alive"]
        rows.append((
            r["instance_id"], e["status"] + ("!" if r.get("cpu_warning") and r["alive"] else ""),
            dash(e["pid"]), dash(e["bot_pid"]), fmt_uptime(r["uptime_s"]), r.get("restart_count", 0),
            dash(r.get("cpu_percent")) if live_bot else "-", dash(r.get("memory_mb")) if live_bot else "-",
            dash(r.get("web_port")), dash(e["symbol"]), qty(e["position"]), signed(e["unrealized_pnl"]),
            signed(e["realized_pnl"]), signed(e["grid_profit"]), money(e["equity"]), rel(home, r.get("config_file")),
        ))
    if rows:
        print(render(rows, COLUMNS, use_colour()))
    else:
        print("no instances" + ("" if show_all else " (list --all shows stopped ones)"))
    for quote, sums in fleet_totals([e for _, e in entries]).items():
        print(f"fleet {quote}: unrealized {signed(sums['unrealized_pnl'])}  realized {signed(sums['realized_pnl'])}  "
              f"grid {signed(sums['grid_profit'])}  equity {money(sums['equity'])}")
    running = sum(1 for r in recs if r["alive"])
    attention = sum(1 for r in recs if r["needs_attention"])
    cpu = sum(r.get("cpu_percent") or 0 for r in recs if r["bot_alive"])
    mem = sum(r.get("memory_mb") or 0 for r in recs if r["bot_alive"])
    print(f"total: {len(recs)} shown, {running} live, {attention} need attention, CPU {cpu:.1f}%, MEM {mem:.1f} MB")
    for note in notes:
        print(note)
    return EXIT_OK


def plain_list(argv: list[str]) -> int | None:
    """`[--home H] list [--all] [--json]` without argparse and without loading any other command
    (importing argparse with its gettext and locale lookups, building the parser and importing
    the other commands' modules cost `list` about a tenth of its time at 50 instances). Returns
    the exit code, or None for any other command line (help, a typo, an abbreviation, a repeated
    flag, a home that is not a directory): core/daemon_manager.py then parses it as usual, so the
    two can never disagree on what a command line means."""
    home, rest = None, argv
    if argv[:1] == ["--home"] and len(argv) > 1 and not argv[1].startswith("-"):
        home, rest = argv[1], argv[2:]
    elif argv[:1] and argv[0].startswith("--home="):
        home, rest = argv[0][len("--home="):], argv[1:]
    flags = rest[1:]
    if rest[:1] != ["list"] or len(set(flags)) != len(flags) or not set(flags) <= {"--all", "--json"}:
        return None
    os.umask(0o077)  # as main(): what list writes (an orphan's end, an event) is its user's alone
    path = home_dir(home)
    if os.path.exists(path) and not os.path.isdir(path):
        return None
    try:
        return show_list(path, show_all="--all" in flags, as_json="--json" in flags)
    except BrokenPipeError:  # `list | head`: the reader left
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except OSError as exc:  # an unreadable home: say which file, not a traceback
        print(f"error: {exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else ""), file=sys.stderr)
        return EXIT_FAIL
