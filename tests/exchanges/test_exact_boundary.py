"""Exact decimals at the venue boundary (issue 8 item 11): what reaches the Backpack server is the
decimal the grid meant, whatever float noise the arithmetic before it left."""
from __future__ import annotations

import pytest

from exchanges import create_exchange
from exchanges.base import OrderRequest
from tests.exchanges.backpack_server import TEST_PUBLIC_B64, TEST_SEED_B64, BackpackServer

SYMBOL = "SOL_USDC_PERP"


@pytest.fixture
def exchange(home, monkeypatch):
    monkeypatch.setenv("GRIDBOT_HOME", str(home))
    with BackpackServer(price=150.0) as server:
        ex = create_exchange("backpack", {"api_key": TEST_PUBLIC_B64, "secret_key": TEST_SEED_B64,
                                          "base_url": server.url}, instance_id="bp_exact")
        yield ex, server
        ex.close()


def test_a_quantity_a_few_ulps_below_its_step_is_sent_as_that_step_not_one_below(exchange):
    """0.7 - 0.4 = 0.29999999999999993: ccxt truncates amounts to the step, so it went out as 0.29."""
    ex, server = exchange
    ex.place_order(OrderRequest(SYMBOL, "buy", 0.7 - 0.4, 149.0 - 0.1 * 3, client_id=1))
    sent = server.orders[-1]
    assert (sent["quantity"], sent["price"]) == ("0.3", "148.7")
