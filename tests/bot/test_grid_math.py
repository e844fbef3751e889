"""Grid levels against hand-computed values."""
import pytest

from exchanges.base import Market
from strategies.grid_math import floor_to, grid_levels, round_to
from strategies.grid_params import GridParams, check_params
from strategies.inventory import cell_sides

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


def test_every_level_of_a_fine_tick_grid_is_accepted_at_the_exchange_boundary():
    """Tick 1e-8: the float tolerance refused 6 of these 19 levels (142.22222222, ...)."""
    from exchanges.base import OrderRequest, is_multiple
    from tests.bot.helpers import paper

    levels = grid_levels(140, 160, 19, "arithmetic", 1e-8)
    assert len(levels) == 19 and levels[2] == 142.22222222
    assert all(is_multiple(level, 1e-8) for level in levels)
    ex, _ = paper(170.0, tick_size=1e-8, step_size=1e-8, min_qty=1e-8)
    for i, level in enumerate(levels):
        ex.place_order(OrderRequest("SOL_USDC_PERP", "buy", 0.01, level, client_id=i))
    assert sorted(o.price for o in ex.fetch_open_orders("SOL_USDC_PERP")) == levels


def test_a_fine_tick_grid_places_every_level_through_the_strategy():
    from tests.bot.helpers import grid, paper

    ex, _ = paper(150.0, tick_size=1e-8, step_size=1e-8, min_qty=1e-8)
    strat = grid(ex, lower=140.0, upper=160.0, num=19, quantity=0.01)
    strat.start()
    assert not any(c.blocked for c in strat.cells)
    assert len(ex.fetch_open_orders("SOL_USDC_PERP")) == 18


def test_multiples_are_exact_decimals_up_to_float_noise_in_the_value_only():
    from exchanges.base import is_multiple

    assert is_multiple(0.1 + 0.2, 0.1) and is_multiple(0.7 - 0.4, 0.01)   # a few ulps off 0.3
    assert is_multiple(63888.88888889, 1e-8) and is_multiple(1e15, 0.5)
    assert not is_multiple(0.15, 0.1) and not is_multiple(142.222222225, 1e-8)
    assert not is_multiple(3e-9, 1e-8) and not is_multiple(100.001, 0.01)


def test_rounding_is_exact_on_fine_ticks_and_tolerates_float_noise():
    assert round_to(142.222222224, 1e-8) == 142.22222222
    assert round_to(63888.888888885, 1e-8) in (63888.88888888, 63888.88888889)
    assert floor_to(0.7 - 0.4, 0.01) == 0.3            # 0.29999999999999993 is 0.3, not 0.29
    assert floor_to(2.99999999, 1e-8) == 2.99999999
    assert floor_to(0.123456789, 1e-8) == 0.12345678
    assert round_to(1.25, 0.5) == 1.0 and round_to(1.26, 0.5) == 1.5
