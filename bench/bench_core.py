"""Figures of the management plane, printed as medians (targets from issue 2 in brackets).

    .venv/bin/python bench/bench_core.py [--instances 50] [--runs 15]

- `list` wall time with N live instances            [<= 60 ms]
- bot crash -> new bot process, minus restart_delay  [<= 100 ms]
- supervisor daemon RSS                              [<= 15 MB]
- `stop-all` of 20 instances                         [<= 3 s]

Everything runs in a temporary project home with the light tests/fake_bot.py; every process the
bench starts is stopped (and, failing that, killed by pid) before it exits.
"""
from __future__ import annotations

import argparse
import compileall
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from core import proc  # noqa: E402
from core.pidfile import read_pid  # noqa: E402

DM = REPO / "core" / "daemon_manager.py"
FAKE_BOT = REPO / "tests" / "fake_bot.py"
RESTART_DELAY = 0.2


def cli(home: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(DM), "--home", str(home), *args], capture_output=True, text=True,
                          env={**os.environ, "GRIDBOT_HOME": str(home)}, stdin=subprocess.DEVNULL)


def write_config(home: Path, iid: str, port: int) -> Path:
    doc = {
        "metadata": {"instance_id": iid, "exchange": "paper", "symbol": f"{iid.upper()}_PERP"},
        "daemon_config": {"script_path": str(FAKE_BOT), "bot_args": ["--interval", "1"], "web_port": port,
                          "restart_delay": RESTART_DELAY, "max_backoff": RESTART_DELAY, "max_restart_attempts": 10**6,
                          "stable_uptime": 0, "startsecs": 0.2, "stop_timeout": 2, "health_check_interval": 5},
        "strategy_config": {"grid_lower_price": 1, "grid_upper_price": 2, "grid_num": 2},
    }
    path = home / "config" / "active" / f"{iid}.json"
    path.write_text(json.dumps(doc))
    return path


def start_all(home: Path, paths: list[Path], batch: int = 10) -> None:
    for i in range(0, len(paths), batch):
        procs = [subprocess.Popen([sys.executable, str(DM), "--home", str(home), "start", "-c", str(p), "-d"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                  env={**os.environ, "GRIDBOT_HOME": str(home)}) for p in paths[i:i + batch]]
        for p in procs:
            _, err = p.communicate()
            if p.returncode:
                raise SystemExit(f"start failed: {err.decode()}")


def registry(home: Path) -> dict:
    """Every instance's own record (logs/{id}/instance.json): the supervisors write nothing shared."""
    return {p.parent.name: json.loads(p.read_text()) for p in (home / "logs").glob("*/instance.json")}


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def bench_list(home: Path, runs: int) -> float:
    cli(home, "list")  # warm the page cache
    return statistics.median(timed(lambda: cli(home, "list")) for _ in range(runs))


def bench_rss(home: Path) -> float:
    return statistics.median(proc.rss_bytes(rec["pid"]) / 2**20 for rec in registry(home).values())


def bench_crash_restart(home: Path, iid: str, runs: int) -> float:
    """SIGKILL the bot (a crash) and time until the replacement process exists, minus restart_delay."""
    pid_file = home / "logs" / iid / "bot.pid"
    samples = []
    for _ in range(runs):
        old = read_pid(pid_file)
        time.sleep(0.3)  # let the bot settle
        t0 = time.clock_gettime(time.CLOCK_BOOTTIME)  # the clock of /proc start times
        os.kill(old, signal.SIGKILL)
        while (new := read_pid(pid_file)) in (None, old):
            time.sleep(0.002)
        samples.append(proc.create_time(new) - proc.boot_time() - t0 - RESTART_DELAY)
    return statistics.median(samples)


def bench_stop_all(home: Path, n: int, runs: int) -> float:
    paths = [write_config(home, f"stop_{i:02d}", 7400 + i) for i in range(n)]
    samples = []
    for _ in range(runs):
        start_all(home, paths)
        samples.append(timed(lambda: cli(home, "stop-all")))
    return statistics.median(samples)


def kill_leftovers(home: Path) -> None:
    """Last resort: kill (by recorded pid and identity) whatever the home still runs."""
    try:
        recs = registry(home).values()
    except (OSError, ValueError):
        return
    for rec in recs:
        proc.kill_group(rec.get("bot_pid"), rec.get("bot_create_time"))
        if proc.is_alive(rec.get("pid"), rec.get("pid_create_time")):
            os.kill(rec["pid"], signal.SIGKILL)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--instances", type=int, default=50)
    ap.add_argument("--runs", type=int, default=15)
    args = ap.parse_args()
    # As after `make setup`: with PYTHONDONTWRITEBYTECODE set, an uncompiled core/ costs every `list` 13 ms.
    compileall.compile_dir(str(REPO / "core"), quiet=1)
    with tempfile.TemporaryDirectory(prefix="bench_core_") as tmp:
        home = Path(tmp)
        for d in ("config/active", "logs", "database"):
            (home / d).mkdir(parents=True)
        try:
            paths = [write_config(home, f"bench_{i:02d}", 7000 + i) for i in range(args.instances)]
            t = timed(lambda: start_all(home, paths))
            print(f"started {args.instances} instances in {t:.1f}s")
            time.sleep(5)  # `watch list` looks at a running fleet, not at fifty bots importing at once
            list_s = bench_list(home, args.runs)
            print(f"list with {args.instances} live instances: median {list_s * 1000:.1f} ms   [<= 60 ms]")
            print(f"supervisor daemon RSS: median {bench_rss(home):.1f} MB   [<= 15 MB]")
            crash = bench_crash_restart(home, "bench_00", min(args.runs, 10))
            print(f"bot crash -> new bot process: median {crash * 1000:.1f} ms + restart_delay {RESTART_DELAY}s"
                  "   [<= 100 ms]")
            t = timed(lambda: cli(home, "stop-all"))
            print(f"stop-all of {args.instances} instances: {t:.2f}s")
            stop20 = bench_stop_all(home, 20, 3)
            print(f"stop-all of 20 instances: median {stop20:.2f} s   [<= 3 s]")
        finally:
            cli(home, "stop-all")
            kill_leftovers(home)


if __name__ == "__main__":
    main()
