"""The local Backpack server checks signatures exactly as Backpack does: test it before trusting it."""
from __future__ import annotations

import base64
import json
import time

import pytest
import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.exchanges.backpack_server import (TEST_PUBLIC_B64, TEST_SEED_B64, BackpackServer, keypair_from_seed,
                                             signing_payload, verify)

KNOWN_SIGNATURE = "wLQaGPszkXrEWaIm6RsnVLJv70Uuw62SXxmdso6cadUmR0NWzFhfhvuCWMl+jbBNJ5gZRfCPjvXI29H7JeW6Ag=="
KNOWN_PAYLOAD = "instruction=orderCancel&orderId=28&symbol=BTC_USDT&timestamp=1614550000000&window=5000"


def sign(seed_b64: str, payload: str) -> str:
    key = Ed25519PrivateKey.from_private_bytes(base64.b64decode(seed_b64))
    return base64.b64encode(key.sign(payload.encode())).decode()


def test_known_vector_payload_key_and_signature():
    assert signing_payload("orderCancel", {"symbol": "BTC_USDT", "orderId": 28}, 1614550000000, 5000) == KNOWN_PAYLOAD
    assert keypair_from_seed(TEST_SEED_B64)[0] == TEST_PUBLIC_B64
    assert sign(TEST_SEED_B64, KNOWN_PAYLOAD) == KNOWN_SIGNATURE
    assert verify(TEST_PUBLIC_B64, KNOWN_SIGNATURE, KNOWN_PAYLOAD)
    assert not verify(TEST_PUBLIC_B64, KNOWN_SIGNATURE, KNOWN_PAYLOAD.replace("28", "29"))


def test_batch_payload_has_one_instruction_block_per_order():
    orders = [{"symbol": "S", "side": "Bid", "postOnly": True}, {"symbol": "S", "side": "Ask", "clientId": 7}]
    assert signing_payload("orderExecute", orders, 1, 5000) == (
        "instruction=orderExecute&postOnly=true&side=Bid&symbol=S&"
        "instruction=orderExecute&clientId=7&side=Ask&symbol=S&timestamp=1&window=5000")


def _signed_get(server: BackpackServer, seed: str, api_key: str, path: str, instruction: str, ts: int | None = None):
    ts = ts or int(time.time() * 1000)
    sig = sign(seed, signing_payload(instruction, {}, ts, 5000))
    return requests.get(server.url + path, timeout=5, headers={
        "X-API-Key": api_key, "X-Signature": sig, "X-Timestamp": str(ts), "X-Window": "5000"})


def test_server_accepts_good_and_rejects_bad_signatures():
    with BackpackServer(price=150.0) as server:
        ok = _signed_get(server, TEST_SEED_B64, TEST_PUBLIC_B64, "/api/v1/capital", "balanceQuery")
        assert ok.status_code == 200 and "USDC" in ok.json()
        wrong_instruction = _signed_get(server, TEST_SEED_B64, TEST_PUBLIC_B64, "/api/v1/capital", "positionQuery")
        assert wrong_instruction.status_code == 401 and wrong_instruction.json()["code"] == "INVALID_SIGNATURE"
        other_api_key, other_seed = keypair_from_seed(base64.b64encode(b"\x01" * 32).decode())
        unknown = _signed_get(server, other_seed, other_api_key, "/api/v1/capital", "balanceQuery")
        assert unknown.status_code == 401 and unknown.json()["code"] == "UNAUTHORIZED"
        stale = _signed_get(server, TEST_SEED_B64, TEST_PUBLIC_B64, "/api/v1/capital", "balanceQuery",
                            ts=int(time.time() * 1000) - 60_000)
        assert stale.status_code == 401 and stale.json()["message"] == "Request has expired"
        assert server.signed_ok == 1 and server.rejected_auth == 3


def test_storm_answers_429_with_retry_after():
    with BackpackServer(price=150.0) as server:
        server.storm(30)
        answer = requests.get(server.url + "/api/v1/markets", timeout=5)
        assert answer.status_code == 429 and answer.headers["Retry-After"] == "1"
        assert json.loads(answer.text)["code"] == "TOO_MANY_REQUESTS"


@pytest.mark.parametrize("price,fills", [(149.0, 1), (151.0, 0)])
def test_resting_orders_fill_when_the_price_trades_through(price, fills):
    with BackpackServer(price=150.0) as server:
        server.execute(TEST_PUBLIC_B64, {"symbol": "SOL_USDC_PERP", "side": "Bid", "orderType": "Limit",
                                         "price": "149.5", "quantity": "1", "postOnly": True})
        server.set_price(price)
        assert len(server.fills) == fills
