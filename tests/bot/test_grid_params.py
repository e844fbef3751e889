"""The checks that refuse a grid before any order exists (strategies/grid_params.py)."""
from __future__ import annotations

import json

import pytest

from core.paths import REPO_ROOT
from exchanges.base import Market
from strategies.grid_params import GridParams, check_params
from tests.conftest import free_port, run_cli
from tests.exchanges.backpack_server import TEST_PUBLIC_B64, TEST_SEED_B64, BackpackServer

MARKET = Market("SOL_USDC_PERP", "SOL", "USDC", tick_size=0.01, step_size=0.01, min_qty=0.01,
                maker_fee=0.0002, taker_fee=0.0005)


def test_a_step_that_does_not_cover_the_round_trip_fee_is_refused_naming_step_and_fees():
    # 100..101 x 21: step 0.05; a cycle at the top pays 0.0002 x (100.95 + 101) = 0.0404 < 0.05: fine
    assert check_params(GridParams("S", 100, 101, 21, 1.0), MARKET) == []
    # 150..151 x 21: step 0.05; 0.0002 x (150.95 + 151) = 0.0604 > 0.05: every cycle loses
    [error] = check_params(GridParams("S", 150, 151, 21, 1.0), MARKET)
    assert "step 0.05" in error and "150.95" in error and "151" in error
    assert "0.0604" in error and "maker fee 0.0002" in error and "allow_unprofitable_step" in error
    # equal to the fee is no better: the cycle earns nothing
    [error] = check_params(GridParams("S", 100, 100.04, 2, 1.0), MARKET)   # 0.0002 x 200.04 = 0.040008
    assert "step 0.04" in error


def test_geometric_grids_are_checked_on_every_cell():
    # ratio 1.0003 per cell, fee 0.0004 of the price on a round trip: every cell loses
    errors = check_params(GridParams("S", 100, 100.3, 11, 1.0, mode="geometric"), MARKET)
    assert len(errors) == 1 and "step" in errors[0]


def test_the_config_can_allow_an_unprofitable_step_explicitly():
    params = GridParams.from_strategy_config(
        {"grid_lower_price": 150, "grid_upper_price": 151, "grid_num": 21, "quantity": 1,
         "allow_unprofitable_step": True}, "S")
    assert params.allow_unprofitable_step and check_params(params, MARKET) == []


def paper_config(home, iid: str, **strategy):
    doc = json.loads((REPO_ROOT / "config" / "active" / "paper_sol_01.json").read_text())
    doc["metadata"]["instance_id"] = iid
    doc["daemon_config"] = {"web_port": free_port(), "stop_timeout": 10}
    doc["exchange_config"]["maker_fee"] = 0.0002
    doc["strategy_config"].update(strategy)
    path = home / "config" / "active" / f"{iid}.json"
    path.write_text(json.dumps(doc))
    return path


def test_validate_and_start_refuse_a_losing_step_with_exit_2(home):
    path = paper_config(home, "thin_01", grid_lower_price=150, grid_upper_price=151, grid_num=21,
                        max_position=1)
    for command in (["validate", "-c", str(path)], ["start", "-c", str(path), "-d"]):
        out = run_cli(home, *command)
        said = out.stdout + out.stderr
        assert out.returncode == 2, (command, said)
        assert "step 0.05" in said and "0.0604" in said and "maker fee 0.0002" in said, said
    assert not (home / "logs" / "thin_01" / "bot.pid").exists()


def test_validate_accepts_it_when_the_config_allows_it(home):
    path = paper_config(home, "thin_02", grid_lower_price=150, grid_upper_price=151, grid_num=21,
                        max_position=1, allow_unprofitable_step=True)
    out = run_cli(home, "validate", "-c", str(path))
    assert out.returncode == 0, out.stdout + out.stderr


def test_validate_names_a_bad_fill_model(home):
    path = paper_config(home, "fm_01")
    doc = json.loads(path.read_text())
    doc["exchange_config"]["fill_model"] = "optimistic"
    path.write_text(json.dumps(doc))
    out = run_cli(home, "validate", "-c", str(path))
    assert out.returncode == 2 and "exchange_config.fill_model" in out.stdout + out.stderr, out.stdout + out.stderr


@pytest.mark.slow
def test_start_on_a_venue_refuses_a_losing_step_with_the_venues_fee_before_any_order(home):
    """A real venue's fees are known only from its market list: `start` (not the offline
    `validate`) refuses the grid with exit 2, and nothing reaches the book."""
    with BackpackServer(price=150.0) as server:
        doc = {"metadata": {"instance_id": "bp_thin", "exchange": "backpack", "symbol": "SOL_USDC_PERP",
                            "strategy": "perp_grid"},
               "daemon_config": {"web_port": free_port(), "stop_timeout": 3, "startsecs": 20},
               "exchange_config": {"api_key": "${BP_KEY}", "secret_key": "${BP_SECRET}", "base_url": server.url},
               "strategy_config": {"grid_lower_price": 149, "grid_upper_price": 151, "grid_num": 51,
                                   "quantity": 0.1, "max_position": 5}}
        path = home / "config" / "active" / "bp_thin.json"
        path.write_text(json.dumps(doc))
        out = run_cli(home, "start", "-c", str(path), "-d", env={"BP_KEY": TEST_PUBLIC_B64, "BP_SECRET": TEST_SEED_B64})
        said = out.stdout + out.stderr
        assert out.returncode == 2, said
        assert "grid step 0.04" in said and "0.0604" in said and "maker fee 0.0002" in said, said
        assert server.orders == []
