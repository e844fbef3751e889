"""What each daemon-manager command does and prints; core/daemon_manager.py parses and dispatches.

Kept apart from the entry point because Python never caches the bytecode of the script it runs:
every `watch -n 1 list` would recompile all of this (~3 ms) if it lived in daemon_manager.py.
`list` and `status` import only the registry; the heavy paths (config validation, forking) are
imported by the commands that need them. Nothing here imports flask, ccxt, numpy or strategies.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from core.exit_codes import EXIT_FAIL, EXIT_OK, EXIT_UNKNOWN, EXIT_USAGE
from core.formats import dash, fmt_uptime, rel
from core.instance_manager import InstanceManager, InstanceRegistry
from core.targets import UsageError, instance_id, recorded_config


TIMESTAMP_FIELDS = ("bot_create_time", "pid_create_time", "registered_at", "started_at", "last_updated")


def table(rows: list[tuple], header: tuple) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in [header, *rows])


# -- commands (list lives in core/list_command.py) ------------------------------------------
def _daemon(home: Path, args: argparse.Namespace) -> TradingBotDaemon:  # noqa: F821 (imported lazily)
    from core.daemon import TradingBotDaemon

    if not getattr(args, "config", None) and not getattr(args, "instance_id", None):
        raise UsageError("name an instance: ID, -i ID or -c CONFIG")
    return TradingBotDaemon(home, args.config, args.instance_id)


def _report(outcome) -> int:
    """Print what a command did (errors to stderr) and return its exit code."""
    print(outcome.message, file=sys.stdout if outcome.code == EXIT_OK else sys.stderr)
    return outcome.code


def warn_about_dotenv(home: Path) -> None:
    """Say so when the home's .env, where the keys live, is open to other local users."""
    from core.environment import dotenv_warning

    warning = dotenv_warning(home)
    if warning:
        print(warning, file=sys.stderr)


def prepare_start(home: Path) -> None:
    """Before anything starts: the .env warning, and logs/ and database/ private (an older build
    left them open)."""
    from core.home_privacy import close_open_dirs

    warn_about_dotenv(home)
    for said in close_open_dirs(home):
        print(said, file=sys.stderr)


def cmd_start(home: Path, args: argparse.Namespace) -> int:
    if not args.config:  # `start ID`: a known instance starts from its recorded config
        args.config = recorded_config(home, instance_id(home, args))
        if args.config is None:
            print(f"{args.instance_id}: unknown instance (no record, no config in config/active)", file=sys.stderr)
            return EXIT_UNKNOWN
    prepare_start(home)
    code = _report(_daemon(home, args).start(daemonize=args.daemon, fresh_db=getattr(args, "fresh_db", False)))
    if code == EXIT_OK and args.daemon:  # alerts configured: the fleet's notifier runs too (a process, not an import)
        from core.notify_start import ensure_notifier

        if said := ensure_notifier(home, args.config):
            print(said)
    return code


def cmd_stop(home: Path, args: argparse.Namespace) -> int:
    return _report(_daemon(home, args).stop())


def cmd_restart(home: Path, args: argparse.Namespace) -> int:
    prepare_start(home)
    return _report(_daemon(home, args).restart())


def cmd_status(home: Path, args: argparse.Namespace) -> int:
    code, out = _daemon(home, args).status()
    rec = InstanceRegistry(home).get(out["instance_id"])
    if rec is not None:  # the bot's own word: its books, and `waiting` with the reason
        from core.books import books_of, shown_state

        out["books"] = books_of(home, rec)
        out["state"] = shown_state(rec, out["books"])
        out["waiting_reason"] = out["books"]["message"] if out["state"] == "waiting" else None
    print(json.dumps(out, indent=2, ensure_ascii=False))
    return code


def cmd_stop_all(home: Path, args: argparse.Namespace) -> int:
    """Stop every instance whose supervisor lives (found by record or by its socket lock, so no
    lost file hides one), end orphaned bots, then check: exit 1 naming any that still runs."""
    from core.daemon import stop_many
    from core.pidfile import holder_pid
    from core.states import DESIRED_STOPPED

    registry = InstanceRegistry(home)
    recs = registry.list_instances(include_dead=True)
    t0 = time.monotonic()
    for line in registry.end_orphans(recs, "stop-all"):
        print(line)
    live = [r for r in recs if r["alive"] or holder_pid(home, r["instance_id"])]
    outcomes = stop_many(registry, live)
    for o in outcomes:
        print(o.message)
    still = [(r["instance_id"], pid) for r in live if (pid := holder_pid(home, r["instance_id"]))]
    for iid, pid in still:
        print(f"{iid}: could not be stopped (its supervisor lock is still held, by pid {pid})", file=sys.stderr)
    if not getattr(args, "keep_desired", False):
        for r in live:
            try:
                registry.update(r["instance_id"], desired_state=DESIRED_STOPPED)
            except OSError as exc:
                print(f"{r['instance_id']}: cannot record the stop ({exc.strerror or exc})", file=sys.stderr)
    print(f"stopped {len(live) - len(still)} of {len(live)} instances in {time.monotonic() - t0:.1f}s")
    return EXIT_FAIL if still else EXIT_OK


