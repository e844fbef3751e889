"""The compiled backtest kernel trades exactly as the general path: every fill, every field.

strategies/grid_kernel.c runs the grid's plain turns on the paper market in C, and hands the rest
(range changes, stops, refused levels) to the live code (strategies/backtest_kernel.py). Each case
runs one backtest twice, with and without the kernel, and compares everything either leaves
behind: the report (but its time and engine), every fill, the books as a saved state would hold
them, the log, the resting orders, the finished orders the venue remembers, and the account.
tests/bot/test_backtest.py holds the general path equal to stepping every tick, so the kernel is
held to that too.
"""
from __future__ import annotations

import dataclasses
import shutil

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.bench_backtest import demo_grid, sparse_grid
from exchanges.paper_exchange import PaperExchange
from exchanges.paper_prices import RandomWalk
from strategies import backtest_kernel
from strategies.backtest import run_backtest
from strategies.grid_params import GridParams
from strategies.grid_state import book_state
from strategies.perp_grid_strategy import PerpGridStrategy

SYMBOL = "SOL_USDC_PERP"

pytestmark = pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler to build the kernel")


def test_the_kernel_builds_and_loads_where_there_is_a_c_compiler():
    """Without it every backtest would quietly take the general path, and the cases below would
    compare the general path with itself."""
    assert backtest_kernel.library() is not None, backtest_kernel.build_error


def everything(kernel: bool, build) -> dict:
    """One backtest's outcome, as far as anything outside the run can see it."""
    exchange, strategy, ticks = build()
    said: list[str] = []
    strategy.log = said.append
    report = run_backtest(exchange, strategy, ticks, kernel=kernel)
    fields = dataclasses.asdict(report)
    engine = fields.pop("engine")
    turns = (fields.pop("kernel_turns"), fields["turns"], fields.pop("kernel_range_changes"))
    del fields["seconds"]
    return {
        "report": fields,
        "fills": [dataclasses.astuple(f) for f in exchange._fills],
        "books": book_state(strategy.book),
        "strategy": (strategy.state, strategy.stop_reason, strategy.position, strategy.entry, strategy.unrealized,
                     strategy.realized, strategy.price, strategy.now_ms, strategy.params, sorted(strategy._unsettled)),
        "log": said,
        "orders": [dataclasses.astuple(o) for o in exchange.orders.values()],
        "done": [dataclasses.astuple(o) for o in exchange._done.values()],
        "account": (exchange.balance, exchange.pos_qty, exchange.entry, exchange.realized, exchange.fees,
                    exchange.funding, exchange.ts, exchange.price, exchange.trade_seq, exchange.order_seq,
                    exchange._sums, exchange._sums_peak, exchange._sums_changes, exchange._prices,
                    exchange.next_funding_ts, exchange.exhausted),
        "engine": (engine, turns),
    }


def assert_same(build) -> tuple[str, int]:
    general, fast = everything(False, build), everything(True, build)
    assert general.pop("engine")[0] == "general"
    engine = fast.pop("engine")
    for key in general:
        if key == "fills" and general[key] != fast[key]:
            first = next(i for i, (a, b) in enumerate(zip(general[key], fast[key])) if a != b)
            assert general[key][first] == fast[key][first], f"fill {first} differs"
        assert general[key] == fast[key], f"{key} differs"
    return engine


def bench_grid(grid, seed: int, ticks: int):
    """One of bench/bench_backtest.py's grids, as it measures them."""
    return lambda: (*grid(seed), ticks)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_demo_grid_with_adjust_range_trades_alike_and_mostly_in_the_kernel(seed):
    """The demo template re-centres its range hundreds of times, refuses levels for margin, and
    stops (the live code's turn) when it can no longer margin a new range."""
    engine, (in_kernel, turns, range_changes) = assert_same(bench_grid(demo_grid, seed, 200_000))
    assert engine == "kernel" and in_kernel > 0.9 * turns and range_changes > 50


def test_the_benchs_sparse_grid_trades_alike():
    engine, (in_kernel, turns, range_changes) = assert_same(bench_grid(sparse_grid, 1, 300_000))
    assert engine == "kernel" and in_kernel == turns


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(num=st.integers(3, 40), lower=st.sampled_from([100.0, 120.0, 140.5]), width=st.sampled_from([5.0, 20.0, 60.0]),
       quantity=st.sampled_from([0.1, 0.3, 0.5, 1.0]), max_position=st.sampled_from([None, 0.5, 1.0, 2.5, 20.0]),
       grid_type=st.sampled_from(["neutral", "long", "short"]), mode=st.sampled_from(["arithmetic", "geometric"]),
       boundary=st.sampled_from(["adjust_range", "stop_only"]), tolerance=st.sampled_from([0.0, 0.01]),
       fill_model=st.sampled_from(["touch", "through"]), tick=st.sampled_from([0.01, 0.05, 0.1]),
       step=st.sampled_from([0.01, 0.1]), min_steps=st.sampled_from([1, 1, 5, 20]), balance=st.sampled_from([300.0, 2000.0, 10000.0]),
       leverage=st.sampled_from([2.0, 10.0]), funding=st.sampled_from([0.0, 0.0001]),
       volatility=st.sampled_from([0.0005, 0.003, 0.01]), seed=st.integers(0, 10_000), ticks=st.integers(1, 20_000))
def test_any_grid_trades_alike_with_and_without_the_kernel(num, lower, width, quantity, max_position, grid_type, mode,
                                                           boundary, tolerance, fill_model, tick, step, min_steps,
                                                           balance, leverage, funding, volatility, seed, ticks):
    """A market minimum above the step leaves holdings it cannot close alone after a range change
    (their level's next opening order is smaller, and may be refused as below the minimum)."""
    def build():
        exchange = PaperExchange(RandomWalk(lower + width / 2, volatility, seed), balance=balance, leverage=leverage,
                                 tick_size=tick, step_size=step, min_qty=round(step * min_steps, 10), funding_rate=funding,
                                 funding_interval_h=0.5, fill_model=fill_model, start_ms=0)
        params = GridParams(SYMBOL, lower=lower, upper=lower + width, num=num, quantity=quantity,
                            max_position=max_position, grid_type=grid_type, mode=mode, boundary_action=boundary,
                            boundary_tolerance=tolerance, allow_unprofitable_step=True)
        return exchange, PerpGridStrategy(exchange, params, "bt"), ticks
    try:
        build()[1].start()
    except ValueError:
        return                              # parameters no grid could start with: nothing to compare
    engine, _ = assert_same(build)
    assert engine == "kernel"


def test_a_backtest_without_its_kernel_runs_the_general_path_and_says_why(monkeypatch):
    """A checkout whose kernel cannot be built (no compiler, a read-only install, a C error) still
    backtests, on the general path, and the report names the build's error."""
    monkeypatch.setattr(backtest_kernel, "_lib", False)
    monkeypatch.setattr(backtest_kernel, "build_error", "cc failed: grid_kernel.c:1:1: error: no compiler here")
    exchange, strategy = demo_grid(1)
    report = run_backtest(exchange, strategy, 5_000)
    assert (report.engine, report.kernel_turns) == ("general", 0) and report.fills > 100
    assert "(no kernel: cc failed: grid_kernel.c:1:1: error: no compiler here)" in report.text()
