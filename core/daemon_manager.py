"""daemon-manager: the one command line for a fleet of grid bots (start, stop, list, ...).

Runs as `python core/daemon_manager.py` from any directory (the repo root is put on sys.path
here) and as the console script `daemon-manager`. This file parses and dispatches; what each
command does lives in core/commands.py, list_command.py, logs_command.py and fleet_commands.py
(kept out of this script, whose bytecode Python never caches). `list` and `status` must stay fast enough for `watch -n 1`; nothing on that path imports
flask, ccxt, numpy or strategy code.
"""
from __future__ import annotations

import os
import sys

if __package__ in (None, ""):  # run as a script: make `core` importable from any cwd
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

if __name__ == "__main__" and "list" in sys.argv:  # `watch -n 1 list` is answered before argparse loads
    from core.list_command import plain_list  # (plain_list answers only a command line naming `list`)

    if (code := plain_list(sys.argv[1:])) is not None:
        sys.exit(code)

import argparse

from core.commands import (cmd_cleanup, cmd_info, cmd_restart, cmd_resume, cmd_start, cmd_startup, cmd_stats,
                           cmd_status, cmd_stop, cmd_stop_all, cmd_validate)
from core.exit_codes import EXIT_FAIL, EXIT_OK, EXIT_USAGE
from core.fleet_commands import cmd_archive, cmd_cleanup_one, cmd_new, cmd_restart_all, cmd_start_all
from core.paths import project_home
from core.targets import UsageError, merge_bare_id


def cmd_list(home, args: argparse.Namespace) -> int:
    """`list` as argparse parsed it; its module (books, formats) is not loaded for other commands."""
    from core.list_command import cmd_list as run

    return run(home, args)


def cmd_logs(home, args: argparse.Namespace) -> int:
    from core.logs_command import cmd_logs as run

    return run(home, args)


# -- parser ----------------------------------------------------------------------------------
def _instance_args(sp: argparse.ArgumentParser) -> None:
    """The one way every instance command names its instance: ID, -i ID or -c FILE."""
    sp.add_argument("id", nargs="?", metavar="ID", help="instance id (same as -i ID)")
    sp.add_argument("-c", "--config", help="instance config file (relative to the home)")
    sp.add_argument("-i", "--instance-id", dest="instance_id", help="instance id (overrides the config's)")


def _start_args(sp: argparse.ArgumentParser) -> None:
    _instance_args(sp)
    sp.add_argument("-d", "--daemon", action="store_true", help="detach (a new session); default: run in the foreground")
    sp.add_argument("--fresh-db", action="store_true",
                    help="an instance that ran before may begin on a new database (its old one is missing)")


