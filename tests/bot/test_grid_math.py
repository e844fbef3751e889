"""Grid levels against hand-computed values."""
import pytest

from exchanges.base import Market
from strategies.grid_math import floor_to, grid_levels, round_to
from strategies.grid_params import GridParams, check_params
from strategies.perp_grid_strategy import cell_sides

MARKET = Market("SOL_USDC_PERP", "SOL", "USDC", tick_size=0.01, step_size=0.01, min_qty=0.01)


def test_arithmetic_levels_are_evenly_spaced():
    assert grid_levels(140, 160, 5, "arithmetic", 0.01) == [140.0, 145.0, 150.0, 155.0, 160.0]


def test_geometric_levels_have_a_constant_ratio():
    assert grid_levels(100, 400, 3, "geometric", 0.01) == [100.0, 200.0, 400.0]
    # ratio 1.1 exactly: 100, 110, 121, 133.1
    assert grid_levels(100, 133.1, 4, "geometric", 0.01) == [100.0, 110.0, 121.0, 133.1]


def test_levels_are_rounded_to_the_tick_and_deduplicated():
    # raw 100, 100.25, 100.5, 100.75, 101 at tick 0.5 -> 100, 100(dup), 100.5, 101, 101(dup)
    assert grid_levels(100, 101, 5, "arithmetic", 0.5) == [100.0, 100.5, 101.0]
    assert grid_levels(10, 10.03, 4, "arithmetic", 0.01) == [10.0, 10.01, 10.02, 10.03]


@pytest.mark.parametrize("args, message", [
    ((100, 110, 1, "arithmetic", 0.01), "at least 2"),
    ((110, 100, 5, "arithmetic", 0.01), "lower < upper"),
    ((100, 110, 5, "spiral", 0.01), "grid_mode"),
])
def test_impossible_grids_are_refused(args, message):
    with pytest.raises(ValueError, match=message):
        grid_levels(*args)


def test_rounding_helpers():
    assert round_to(0.1 + 0.2, 0.1) == 0.3
    assert floor_to(0.999, 0.01) == 0.99
    assert floor_to(1.0, 0.01) == 1.0


def test_neutral_cells_are_long_below_and_short_above_the_price():
    levels = [100.0, 101.0, 102.0, 103.0, 104.0]
    assert cell_sides(levels, 102.4, "neutral") == ["long", "long", "short", "short"]
    assert cell_sides(levels, 102.6, "neutral") == ["long", "long", "long", "short"]
    assert cell_sides(levels, 102.4, "long") == ["long"] * 4
    assert cell_sides(levels, 102.4, "short") == ["short"] * 4


def test_check_params_names_field_value_and_rule():
    ok = GridParams("SOL_USDC_PERP", 140, 160, 20, 0.5, max_position=10)
    assert check_params(ok, MARKET, equity=10000, leverage=10) == []
    bad = GridParams("SOL_USDC_PERP", 160, 140, 1, 0.001, max_position=100000)
    errors = "\n".join(check_params(bad, MARKET, equity=10000, leverage=10))
    assert "grid_num: 1" in errors and "at least 2" in errors
    assert "160" in errors and "lower must be below upper" in errors
    assert "quantity: 0.001 is below the market minimum 0.01" in errors
    unmarginable = GridParams("SOL_USDC_PERP", 140, 160, 20, 0.5, max_position=1000)
    assert "max_position: 1000" in "".join(check_params(unmarginable, MARKET, equity=10000, leverage=10))
    collapsed = GridParams("SOL_USDC_PERP", 100, 100.01, 50, 0.5, allow_unprofitable_step=True)
    assert check_params(collapsed, MARKET) == []  # 2 distinct lines remain