def cmd_cleanup(home: Path, args: argparse.Namespace) -> int:
    from core.pidfile import holder_pid

    registry = InstanceRegistry(home)
    recs = registry.list_instances(include_dead=True)
    for note in registry.end_orphans(recs, "cleanup"):
        print(note)
    dead = [r for r in recs if not r["alive"] and not r["bot_alive"] and holder_pid(home, r["instance_id"]) is None]
    if not dead:
        print("nothing to clean up: no dead instance records")
        return EXIT_OK
    print("dead instance records: " + ", ".join(f"{r['instance_id']} ({r['state']})" for r in dead))
    if not args.force and sys.stdin.isatty():
        if input(f"remove {len(dead)} record(s)? [y/N] ").strip().lower() not in ("y", "yes"):
            print("nothing removed")
            return EXIT_FAIL
    print(f"removed {registry.cleanup_dead_instances()} dead instance record(s)")
    return EXIT_OK


def cmd_stats(home: Path, args: argparse.Namespace) -> int:
    manager = InstanceManager(home)
    if args.instance_id or args.config:
        iid = instance_id(home, args)
        one = manager.get_instance_stats(iid)
        if one is None:
            print(f"{iid}: unknown instance", file=sys.stderr)
            return EXIT_UNKNOWN
        stats = [one]
    else:
        stats = manager.get_all_stats()
    if args.json:
        print(json.dumps(stats, indent=2))
        return EXIT_OK
    header = ("ID", "STATE", "RESTARTS", "DAEMON PID", "D.CPU%", "D.MEM(MB)", "BOT PID", "B.CPU%", "B.MEM(MB)",
              "B.THREADS", "B.UPTIME")
    rows = []
    for s in stats:
        d, b = s["daemon"] or {}, s["bot"] or {}
        rows.append((s["instance_id"], s["state"], s["restart_count"], dash(d.get("pid")), dash(d.get("cpu_percent")),
                     dash(d.get("memory_mb")), dash(b.get("pid")), dash(b.get("cpu_percent")),
                     dash(b.get("memory_mb")), dash(b.get("threads")), fmt_uptime(b.get("uptime_s"))))
    print(table(rows, header) if rows else "no instances")
    return EXIT_OK


def cmd_info(home: Path, args: argparse.Namespace) -> int:
    from core.paths import InstancePaths
    from core.web_token import UnsafeToken, read_token

    iid = instance_id(home, args)
    rec = InstanceRegistry(home).get(iid)
    if rec is None:
        print(f"{iid}: unknown instance", file=sys.stderr)
        return EXIT_UNKNOWN
    paths = InstancePaths.for_instance(home, iid, rec.get("log_dir"))
    info = {k: (time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(v)) if k in TIMESTAMP_FIELDS and v else v)
            for k, v in sorted(rec.items())}
    try:
        info["web_token"] = read_token(paths.web_token)
    except (UnsafeToken, OSError) as exc:
        info["web_token"] = f"(none: {exc})"
    info["url"] = f"http://127.0.0.1:{rec['web_port']}/" if rec.get("web_port") else None
    info["logs"] = str(paths.dated_dir())
    width = max(len(k) for k in info)
    for k, v in info.items():
        print(f"{k.ljust(width)}  {dash(v)}")
    return EXIT_OK


def cmd_validate(home: Path, args: argparse.Namespace) -> int:
    from core.config_manager import ConfigError, ConfigManager
    from core.conflicts import account_conflicts, conflicts, live_records
    from core.daemon import preflight

    cm = ConfigManager(home)
    warn_about_dotenv(home)
    if args.config:
        targets = [(args.config, args.instance_id)]
    elif args.instance_id:
        rec = InstanceRegistry(home).get(args.instance_id)
        path = (rec or {}).get("config_file") or cm.find_active(args.instance_id)
        if not path:
            print(f"{args.instance_id}: unknown instance (no registry record, no config in {cm.active_dir})",
                  file=sys.stderr)
            return EXIT_UNKNOWN
        targets = [(path, args.instance_id)]
    else:
        targets = [(p, None) for p in cm.list_active()]
        if not targets:
            print(f"no configs in {rel(home, str(cm.active_dir))}")
            return EXIT_OK
    bad = 0
    for path, iid in targets:
        shown = rel(home, str(cm.resolve_path(path)))
        try:
            cfg = cm.load(path, instance_id=iid)
            problems = preflight(cfg, home) or []  # the bot's own check: grid against the market, margin, keys
            problems += conflicts(cfg, live_records(InstanceRegistry(home).load()))  # what `start` would refuse
            problems += account_conflicts(cfg, home)
            if problems:
                raise ConfigError(problems)
        except ConfigError as exc:
            bad += 1
            print(f"INVALID  {shown}\n  " + "\n  ".join(exc.errors))
            continue
        print(f"OK       {shown}  ({cfg.instance_id}: {cfg.metadata['exchange']} {cfg.metadata['symbol']})")
        if args.verbose:
            print("  " + json.dumps(cfg.masked(), indent=2).replace("\n", "\n  "))
    print(f"{len(targets) - bad} valid, {bad} invalid")
    return EXIT_USAGE if bad else EXIT_OK


def cmd_resume(home: Path, args: argparse.Namespace) -> int:
    from core.boot import resume

    return resume(home)


def cmd_startup(home: Path, args: argparse.Namespace) -> int:
    from core.boot import startup

    return startup(home, install=args.install)