def _list_args(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--all", action="store_true", help="include stopped and exited instances")
    sp.add_argument("--json", action="store_true", help="JSON array for scripts")


def _cleanup_args(sp: argparse.ArgumentParser) -> None:
    _instance_args(sp)
    sp.add_argument("--force", action="store_true", help="do not ask")


def _stop_all_args(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--keep-desired", action="store_true",
                    help="leave each desired state `running` (a shutdown: `resume` starts them at boot)")


def _startup_args(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--install", action="store_true", help="write and enable the units (root only)")


def _stats_args(sp: argparse.ArgumentParser) -> None:
    _instance_args(sp)
    sp.add_argument("--json", action="store_true")


def _validate_args(sp: argparse.ArgumentParser) -> None:
    _instance_args(sp)
    sp.add_argument("-v", "--verbose", action="store_true", help="print each resolved config (secrets masked)")


def _reload(home, args: argparse.Namespace) -> int:
    from core.reload import cmd_reload  # imported only by this command: `list` stays fast

    return cmd_reload(home, args)


def _id_only(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("id", metavar="ID", help="instance id")


def _new_args(sp: argparse.ArgumentParser) -> None:
    _id_only(sp)
    sp.add_argument("--template", required=True, help="a template in config/templates (name without .json)")
    sp.add_argument("--symbol")
    sp.add_argument("--exchange")
    sp.add_argument("--lower", type=float, help="grid_lower_price")
    sp.add_argument("--upper", type=float, help="grid_upper_price")
    sp.add_argument("--grid-num", type=int)
    sp.add_argument("--quantity", type=float)
    sp.add_argument("--max-position", type=float)
    sp.add_argument("--port", type=int, help="web_port")


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative")
    return value


def _logs_args(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("ids", nargs="*", metavar="ID", help="instance ids (default: every live instance)")
    sp.add_argument("-i", "--instance-id", dest="instance_id", action="append", help="an instance id (repeatable)")
    sp.add_argument("-c", "--config", help="the instance of this config file")
    sp.add_argument("-f", "--follow", action="store_true", help="keep printing new lines (across rotation and days)")
    sp.add_argument("-n", "--lines", type=_non_negative, default=20, help="how many last lines (default 20)")
    which = sp.add_mutually_exclusive_group()
    which.add_argument("--stderr", action="store_true", help="the bot's stderr instead of its stdout")
    which.add_argument("--daemon", action="store_true", help="the supervisor's own log")
    which.add_argument("--all-streams", action="store_true", help="stdout, stderr and the supervisor's log")


def _cleanup(home, args: argparse.Namespace) -> int:
    """`cleanup` forgets every dead record; `cleanup ID` just that one."""
    return (cmd_cleanup_one if args.instance_id or args.config else cmd_cleanup)(home, args)


def _nothing(sp: argparse.ArgumentParser) -> None:
    """A command without arguments."""


# name -> (handler, help, arguments); one table, so `--help` and the fast path cannot disagree
COMMANDS = {
    "start": (cmd_start, "validate a config and start its supervised bot (ID: from its recorded config)", _start_args),
    "stop": (cmd_stop, "stop an instance gracefully", _instance_args),
    "restart": (cmd_restart, "stop then start with the same config", _instance_args),
    "status": (cmd_status, "JSON status (exit 0 running, 3 not running, 4 unknown)", _instance_args),
    "list": (cmd_list, "one line per instance", _list_args),
    "cleanup": (_cleanup, "forget records of dead instances (or of one: cleanup ID)", _cleanup_args),
    "start-all": (cmd_start_all, "start every config in config/active that is not running", _nothing),
    "stop-all": (cmd_stop_all, "stop every running instance in parallel", _stop_all_args),
    "restart-all": (cmd_restart_all, "stop every running instance, then start each again", _nothing),
    "logs": (cmd_logs, "last lines of instances' output; -f follows across rotation and days", _logs_args),
    "stats": (cmd_stats, "CPU, memory, threads, uptime of daemons and bots", _stats_args),
    "info": (cmd_info, "every registry field of one instance, its web URL and token", _instance_args),
    "reload": (_reload, "apply an edited config to a running instance without a restart", _instance_args),
    "resume": (cmd_resume, "start, in parallel, every instance that should run and does not (after a boot)",
               _nothing),
    "startup": (cmd_startup, "print (or --install, as root) the systemd units that resume at boot", _startup_args),
    "validate": (cmd_validate, "check configs (all of config/active when none is named)", _validate_args),
    "new": (cmd_new, "write config/active/ID.json from a template, only if it validates", _new_args),
    "archive": (cmd_archive, "move a stopped instance's config to config/archived", _id_only),
}
# commands that act on one named instance: a usage error when none is named
NEEDS_INSTANCE = ("stop", "restart", "status", "info", "reload")


# -- dashboard: its own package (Flask), imported only when this command runs -----------------
def _dashboard(home, args: argparse.Namespace) -> int:
    from dashboard.serve import main as serve_dashboard

    return serve_dashboard(home, args)


def _dashboard_args(sp: argparse.ArgumentParser) -> None:
    from dashboard.serve import add_arguments

    add_arguments(sp)


COMMANDS["dashboard"] = (_dashboard, "one web page for the fleet, each bot's page at /bot/<id>/", _dashboard_args)
# -- end dashboard -----------------------------------------------------------------------------


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
            sp.set_defaults(func=func, subparser=sp)
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
    args, extra = parser.parse_known_args(argv)
    if extra:  # argparse would blame the top-level parser; the subcommand's usage is the useful one
        args.subparser.error(f"unrecognized arguments: {' '.join(extra)}")
    home = project_home(args.home)
    if home.exists() and not home.is_dir():
        parser.error(f"--home {home}: not a directory (the home holds config/, logs/ and database/)")
    try:
        merge_bare_id(args)
        if args.command in NEEDS_INSTANCE and not (args.instance_id or args.config):
            raise UsageError("name an instance: ID, -i ID or -c CONFIG")
        return args.func(home, args)
    except BrokenPipeError:  # `list | head`: the reader left; not an error worth a traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except UsageError as exc:
        args.subparser.error(str(exc))
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
