"""Threads and RSS of one paper bot before, during and after a connection flood on its page.

The fault this guards against: 300 idle connections and 300 websockets took a bot from 4 to
1,505 threads and 95 MB. Prints the figures; the page's cap (web/connections.py) bounds them.
Usage: python bench/bench_page_flood.py [--idle 300] [--websockets 300]
"""
from __future__ import annotations

import argparse
import socket
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import psutil  # noqa: E402

from tests.conftest import free_port, kill_home_processes  # noqa: E402
from tests.web.paper_bot import make_home, start_bot, stop_bot  # noqa: E402
from tests.web.test_page_limits import open_websocket  # noqa: E402


def figures(proc: psutil.Process) -> str:
    return f"{proc.num_threads():5d} threads  {proc.memory_info().rss / 2**20:6.1f} MB RSS"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--idle", type=int, default=300, help="idle TCP connections to open")
    parser.add_argument("--websockets", type=int, default=300, help="Socket.IO websockets to open")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_flood_") as tmp:
        home = make_home(Path(tmp))
        bot = start_bot(home, "bench_flood_01", free_port())
        proc = psutil.Process(bot.proc.pid)
        held: list[socket.socket] = []
        try:
            print(f"before      {figures(proc)}")
            answers: dict[str, int] = {}
            for _ in range(args.websockets):
                s, line = open_websocket(bot.port)
                held.append(s)
                code = line.split()[1] if len(line.split()) > 1 else "none"
                answers[code] = answers.get(code, 0) + 1
            for _ in range(args.idle):
                held.append(socket.create_connection(("127.0.0.1", bot.port), timeout=30))
            print(f"flooded     {figures(proc)}  websocket answers {answers}, {args.idle} idle connections")
        finally:
            for s in held:
                s.close()
            stop_bot(bot)
            kill_home_processes(home)
    return 0


if __name__ == "__main__":
    sys.exit(main())
