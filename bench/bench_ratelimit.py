"""Figures for the shared rate budget and the ccxt adapter (printed, never asserted).

- cost of one token from the file-backed bucket (flock + JSON read/write), one process;
- the same with 4 processes taking tokens from one bucket at once;
- one signed private request through ccxt to the local Backpack server (sign + HTTP + parse);
- two processes sharing a small budget: requests the server saw in its busiest window vs the limit;
- what a paper bot saves by never importing ccxt (fresh interpreter: import time, peak RSS).

Run: .venv/bin/python bench/bench_ratelimit.py
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from multiprocessing import Pool
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from exchanges.rate_limit import Budget, SharedRateLimiter  # noqa: E402

N = 5000


def take(args: tuple[str, int]) -> float:
    path, n = args
    limiter = SharedRateLimiter(Path(path), Budget(1e9, 1))
    start = time.perf_counter()
    for _ in range(n):
        limiter.acquire()
    return time.perf_counter() - start


def import_cost(module: str) -> str:
    code = (f"import resource, time; t = time.perf_counter(); import {module}; "
            "print(f'{time.perf_counter() - t:.2f} s, peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB')")
    return subprocess.run([sys.executable, "-c", code], cwd=str(REPO), capture_output=True, text=True).stdout.strip()


def main() -> None:
    print(f"import exchanges.paper_exchange: {import_cost('exchanges.paper_exchange')}")
    print(f"import exchanges.ccxt_exchange:  {import_cost('exchanges.ccxt_exchange')}")
    from tests.exchanges.backpack_server import TEST_PUBLIC_B64, TEST_SEED_B64, BackpackServer

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["GRIDBOT_HOME"] = tmp
        path = str(Path(tmp) / "bucket.json")
        elapsed = take((path, N))
        print(f"token acquire, 1 process:   {elapsed / N * 1e6:7.1f} us/token  ({N / elapsed:,.0f} tokens/s)")
        with Pool(4) as pool:
            start = time.perf_counter()
            pool.map(take, [(path, N // 4)] * 4)
            elapsed = time.perf_counter() - start
        print(f"token acquire, 4 processes: {elapsed / N * 1e6:7.1f} us/token  ({N / elapsed:,.0f} tokens/s total)")

        from exchanges import create_exchange
        with BackpackServer(price=150.0) as server:
            ex = create_exchange("backpack", {"api_key": TEST_PUBLIC_B64, "secret_key": TEST_SEED_B64,
                                              "base_url": server.url, "rate_limit": {"requests": 1e6, "per_seconds": 1}},
                                 instance_id="bench")   # budget out of the way: measure the request itself
            ex.market("SOL_USDC_PERP")
            n = 300
            start = time.perf_counter()
            for _ in range(n):
                ex.fetch_open_orders("SOL_USDC_PERP")
            elapsed = time.perf_counter() - start
            print(f"signed request via ccxt:    {elapsed / n * 1e3:7.2f} ms/request (sign + local HTTP + verify + parse)")

            limit, window = 40, 1.0
            server.budget = (limit, window)
            env = {**os.environ, "GRIDBOT_HOME": tmp, "PYTHONPATH": str(REPO)}
            cmd = [sys.executable, "-m", "tests.exchanges.hammer", "--url", server.url, "--requests", "100",
                   "--limit", str(limit), "--window", str(window)]
            start = time.perf_counter()
            procs = [subprocess.Popen(cmd, cwd=str(REPO), env=env, stdout=subprocess.PIPE, text=True) for _ in range(2)]
            for p in procs:
                p.communicate()
            elapsed = time.perf_counter() - start
            print(f"2 processes, one key, budget {limit}/{window:g}s: busiest server window "
                  f"{server.max_window_count(TEST_PUBLIC_B64)} requests, 429s {server.over_budget}, "
                  f"200 requests in {elapsed:.1f}s ({200 / elapsed:.1f}/s incl. start-up)")


if __name__ == "__main__":
    main()
