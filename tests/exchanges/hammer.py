"""A client process for budget tests: N signed reads through the adapter, sharing the home's budget.

`python -m tests.exchanges.hammer --url URL --requests N --limit L --window W` with GRIDBOT_HOME set;
the test key comes from the server module. Prints how many calls were answered.
"""
from __future__ import annotations

import argparse

from exchanges import create_exchange
from exchanges.base import RateLimited
from tests.exchanges.backpack_server import TEST_PUBLIC_B64, TEST_SEED_B64


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--requests", type=int, required=True)
    parser.add_argument("--limit", type=float, required=True)
    parser.add_argument("--window", type=float, required=True)
    args = parser.parse_args()
    config = {"api_key": TEST_PUBLIC_B64, "secret_key": TEST_SEED_B64, "base_url": args.url,
              "rate_limit": {"requests": args.limit, "per_seconds": args.window, "max_wait": 30}}
    exchange = create_exchange("backpack", config, instance_id="hammer")
    exchange.market("SOL_USDC_PERP")
    answered = 0
    for _ in range(args.requests):
        try:
            exchange.fetch_open_orders("SOL_USDC_PERP")
            answered += 1
        except RateLimited:
            pass
    print(f"answered={answered}", flush=True)


if __name__ == "__main__":
    main()
