"""daemon-manager: the one command line for a fleet of grid bots (start, stop, list, ...).

Runs as `python core/daemon_manager.py` from any directory (the repo root is put on sys.path
here) and as the console script `daemon-manager`. This file parses and dispatches; what each
command does lives in core/commands.py (kept out of this script, whose bytecode Python never
caches). `list` and `status` must stay fast enough for `watch -n 1`; nothing on that path imports
flask, ccxt, numpy or strategy code.
"""
from __future__ import annotations

import os
import sys

if __package__ in (None, ""):  # run as a script: make `core` importable from any cwd
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

import argparse

from core.commands import (UsageError, cmd_cleanup, cmd_info, cmd_list, cmd_restart, cmd_resume, cmd_start,
                           cmd_startup, cmd_stats, cmd_status, cmd_stop, cmd_stop_all, cmd_validate)
from core.exit_codes import EXIT_FAIL, EXIT_OK, EXIT_USAGE
from core.paths import project_home

# -- parser ----------------------------------------------------------------------------------
def _instance_args(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("-c", "--config", help="instance config file (relative to the home)")
    sp.add_argument("-i", "--instance-id", dest="instance_id", help="instance id (overrides the config's)")


def _start_args(sp: argparse.ArgumentParser) -> None:
    _instance_args(sp)
    sp.add_argument("-d", "--daemon", action="store_true", help="detach (double fork); default: run in the foreground")
    sp.add_argument("--fresh-db", action="store_true",
                    help="an instance that ran before may begin on a new database (its old one is missing)")


def _list_args(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--all", action="store_true", help="include stopped and exited instances")
    sp.add_argument("--json", action="store_true", help="JSON array for scripts")


def _cleanup_args(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--force", action="store_true", help="do not ask")


def _stop_all_args(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--keep-desired", action="store_true",
                    help="leave each desired state `running` (a shutdown: `resume` starts them at boot)")


def _startup_args(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--install", action="store_true", help="write and enable the units (root only)")


def _stats_args(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("-i", "--instance-id", dest="instance_id")
    sp.add_argument("--json", action="store_true")


def _info_args(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("id", help="instance id")


def _validate_args(sp: argparse.ArgumentParser) -> None:
    _instance_args(sp)
    sp.add_argument("-v", "--verbose", action="store_true", help="print each resolved config (secrets masked)")


# name -> (handler, help, arguments); one table, so `--help` and the fast path cannot disagree
COMMANDS = {
    "start": (cmd_start, "validate a config and start its supervised bot", _start_args),
    "stop": (cmd_stop, "stop an instance gracefully", _instance_args),
    "restart": (cmd_restart, "stop then start with the same config", _instance_args),
    "status": (cmd_status, "JSON status (exit 0 running, 3 not running, 4 unknown)", _instance_args),
    "list": (cmd_list, "one line per instance", _list_args),
    "cleanup": (cmd_cleanup, "forget records of dead instances", _cleanup_args),
    "stop-all": (cmd_stop_all, "stop every running instance in parallel", _stop_all_args),
    "stats": (cmd_stats, "CPU, memory, threads, uptime of daemons and bots", _stats_args),
    "info": (cmd_info, "every registry field of one instance, its web URL and token", _info_args),
    "resume": (cmd_resume, "start, in parallel, every instance that should run and does not (after a boot)",
               lambda sp: None),
    "startup": (cmd_startup, "print (or --install, as root) the systemd units that resume at boot", _startup_args),
    "validate": (cmd_validate, "check configs (all of config/active when none is named)", _validate_args),
}


# -- alerts: notify/ lives outside core's import path; loaded only when one of these runs ------
def _notify(name: str):
    def run(home, args: argparse.Namespace) -> int:
        from notify import cli
        return getattr(cli, name)(home, args)
    return run


def _notifier_args(sp: argparse.ArgumentParser) -> None:
    from notify.cli import notifier_args
    notifier_args(sp)


COMMANDS["notifier"] = (_notify("cmd_notifier"), "deliver alerts (logs/*/events.jsonl) to phones via Apprise", _notifier_args)
COMMANDS["notify-test"] = (_notify("cmd_notify_test"), "send a test alert to every configured URL", lambda sp: None)


class _Formatter(argparse.HelpFormatter):
    """argparse's formatter, told the width: asking shutil for it imports shutil, bz2 and lzma (2 ms)."""

    def __init__(self, prog: str) -> None:
        try:
            width = os.get_terminal_size().columns
        except OSError:
            width = 80
        super().__init__(prog, width=max(width - 2, 40))


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The CLI; with `only`, just that subcommand (building all ten costs `watch -n 1 list` 10 ms)."""
    p = argparse.ArgumentParser(prog="daemon-manager", description="Start, supervise, list and stop grid bot instances.",
                                formatter_class=_Formatter)
    p.add_argument("--home", help="project home (config/, logs/, database/); default $GRIDBOT_HOME or the repository")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (func, text, add_args) in COMMANDS.items():
        if only is None or name == only:
            sp = sub.add_parser(name, help=text, formatter_class=_Formatter)
            add_args(sp)
            sp.set_defaults(func=func)
    return p


def command_in(argv: list[str]) -> str | None:
    """The subcommand argv names, or None when it names none (or asks for the global help)."""
    rest = iter(argv)
    for token in rest:
        if token == "--home":
            next(rest, None)
        elif token in COMMANDS:
            return token
        elif not token.startswith("--home="):
            return None
    return None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # Everything the product creates (registry, locks, logs, databases) is its user's alone; the
    # supervisor and the bot inherit this mask.
    os.umask(0o077)
    parser = build_parser(only=command_in(argv))
    args = parser.parse_args(argv)
    home = project_home(args.home)
    if home.exists() and not home.is_dir():
        parser.error(f"--home {home}: not a directory (the home holds config/, logs/ and database/)")
    try:
        return args.func(home, args)
    except BrokenPipeError:  # `list | head`: the reader left; not an error worth a traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except UsageError as exc:
        parser.error(str(exc))
    except Exception as exc:  # a config named by -c that cannot be read, etc.
        from core.config_manager import ConfigError

        if isinstance(exc, ConfigError):
            print(str(exc), file=sys.stderr)
            return EXIT_USAGE
        if isinstance(exc, OSError):  # an unwritable home, a full disk: say which file, not a traceback
            print(f"error: {exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else ""), file=sys.stderr)
            return EXIT_FAIL
        raise
    return EXIT_FAIL


if __name__ == "__main__":
    sys.exit(main())
