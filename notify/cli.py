"""The two commands daemon_manager.py hands over to notify/: `notifier [-d]` and `notify-test`.

Imported only when one of them runs, so `list`, `status` and the supervisor never load Apprise.
"""
from __future__ import annotations

import argparse
import os
import socket
import sys
import time
from pathlib import Path

from core.events import TEST, new_event
from core.exit_codes import EXIT_FAIL, EXIT_OK, EXIT_USAGE
from core.masking import mask_url
from core.pidfile import AlreadyLocked, is_locked, read_pid
from core.environment import detach_with_allowlist
from core.notify_start import NOTIFY_ENV, notifier_dir
from notify.settings import Settings, SettingsError

NO_URLS = ("no notification URLs: set notify.urls in config/fleet.json, GRIDBOT_NOTIFY (comma-separated, "
           "environment or .env), or daemon_config.notify.urls in an instance config")


def cmd_notify_test(home: Path, args: argparse.Namespace) -> int:
    """Send a test message to every configured URL; one line per URL, masked; exit 1 if any failed."""
    from notify import deliver
    from notify.messages import render

    settings = Settings(home)
    try:
        urls = settings.every_url()
    except SettingsError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_USAGE
    if not urls:
        print(NO_URLS, file=sys.stderr)
        return EXIT_USAGE
    masker = settings.masker()
    title, body = render(new_event(TEST, "", {"host": socket.gethostname()}))
    failed = 0
    for url in urls:
        failure = deliver.send(url, title, body, masker)
        failed += failure is not None
        print(f"{'ok' if failure is None else 'FAILED':6} {mask_url(url)}" + (f": {failure}" if failure else ""))
    print(f"{len(urls) - failed} of {len(urls)} delivered")
    return EXIT_FAIL if failed else EXIT_OK


def cmd_notifier(home: Path, args: argparse.Namespace) -> int:
    """Run the fleet's notifier in the foreground, or (-d) detached; one per home."""
    from notify.notifier import Notifier

    pid_file = notifier_dir(home) / "notifier.pid"
    if is_locked(pid_file):
        print(f"notifier already running (pid {read_pid(pid_file)})")
        return EXIT_OK
    if args.daemon:  # no shell credential in a long-lived process (the .env is read from the home anyway)
        detach_with_allowlist(home, (NOTIFY_ENV,))
    notifier = Notifier(home, interval=args.interval, max_backoff=args.max_backoff)
    if not args.daemon:
        try:
            return notifier.run()
        except AlreadyLocked as exc:
            print(f"notifier already running (pid {exc.pid})")
            return EXIT_OK
    notifier_dir(home).mkdir(parents=True, exist_ok=True)
    if os.fork() == 0:  # child: new session, second fork, no terminal, then the loop; never returns
        code = EXIT_FAIL
        try:
            os.setsid()
            if os.fork() != 0:
                os._exit(EXIT_OK)
            out = os.open(notifier_dir(home) / "notifier.out", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
            os.dup2(out, 1)
            os.dup2(out, 2)
            code = notifier.run()
        except AlreadyLocked:
            code = EXIT_OK
        except BaseException:  # noqa: BLE001 - said in notifier.out; the CLI's code must not run twice
            import traceback

            traceback.print_exc()
        finally:
            os._exit(code)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if is_locked(pid_file):
            print(f"notifier running (pid {read_pid(pid_file)}); log: {notifier_dir(home) / 'notifier.log'}")
            return EXIT_OK
        time.sleep(0.05)
    print(f"notifier did not start; see {notifier_dir(home) / 'notifier.out'}", file=sys.stderr)
    return EXIT_FAIL


def notifier_args(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("-d", "--daemon", action="store_true", help="detach; default: run in the foreground")
    sp.add_argument("--interval", type=float, default=2.0, help="seconds between looks at the event files (default 2)")
    sp.add_argument("--max-backoff", type=float, default=300.0, dest="max_backoff",
                    help="longest wait between retries of a failing URL, seconds (default 300)")
