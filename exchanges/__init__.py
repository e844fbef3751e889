"""Exchanges: the interface (base), the paper exchange (default) and the ccxt adapter.

`create_exchange` is the only door: it imports ccxt only when a config names a real exchange, so
paper bots and the CLI never pay ccxt's import time and memory.
"""
from __future__ import annotations

from typing import Any

from exchanges.base import Exchange

PAPER = "paper"


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
