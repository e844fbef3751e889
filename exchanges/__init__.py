"""Exchanges: the interface (base), the paper exchange (default) and the ccxt adapter.

`create_exchange` is the only door: it imports ccxt only when a config names a real exchange, so
paper bots and the CLI never pay ccxt's import time and memory.
"""
from __future__ import annotations

import base64
import binascii
import os
from typing import Any

from core.paths import ENV_API_KEY, ENV_SECRET_KEY
from exchanges.base import AuthenticationError, Exchange

PAPER = "paper"


def api_keys(name: str, config: dict[str, Any]) -> tuple[str, str]:
    """(api key, secret) of a real exchange's config or environment, without importing ccxt.

    AuthenticationError naming what is missing (a real exchange cannot trade anonymously, and
    retrying cannot make a key appear), or naming a secret that cannot sign.
    """
    api_key = str(config.get("api_key") or os.environ.get(ENV_API_KEY) or "")
    secret = str(config.get("secret_key") or os.environ.get(ENV_SECRET_KEY) or "")
    missing = [f"exchange_config.{field} (or {env})"
               for field, env, value in (("api_key", ENV_API_KEY, api_key), ("secret_key", ENV_SECRET_KEY, secret))
               if not value]
    if missing:
        raise AuthenticationError(f"exchange '{name}' needs API keys; missing or empty: {', '.join(missing)}. "
                                  f"Put e.g. \"api_key\": \"${{BACKPACK_KEY}}\" in exchange_config and export the variable")
    check_secret(name, secret)
    return api_key, secret


def check_secret(exchange_id: str, secret: str) -> None:
    """Catch a secret that cannot sign before the first request (retrying would not fix it)."""
    if exchange_id == "backpack":
        try:
            seed = base64.b64decode(secret, validate=True)
        except (binascii.Error, ValueError):
            seed = b""
        if len(seed) < 32:
            raise AuthenticationError("exchange_config.secret_key: not a Backpack API secret "
                                      "(expected the base64 ED25519 private key Backpack shows once)")


def create_exchange(name: str, config: dict[str, Any], *, instance_id: str, db: Any = None) -> Exchange:
    """Build the exchange a config names.

    `config` is the instance's expanded `exchange_config` (keys included, never logged);
    `db` is the instance's `database.db.Database`, where the paper exchange keeps its account.
    """
    if name == PAPER:
        from exchanges.paper_exchange import PaperExchange

        return PaperExchange.from_config(config, instance_id=instance_id, db=db)
    from exchanges.ccxt_exchange import CcxtExchange

    return CcxtExchange.from_config(name, config, instance_id=instance_id, db=db)
