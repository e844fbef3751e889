#!/usr/bin/env python3
"""The bot process: args + config -> exchange + strategy + database + web page, and the loop.

This file is the entry point only; the bot lives in bot/ (args, wiring, runtime, output, loop,
modes, main), one seam per module.

Started by the supervisor as `python run.py --config /abs/config.json` with INSTANCE_ID, DB_PATH,
WEB_PORT, LOG_DIR (and the config's own exchange keys) in the environment, or by hand. Exit codes
(docs/internals.md): 0 normal end (duration reached, strategy stopped, SIGTERM handled), 2 bad
arguments or config (nothing placed), 3 authentication failure, 1 anything else.

`--backtest` runs the same strategy on the paper exchange as fast as possible and prints a report.
`--check` loads and validates the config exactly as the bot would and exits (0 "ok", 2 or 3 with
the messages on stderr) without network, orders, database, page or heartbeat.

Safety rules of the process: it cancels its orders before it prints anything on the way out (the
supervisor reading its stdout may be dead: output failures are swallowed), a crash cancels them
too (exit 1 with the traceback), transient exchange errors at start-up are waited out with a
capped backoff, and a stop the trader must see is written to logs/{id}/stop_reason.
"""
import gc
import os
import sys

# Start-up makes tens of thousands of objects that live as long as the process (modules, classes,
# the page's routes): collecting while importing finds nothing and costs about a tenth of the start.
# bot.main enables it again (freezing what start-up made) once the page is up or a backtest begins.
gc.disable()

PARENT_PID = os.getppid()   # taken first: a supervisor that dies while we start is still noticed
HERE = os.path.dirname(os.path.realpath(__file__))
if sys.path[0] != HERE:  # run by path, Python put it there already: a second entry costs every import a stat
    sys.path.insert(0, HERE)

from bot.main import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(parent=PARENT_PID))
