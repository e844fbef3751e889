"""`list` against `supervisorctl status` for the same number of programs, side by side in one run.

    .venv/bin/python bench/bench_list_vs_supervisorctl.py [--instances 50] [--runs 20]

Both supervise the same fake child (tests/fake_bot.py, sleeping, publishing its books once). Our
`list` is measured with the new money columns filled (each bot's bot_status.json present) and
without them (the files moved aside), so the cost of the columns shows by itself. Supervisor is
pip-installed into its own venv under /tmp (never into the project's). supervisorctl and the
filled list take turns run after run. Prints medians in ms and the ratio to supervisorctl.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DM = REPO / "core" / "daemon_manager.py"
FAKE_BOT = REPO / "tests" / "fake_bot.py"
SUPERVISOR_VENV = Path(tempfile.gettempdir()) / "gridbot-bench-supervisor"
CHILD_ARGS = ["--no-beat", "--interval", "3600"]  # asleep: what is timed is the reader, not the children
BOOKS = {"symbol": "SOL_USDC_PERP", "quote": "USDC", "state": "trading", "position": 1.5, "unrealized_pnl": 12.25,
         "realized_pnl": -3.5, "grid_profit": 7.75, "equity": 10016.5}


def supervisor_bin() -> Path:
    """supervisord/supervisorctl from their own venv, installed on first use."""
    if not (SUPERVISOR_VENV / "bin" / "supervisorctl").exists():
        subprocess.run([sys.executable, "-m", "venv", str(SUPERVISOR_VENV)], check=True)
        subprocess.run([str(SUPERVISOR_VENV / "bin" / "pip"), "install", "-q", "supervisor"], check=True)
    return SUPERVISOR_VENV / "bin"


def compile_bytecode() -> None:
    """Write the project's bytecode first, as an install does: with PYTHONDONTWRITEBYTECODE set (or
    a file edited since), every `list` would compile its modules again, which a trader's does not."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    subprocess.run([sys.executable, "-m", "compileall", "-q", *(str(REPO / d) for d in
                                                               ("core", "exchanges", "strategies", "web", "database"))],
                   env=env, check=True, capture_output=True, timeout=300)


def supervisord_header(root: Path) -> str:
    """The sections every bench's supervisord needs: its socket, pid, logs and supervisorctl, all in root."""
    return f"""[unix_http_server]
file={root}/supervisor.sock
[supervisord]
logfile={root}/supervisord.log
pidfile={root}/supervisord.pid
childlogdir={root}/sv
[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface
[supervisorctl]
serverurl=unix://{root}/supervisor.sock
"""


def medians_ms(commands: list[tuple[list[str], dict[str, str] | None]], runs: int) -> list[float]:
    """Median wall time of each command, the commands taking turns run after run (a busy neighbour
    slows each alike)."""
    for argv, env in commands:
        subprocess.run(argv, capture_output=True, env=env)  # warm the page cache
    samples: list[list[float]] = [[] for _ in commands]
    for _ in range(runs):
        for (argv, env), times in zip(commands, samples):
            t0 = time.perf_counter()
            out = subprocess.run(argv, capture_output=True, env=env)
            times.append(time.perf_counter() - t0)
            if out.returncode not in (0, 3):  # supervisorctl status exits 3 when a program is not running
                raise SystemExit(f"{argv[0]} failed: {out.stderr.decode()}")
    return [statistics.median(times) * 1000 for times in samples]


def start_ours(home: Path, n: int) -> dict[str, str]:
    env = {**os.environ, "GRIDBOT_HOME": str(home)}
    for i in range(n):
        iid = f"bench_{i:02d}"
        doc = {"metadata": {"instance_id": iid, "exchange": "paper", "symbol": "SOL_USDC_PERP"},
               "daemon_config": {"script_path": str(FAKE_BOT), "bot_args": [*CHILD_ARGS, "--books", json.dumps(BOOKS)],
                                 "web_port": 7600 + i, "startsecs": 0.2, "health_check_interval": 30},
               "strategy_config": {"grid_lower_price": 1, "grid_upper_price": 2, "grid_num": 2}}
        (home / "config" / "active" / f"{iid}.json").write_text(json.dumps(doc))
    out = subprocess.run([sys.executable, str(DM), "start-all"], env=env, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"start-all failed:\n{out.stdout}{out.stderr}")
    return env


def start_supervisord(tmp: Path, n: int) -> tuple[Path, Path]:
    conf = tmp / "supervisord.conf"
    for i in range(n):
        (tmp / "sv" / f"{i:02d}").mkdir(parents=True)
    conf.write_text(supervisord_header(tmp) + f"""[program:fake]
command={sys.executable} {FAKE_BOT} {' '.join(CHILD_ARGS)}
process_name=%(program_name)s_%(process_num)02d
numprocs={n}
startsecs=0
environment=LOG_DIR="{tmp}/sv/%(process_num)02d"
""")
    subprocess.run([str(supervisor_bin() / "supervisord"), "-c", str(conf)], check=True)
    return conf, tmp / "supervisord.pid"


def wait_all_running(argv: list[str], n: int, word: str) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        out = subprocess.run(argv, capture_output=True, text=True).stdout
        if out.count(word) >= n:
            return
        time.sleep(0.5)
    raise SystemExit(f"not all {n} programs came up: {' '.join(argv)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--instances", type=int, default=50)
    ap.add_argument("--runs", type=int, default=20)
    args = ap.parse_args()
    n = args.instances
    compile_bytecode()
    ctl = [str(supervisor_bin() / "supervisorctl")]
    with tempfile.TemporaryDirectory(prefix="bench_list_") as tmp_name:
        tmp = Path(tmp_name)
        home = tmp / "home"
        for d in ("config/active", "logs", "database"):
            (home / d).mkdir(parents=True)
        conf, sv_pid = None, None
        env = {**os.environ, "GRIDBOT_HOME": str(home)}
        try:
            env = start_ours(home, n)
            conf, sv_pid = start_supervisord(tmp, n)
            ctl += ["-c", str(conf)]
            wait_all_running([*ctl, "status"], n, "RUNNING")
            time.sleep(2)
            ours = [sys.executable, str(DM), "list"]
            supervisorctl, with_books = medians_ms([([*ctl, "status"], None), (ours, env)], args.runs)
            books = list(home.glob("logs/*/bot_status.json"))
            for f in books:
                f.rename(f.with_name("bot_status.aside"))
            (without_books,) = medians_ms([(ours, env)], args.runs)
            for f in books:
                f.with_name("bot_status.aside").rename(f)
            print(f"{n} programs, median of {args.runs} runs (issue 12 goal: list <= 0.4x supervisorctl status):")
            print(f"  {'supervisorctl status':<42} {supervisorctl:7.1f} ms")
            for label, ms in ((f"list, money columns filled ({len(books)} books)", with_books),
                              ("list, money columns empty (no books)", without_books)):
                ratio = ms / supervisorctl
                print(f"  {label:<42} {ms:7.1f} ms  ratio {ratio:.2f}  goal <= 0.4x: {'met' if ratio <= 0.4 else 'NOT MET'}")
        finally:
            subprocess.run([sys.executable, str(DM), "stop-all"], env=env, capture_output=True)
            if conf is not None:
                subprocess.run([*ctl, "shutdown"], capture_output=True)


if __name__ == "__main__":
    main()
