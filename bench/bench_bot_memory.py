"""A paper bot and a real-exchange bot with their pages: ready time and RSS (issue 12, goal 4).

Each bot is run.py with the environment `start` gives it (the supervisor contract plus
GRIDBOT_CONFIG_CHECKED, the digest of the config `start` validated); the real-exchange one trades
through ccxt against the local Backpack stand-in (tests/exchanges/backpack_server.py). Printed per
bot: seconds from exec to its page answering /health 200 (median of --starts), and RSS after it
has run --seconds with a live Socket.IO client attached and a page's polling. The paper bot's bars
are 45 MB and 0.3 s (goal 4); exits 1 above the memory bar so `make bench` notices.
Usage: python bench/bench_bot_memory.py [--seconds 120] [--starts 3]
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
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import psutil  # noqa: E402
import socketio  # noqa: E402

from bench.bench_peers import health_ok  # noqa: E402
from core.config_manager import CHECKED_ENV, ConfigManager  # noqa: E402
from tests.conftest import RUN_PY, free_port, home_env, kill_home_processes  # noqa: E402
from tests.exchanges.backpack_server import TEST_PUBLIC_B64, TEST_SEED_B64, BackpackServer  # noqa: E402
from tests.web.paper_bot import make_home, terminate, write_paper_config  # noqa: E402

MEMORY_BAR_MB = 45.0
READY_BAR_S = 0.3
KEYS = {"BP_KEY": TEST_PUBLIC_B64, "BP_SECRET": TEST_SEED_B64}


def backpack_config(home: Path, iid: str, port: int, url: str) -> Path:
    doc = {"metadata": {"instance_id": iid, "exchange": "backpack", "symbol": "SOL_USDC_PERP", "strategy": "perp_grid"},
           "daemon_config": {"web_port": port},
           "exchange_config": {"api_key": "${BP_KEY}", "secret_key": "${BP_SECRET}", "base_url": url},
           "strategy_config": {"grid_lower_price": 146, "grid_upper_price": 154, "grid_num": 8, "quantity": 0.1,
                               "max_position": 5, "interval": 0.3}}
    path = home / "config" / "active" / f"{iid}.json"
    path.write_text(json.dumps(doc))
    return path


def cpu_seconds(pid: int) -> float:
    """CPU seconds process `pid` has used, to the nanosecond: its process CPU clock, the id glibc's
    clock_getcpuclockid(pid) returns on Linux (MAKE_PROCESS_CPUCLOCK(pid, CPUCLOCK_SCHED)). psutil's
    user + system times count 10 ms ticks, too coarse beside a 250 ms start; they are the fallback."""
    try:
        return time.clock_gettime(((~pid) << 3) | 2)
    except OSError:
        cpu = psutil.Process(pid).cpu_times()
        return cpu.user + cpu.system


def launch(home: Path, iid: str, config: Path, port: int,
           extra: dict[str, str]) -> tuple[subprocess.Popen, float, float]:
    """run.py as the supervisor runs it after `start`; (process, seconds from exec to /health 200,
    CPU seconds it spent until then: the figure a busy neighbour does not inflate)."""
    cfg = ConfigManager(home).load(config)
    env = {"INSTANCE_ID": iid, "DB_PATH": str(home / "database" / f"{iid}.db"), "WEB_PORT": str(port),
           "LOG_DIR": str(home / "logs" / iid), "PYTHONUNBUFFERED": "1", CHECKED_ENV: cfg.digest, **extra}
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, str(RUN_PY), "--config", str(config)], cwd=str(REPO),
                            env=home_env(home, env), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=open(home / f"{iid}.err", "a"))
    while not health_ok(port):
        if proc.poll() is not None:
            raise SystemExit(f"{iid}: run.py exited {proc.returncode}: {(home / f'{iid}.err').read_text()[-2000:]}")
        if time.perf_counter() - t0 > 120:
            terminate(proc)
            raise SystemExit(f"{iid}: no /health within 120 s")
        time.sleep(0.002)
    ready = time.perf_counter() - t0
    return proc, ready, cpu_seconds(proc.pid)


def measure(home: Path, iid: str, config: Path, port: int, extra: dict[str, str], starts: int,
            seconds: float) -> tuple[float, float, float, dict]:
    """(median ready seconds, median CPU seconds until ready, RSS MB after `seconds` of use, the
    bot's last status)."""
    readies, cpus = [], []
    for i in range(starts):
        proc, ready, cpu = launch(home, iid, config, port, extra)
        readies.append(ready)
        cpus.append(cpu)
        if i < starts - 1:
            terminate(proc)
    url = f"http://127.0.0.1:{port}"
    client = socketio.Client(reconnection=False)
    try:
        client.connect(url, wait_timeout=10)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:  # a page open in a browser polls about this much
            for path in ("/api/status", "/api/orders", "/api/fills?limit=100", "/api/pnl", "/metrics"):
                urllib.request.urlopen(url + path, timeout=10).read()
            time.sleep(1.0)
        status = json.loads(urllib.request.urlopen(url + "/api/status", timeout=10).read())
        rss_mb = psutil.Process(proc.pid).memory_info().rss / 2**20
    finally:
        client.disconnect()
        terminate(proc)
    return statistics.median(readies), statistics.median(cpus), rss_mb, status


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120.0, help="how long each bot runs before measuring")
    parser.add_argument("--starts", type=int, default=3, help="starts timed per bot (median)")
    args = parser.parse_args()
    over = False
    with tempfile.TemporaryDirectory(prefix="bench_mem_") as tmp:
        home = make_home(Path(tmp))
        try:
            port = free_port()
            # adjust_range: a long random walk leaves any fixed range, and a stopped bot measures nothing
            config = write_paper_config(home, "bench_mem_01", port, boundary_action="adjust_range")
            ready, cpu, rss_mb, status = measure(home, "bench_mem_01", config, port, {}, args.starts, args.seconds)
            over = rss_mb > MEMORY_BAR_MB
            print(f"paper bot with web page: ready {ready:.3f} s, {cpu:.3f} s of CPU (bar {READY_BAR_S} s); after {args.seconds:.0f}s "
                  f"({status['fill_count']} fills, {status['open_order_count']} open orders): RSS {rss_mb:.1f} MB "
                  f"(bar {MEMORY_BAR_MB:.0f} MB) {'OVER THE BAR' if over else 'ok'}", flush=True)
            os.environ.update(KEYS)  # the ${BP_KEY} the config names, as the trader's shell would have them
            with BackpackServer(center=150.0, amplitude=3.0, period=6.0) as server:
                port = free_port()
                config = backpack_config(home, "bench_mem_bp", port, server.url)
                ready, cpu, rss_mb, status = measure(home, "bench_mem_bp", config, port, KEYS, args.starts,
                                                     args.seconds)
            print(f"backpack bot (ccxt) with web page: ready {ready:.3f} s, {cpu:.3f} s of CPU; after {args.seconds:.0f}s "
                  f"({status['fill_count']} fills, {status['open_order_count']} open orders): RSS {rss_mb:.1f} MB")
        finally:
            kill_home_processes(home)
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
