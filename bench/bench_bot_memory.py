"""RSS of one paper bot serving its page, after it has run a while with a live client attached.

Prints the figure and the bar (80 MB); exits 1 above the bar so `make bench` notices.
Usage: python bench/bench_bot_memory.py [--seconds 120]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import psutil  # noqa: E402
import socketio  # noqa: E402

from tests.conftest import free_port, kill_home_processes  # noqa: E402
from tests.web.paper_bot import make_home, start_bot, stop_bot  # noqa: E402

BAR_MB = 80.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120.0, help="how long the bot runs before measuring")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_mem_") as tmp:
        home = make_home(Path(tmp))
        # adjust_range: a long random walk leaves any fixed range, and a stopped bot measures nothing
        bot = start_bot(home, "bench_mem_01", free_port(), boundary_action="adjust_range")
        client = socketio.Client(reconnection=False)
        try:
            client.connect(bot.url, wait_timeout=10)
            deadline = time.monotonic() + args.seconds
            while time.monotonic() < deadline:  # a page open in a browser polls about this much
                for path in ("/api/status", "/api/orders", "/api/fills?limit=100", "/api/pnl", "/metrics"):
                    bot.get(path).raise_for_status()
                time.sleep(1.0)
            status = bot.get("/api/status").json()
            rss_mb = psutil.Process(bot.proc.pid).memory_info().rss / 2**20
        finally:
            client.disconnect()
            stop_bot(bot)
            kill_home_processes(home)
    verdict = "ok" if rss_mb <= BAR_MB else "OVER THE BAR"
    print(f"paper bot with web page after {args.seconds:.0f}s ({status['fill_count']} fills, "
          f"{status['open_order_count']} open orders): RSS {rss_mb:.1f} MB (bar {BAR_MB:.0f} MB) {verdict}")
    return 0 if rss_mb <= BAR_MB else 1


if __name__ == "__main__":
    sys.exit(main())
