"""Backtests are reproducible: the simulated clock starts at 0, so funding falls the same way every run."""
from __future__ import annotations

import json

from tests.bot.proc import bot_config, run_bot
from tests.bot.helpers import StepPrices
from exchanges.paper_exchange import PaperExchange


def report(home, cfg) -> list[str]:
    done = run_bot(home, "--config", str(cfg), "--backtest", "--ticks", "60000")
    assert done.returncode == 0, done.stderr
    return [line for line in done.stdout.splitlines() if not line.startswith("ticks ")]   # drop the timing


def test_two_identical_backtests_give_identical_reports_with_funding(home):
    cfg = bot_config(home, "bt_repro", exchange={"funding_rate": 0.001, "volatility": 0.0005},
                     strategy={"grid_lower_price": 100, "grid_upper_price": 200, "boundary_action": "stop_only"})
    first = report(home, cfg)
    funding = [line for line in first if line.startswith("funding")]
    assert funding and funding[0].split()[1] != "0.0000", first      # 60,000 s: two funding times
    assert report(home, cfg) == first


def test_the_first_funding_time_is_known_from_the_start():
    ex = PaperExchange(StepPrices(100.0), funding_rate=0.001, funding_interval_h=8, start_ms=0)
    assert ex.ts == 0 and ex.next_funding_ts == 8 * 3600 * 1000
    assert PaperExchange(StepPrices(100.0)).next_funding_ts == 0     # no funding: no schedule
    json.dumps(ex._account())


def test_the_backtest_report_states_the_fill_model_from_the_config(home):
    default = report(home, bot_config(home, "bt_touch", exchange={"volatility": 0.0005}))
    assert any(line.startswith("fill model     touch:") for line in default), default
    through = report(home, bot_config(home, "bt_through", exchange={"volatility": 0.0005, "fill_model": "through"}))
    assert any(line.startswith("fill model     through:") and "one tick through" in line for line in through)
