"""What a config would take from instances already running: its web port, database, log directory,
and the account and symbol it trades.

One function for `start` (which refuses under the registry lock) and `validate` (which reports),
so what `validate` calls OK `start` does not refuse, and both name every conflict at once.
"""
from __future__ import annotations

import os
from pathlib import Path

from core.instance_manager import is_daemon_alive


def same_path(a: str | None, b: str | None, memo: dict[str, str] | None = None) -> bool:
    """Two runtime paths name one file (records written before paths were resolved included).
    memo: realpaths already resolved in this one decision (start-all compares fifty configs with
    up to fifty records: 5,000 realpaths of a few lstats each without it)."""
    if not (a and b):
        return False
    if memo is None:
        return os.path.realpath(a) == os.path.realpath(b)
    for p in (a, b):
        if p not in memo:
            memo[p] = os.path.realpath(p)
    return memo[a] == memo[b]


def live_records(data: dict[str, dict]) -> dict[str, dict]:
    """Registry records whose daemon (or the CLI that is starting it) is alive right now."""
    return {iid: rec for iid, rec in data.items() if is_daemon_alive(rec)}


def conflicts(cfg: InstanceConfig, live: dict[str, dict],  # noqa: F821 (config_manager: heavy)
              memo: dict[str, str] | None = None) -> list[str]:
    """Every claim of cfg already held by another live instance, one line each (field first);
    memo as same_path's."""
    iid, d, meta = cfg.instance_id, cfg.daemon, cfg.metadata
    out = []
    for other, rec in sorted(live.items()):
        if other == iid:
            continue
        if d.get("web_port") and rec.get("web_port") == d["web_port"]:
            out.append(f"daemon_config.web_port: {d['web_port']} of {iid} is already used by instance {other}")
        for key in ("db_path", "log_dir"):
            if same_path(rec.get(key), d[key], memo):
                out.append(f"daemon_config.{key}: {d[key]} of {iid} is already used by instance {other}")
        if cfg.account and rec.get("account") == cfg.account and rec.get("symbol") == meta["symbol"]:
            out.append(f"metadata.symbol: {meta['symbol']} on the same {meta['exchange']} account is already traded "
                       f"by instance {other} (wanted by {iid}); two grids on one account and symbol would fight")
    return out


def account_conflicts(cfg: InstanceConfig, home: Path) -> list[str]:  # noqa: F821
    """The machine-wide view: the config's account and symbol traded by an instance of any home
    (its own instance of this home excepted), as `start` would find it in core/account_lock.py."""
    if not cfg.account:
        return []
    from core import account_lock

    symbol = cfg.metadata["symbol"]
    held = account_lock.holder(cfg.account, symbol)
    if held is None or held == {"home": str(home), "instance_id": cfg.instance_id}:
        return []
    if held.get("home") == str(home):
        return []  # this home's own instances: conflicts() named them from the registry already
    return [account_lock.describe(held, cfg.metadata["exchange"], symbol, cfg.instance_id)]
