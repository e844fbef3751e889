"""A real, light process that the supervisor runs instead of run.py, made to misbehave on demand.

    python tests/fake_bot.py --config X [--mode run|crash|exit0|exit2|hang|leak|spin|progress|ignore-term|
                                                grandchild|secret|straddle|bind|reason-exit|reason-on-term|waiting|
                                                slow-term|notify[,more]]
                                         [--after S] [--interval S] [--no-beat] [--exit-code N]
                                         [--crash-times N] [--dump-env PATH] [--leak-mb N] [--reason TEXT]
                                         [--waiting-for S] [--term-delay S]
                                         [--books JSON]

It speaks the bot contract of docs/internals.md: beats $LOG_DIR/heartbeat every loop, writes
$LOG_DIR/web.port when it binds $WEB_PORT, exits 143 (128 + SIGTERM) on SIGTERM, and writes $LOG_DIR/stop_reason
(atomically) before it exits with reason-exit (after --after, exit 0) or reason-on-term (on SIGTERM).
With notify it tells the supervisor it is ready (and its port, with bind) on the readiness
pipe (core/ready_fd.py) right away, before any heartbeat. With waiting it publishes $LOG_DIR/bot_status.json (core/bot_status.py) each loop: state waiting
from --after for --waiting-for seconds, trading otherwise. Only the standard library, so fifty
of them fit on a small machine.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
from core.bot_status import write_bot_status  # noqa: E402
from core.heartbeat import beat  # noqa: E402  (the real contract, not a copy)
from core.ready_fd import notify_supervisor  # noqa: E402

GRANDCHILD = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser()
    p.add_argument("--config")
    p.add_argument("--mode", default="run")
    p.add_argument("--after", type=float, default=0.0, help="misbehave after this many seconds")
    p.add_argument("--interval", type=float, default=0.1)
    p.add_argument("--no-beat", action="store_true")
    p.add_argument("--exit-code", type=int, default=1)
    p.add_argument("--crash-times", type=int, default=None, help="crash only the first N runs")
    p.add_argument("--dump-env")
    p.add_argument("--leak-mb", type=float, default=20.0, help="MB leaked per second in leak mode")
    p.add_argument("--term-delay", type=float, default=2.0, help="slow-term: seconds from SIGTERM to exit 0")
    p.add_argument("--reason", default="cancel failed: 3 orders may remain on the exchange",
                   help="the stop_reason text of reason-exit and reason-on-term")
    p.add_argument("--waiting-for", type=float, default=3600.0, help="how long waiting mode waits")
    p.add_argument("--books", help="a JSON object published as $LOG_DIR/bot_status.json every loop")
    return p.parse_args()


def run_number(log_dir: str) -> int:
    """How many times this instance's bot has started (kept in a file next to the heartbeat)."""
    path = os.path.join(log_dir, "fake_bot.runs")
    try:
        n = int(open(path).read()) + 1
    except (OSError, ValueError):
        n = 1
    with open(path, "w") as fh:
        fh.write(str(n))
    return n


def bind_page(log_dir: str) -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", int(os.environ["WEB_PORT"])))
    sock.listen()
    tmp = os.path.join(log_dir, ".web.port.tmp")
    with open(tmp, "w") as fh:
        fh.write(f"{sock.getsockname()[1]}\n")
    os.replace(tmp, os.path.join(log_dir, "web.port"))
    return sock


def write_stop_reason(log_dir: str, text: str) -> None:
    tmp = os.path.join(log_dir, ".stop_reason.tmp")
    with open(tmp, "w") as fh:
        fh.write(text + "\n")
    os.replace(tmp, os.path.join(log_dir, "stop_reason"))


def main() -> int:
    args = parse()
    modes = set(args.mode.split(","))
    log_dir = os.environ["LOG_DIR"]
    hb = Path(log_dir) / "heartbeat"
    run = run_number(log_dir)
    if args.dump_env:
        with open(args.dump_env, "w") as fh:
            json.dump(dict(os.environ), fh)
    def on_term(*_: object) -> None:
        if "slow-term" in modes:            # a bot still cancelling its orders
            time.sleep(args.term_delay)
        if "reason-on-term" in modes:
            write_stop_reason(log_dir, args.reason)
        sys.exit(143)  # the contract: a graceful end on SIGTERM is 128 + 15, never "finished" (0)

    signal.signal(signal.SIGTERM, signal.SIG_IGN if "ignore-term" in modes else on_term)
    print(f"fake bot {os.getpid()} run {run} modes {sorted(modes)} instance {os.environ.get('INSTANCE_ID')}", flush=True)
    if "exit2" in modes:
        print("config error: strategy_config.grid_num: 1 must be >= 2", file=sys.stderr, flush=True)
        return 2
    if "secret" in modes:
        secret = os.environ.get("EXCHANGE_SECRET_KEY", "")
        print(f"stdout leaks {secret}", flush=True)
        print(f"stderr leaks {secret}", file=sys.stderr, flush=True)
    if "straddle" in modes:  # an unterminated line whose 64 KiB cut falls inside the secret, then a crash
        secret = os.environ.get("EXCHANGE_SECRET_KEY", "")
        for stream in (sys.stdout, sys.stderr):
            stream.write("x" * (65536 - len(secret) // 2) + secret + " and more")
            stream.flush()
        time.sleep(0.5)
        return 1
    keep = []
    if "bind" in modes:
        keep.append(bind_page(log_dir))
    if "notify" in modes:
        notify_supervisor(port=keep[0].getsockname()[1] if keep else None, ready=True)
    if "grandchild" in modes:
        child = subprocess.Popen([sys.executable, "-c", GRANDCHILD])
        with open(os.path.join(log_dir, "grandchild.pid"), "w") as fh:
            fh.write(str(child.pid))
    leak: list[bytes] = []
    start = time.monotonic()
    misbehave = args.crash_times is None or run <= args.crash_times
    while True:
        elapsed = time.monotonic() - start
        due = misbehave and elapsed >= args.after
        if due and "crash" in modes:
            print(f"fake bot crashing with code {args.exit_code}", file=sys.stderr, flush=True)
            return args.exit_code
        if due and "exit0" in modes:
            print("duration reached", flush=True)
            return 0
        if due and "reason-exit" in modes:
            write_stop_reason(log_dir, args.reason)
            print(f"stopping: {args.reason}", flush=True)
            return 0
        if "waiting" in modes:
            waiting = due and elapsed < args.after + args.waiting_for
            write_bot_status(Path(log_dir) / "bot_status.json", {
                "instance_id": os.environ.get("INSTANCE_ID"), "state": "waiting" if waiting else "trading",
                "message": "exchange unreachable: connection refused" if waiting else None,
                "updated_at": time.time()})
        if not (due and "hang" in modes) and not args.no_beat:
            beat(hb)
        if args.books:
            write_bot_status(Path(log_dir) / "bot_status.json", {**json.loads(args.books), "updated_at": time.time()})
        if due and "progress" in modes:  # a progress bar: \r, never a newline
            sys.stdout.write("\r" + "#" * 10000)
            sys.stdout.flush()
        if due and "leak" in modes:
            leak.append(b"x" * int(args.leak_mb * args.interval * 2**20))
        if due and "spin" in modes:  # burn CPU instead of sleeping
            end = time.monotonic() + args.interval
            while time.monotonic() < end:
                pass
            continue
        time.sleep(args.interval)


if __name__ == "__main__":
    sys.exit(main())
