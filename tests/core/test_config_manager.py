"""ConfigManager: loading, ${VAR} expansion, validation messages, defaults, both formats."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from core.config_manager import ConfigError, ConfigManager, load_schema
from core.paths import REPO_ROOT

SECRET = "sk-live-9f8e7d6c5b4a3210"


def base_config(**sections) -> dict:
    doc = {
        "$schema": "../schema/instance.schema.json",
        "metadata": {"instance_id": "bp_sol_01", "exchange": "paper", "symbol": "SOL_USDC_PERP",
                     "strategy": "perp_grid"},
        "daemon_config": {},
        "exchange_config": {},
        "strategy_config": {"grid_lower_price": 140, "grid_upper_price": 160, "grid_num": 20},
    }
    for name, values in sections.items():
        if values is None:
            doc.pop(name)
        else:
            doc[name].update(values)
    return doc


def write(home: Path, doc, name: str = "bp_sol_01.json") -> Path:
    p = home / "config" / "active" / name
    p.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return p


def errors_of(home: Path, doc, name: str = "bp_sol_01.json", **kw) -> str:
    with pytest.raises(ConfigError) as exc:
        ConfigManager(home).load(write(home, doc, name), **kw)
    return str(exc.value)


def test_defaults_filled_and_paths_absolute(home):
    cfg = ConfigManager(home).load(write(home, base_config()))
    assert cfg.instance_id == "bp_sol_01" and not cfg.legacy
    assert cfg.source_path == home / "config" / "active" / "bp_sol_01.json"
    assert cfg.daemon["log_dir"] == str(home / "logs" / "bp_sol_01")
    assert cfg.daemon["db_path"] == str(home / "database" / "bp_sol_01.db")
    assert cfg.daemon["python_path"] == sys.executable
    assert cfg.daemon["script_path"] == str(REPO_ROOT / "run.py")
    assert cfg.daemon["web_port"] is None
    for key, value in {"stop_timeout": 10, "heartbeat_timeout": 60, "startsecs": 3, "max_backoff": 60,
                       "stable_uptime": 30, "restart_delay": 5, "max_restart_attempts": 3,
                       "auto_restart": True, "memory_limit_mb": 512, "log_retention_days": 7}.items():
        assert cfg.daemon[key] == value, key
    assert cfg.strategy["grid_mode"] == "arithmetic" and cfg.strategy["grid_type"] == "neutral"
    assert cfg.strategy["boundary_action"] == "stop_only" and cfg.strategy["interval"] == 5
    assert cfg.strategy["duration"] == 0 and cfg.strategy["stop_loss"] is None
    assert cfg.metadata["market_type"] == "perp" and cfg.metadata["strategy"] == "perp_grid"


def test_readiness_defaults_follow_the_program(home, tmp_path):
    """run.py is ready at its first heartbeat only (within start_timeout); another program after startsecs."""
    cm = ConfigManager(home)
    cfg = cm.load(write(home, base_config()))
    assert cfg.daemon["ready_on"] == "heartbeat" and cfg.daemon["start_timeout"] == 120
    link = tmp_path / "bot_link.py"
    link.symlink_to(REPO_ROOT / "run.py")
    assert cm.load(write(home, base_config(daemon_config={"script_path": str(link)}))).daemon["ready_on"] == "heartbeat"
    other = cm.load(write(home, base_config(daemon_config={"script_path": "tests/fake_bot.py"})))
    assert other.daemon["ready_on"] == "startsecs"
    explicit = cm.load(write(home, base_config(daemon_config={"ready_on": "startsecs"})))
    assert explicit.daemon["ready_on"] == "startsecs"


def test_runtime_paths_are_resolved(home):
    """database/../database/a.db is database/a.db, so conflicts are seen whatever the spelling."""
    cfg = ConfigManager(home).load(write(home, base_config(daemon_config={
        "db_path": "database/../database/./a.db", "log_dir": "logs/x/../bp"})))
    assert cfg.daemon["db_path"] == str(home / "database" / "a.db")
    assert cfg.daemon["log_dir"] == str(home / "logs" / "bp")


def test_instance_id_priority(home):
    cm = ConfigManager(home)
    path = write(home, base_config(), "file_stem.json")
    assert cm.load(path, instance_id="flag_id").instance_id == "flag_id"
    assert cm.load(path).instance_id == "bp_sol_01"
    doc = base_config()
    del doc["metadata"]["instance_id"]
    assert cm.load(write(home, doc, "file_stem.json")).instance_id == "file_stem"


@pytest.mark.parametrize("bad", ["../x", "has space", "-lead", "x" * 65, "a/b"])
def test_bad_instance_ids(home, bad):
    msg = errors_of(home, base_config(metadata={"instance_id": bad}))
    assert "metadata.instance_id" in msg and json.dumps(bad) in msg
    flag_msg = errors_of(home, base_config(), instance_id=bad)
    assert "--instance-id" in flag_msg and repr(bad) in flag_msg


def test_env_expansion_from_dotenv_without_leaking(home, monkeypatch):
    monkeypatch.delenv("BP_KEY", raising=False)
    (home / ".env").write_text(f"BP_KEY=key-abcdefgh1234\nBP_SECRET={SECRET}\nOTHER=unrelated\n")
    monkeypatch.setenv("FROM_SHELL", "shellvalue")
    doc = base_config(exchange_config={"api_key": "${BP_KEY}", "secret_key": "${BP_SECRET}",
                                       "base_url": "${BASE_URL:-https://api.example}",
                                       "note": "${FROM_SHELL}"})
    cfg = ConfigManager(home).load(write(home, doc))
    assert cfg.exchange["api_key"] == "key-abcdefgh1234" and cfg.exchange["secret_key"] == SECRET
    assert cfg.exchange["base_url"] == "https://api.example" and cfg.exchange["note"] == "shellvalue"
    assert "BP_KEY" not in os.environ and "OTHER" not in os.environ
    assert set(cfg.used_vars) == {"BP_KEY", "BP_SECRET", "FROM_SHELL"}
    assert SECRET in cfg.secrets() and "key-abcdefgh1234" in cfg.secrets()
    masked = json.dumps(cfg.masked())
    assert SECRET not in masked and "key-abcdefgh1234" not in masked and "****3210" in masked


def test_missing_variable_named(home, monkeypatch):
    monkeypatch.delenv("NOPE_SECRET", raising=False)
    msg = errors_of(home, base_config(exchange_config={"secret_key": "${NOPE_SECRET}"}))
    assert "exchange_config.secret_key" in msg and "${NOPE_SECRET}" in msg


@pytest.mark.parametrize("section,values,field,value", [
    ("strategy_config", {"grid_lower_price": 160, "grid_upper_price": 150}, "grid_lower_price", "160"),
    ("strategy_config", {"grid_lower_price": 150, "grid_upper_price": 150}, "grid_lower_price", "150"),
    ("strategy_config", {"grid_num": 1}, "strategy_config.grid_num", "1"),
    ("strategy_config", {"grid_mode": "spiral"}, "strategy_config.grid_mode", "spiral"),
    ("strategy_config", {"quantity": 5, "max_position": 1}, "strategy_config.quantity", "5"),
    ("metadata", {"exchange": "nosuchex"}, "metadata.exchange", "nosuchex"),
    ("metadata", {"strategy": "martingale"}, "metadata.strategy", "martingale"),
    ("daemon_config", {"web_port": 80}, "daemon_config.web_port", "80"),
    ("daemon_config", {"web_port": 70000}, "daemon_config.web_port", "70000"),
    ("daemon_config", {"restart_delay": -1}, "daemon_config.restart_delay", "-1"),
    ("daemon_config", {"stop_timeout": -0.5}, "daemon_config.stop_timeout", "-0.5"),
    ("daemon_config", {"max_restart_atempts": 3}, "max_restart_atempts", "max_restart_atempts"),
    ("daemon_config", {"ready_on": "vibes"}, "daemon_config.ready_on", "vibes"),
    ("daemon_config", {"start_timeout": 0}, "daemon_config.start_timeout", "0"),
    ("daemon_config", {"log_cleanup_interval": 60}, "log_cleanup_interval", "log_cleanup_interval"),  # removed
    ("strategy_config", {"stop_loss": -5}, "strategy_config.stop_loss", "-5"),
    ("strategy_config", {"take_profit": 0}, "strategy_config.take_profit", "0"),
])
def test_bad_values_name_field_and_value(home, section, values, field, value):
    msg = errors_of(home, base_config(**{section: values}))
    assert field in msg and value in msg


def test_invalid_json_and_missing_section(home):
    msg = errors_of(home, '{"metadata": {,}')
    assert "invalid JSON" in msg and "line 1" in msg
    assert "'metadata' is required" in errors_of(home, base_config(metadata=None))
    assert "'strategy_config' is required" in errors_of(home, base_config(strategy_config=None))


def test_all_errors_reported_at_once(home):
    doc = base_config(metadata={"exchange": "nope"}, daemon_config={"web_port": 1})
    doc["strategy_config"]["grid_num"] = 0
    assert len(errors_of(home, doc).splitlines()) == 3


def test_secret_never_in_error_messages(home, monkeypatch):
    monkeypatch.setenv("BP_SECRET", SECRET)
    doc = base_config(exchange_config={"secret_key": "${BP_SECRET}", "sandbox": "${BP_SECRET}"})
    msg = errors_of(home, doc)
    assert "exchange_config.sandbox" in msg and SECRET not in msg


def test_a_literal_secret_outside_exchange_config_is_masked_in_errors_too(home):
    doc = base_config(daemon_config={"environment": {"VENUE_PASSPHRASE": 918273645546372819}})
    msg = errors_of(home, doc)
    assert "daemon_config.environment.VENUE_PASSPHRASE" in msg and "918273645546372819" not in msg


def test_legacy_flat_format(home):
    legacy = json.loads((REPO_ROOT / "config" / "daemon_config.json").read_text())
    path = home / "config" / "daemon_config.json"
    path.write_text(json.dumps(legacy))
    cfg = ConfigManager(home).load(path)
    assert cfg.legacy and cfg.instance_id == "daemon_config"
    assert cfg.metadata["exchange"] == "paper" and cfg.metadata["symbol"] == "SOL_USDC_PERP"
    assert cfg.strategy["grid_lower_price"] == 140 and cfg.strategy["grid_num"] == 20
    assert cfg.bot_argv()[2:4] == ["--config", str(path)] and "--grid-lower" in cfg.bot_argv()


def test_validate_overrides_checks_metadata_and_strategy(home):
    cm = ConfigManager(home)
    meta = {"exchange": "paper", "symbol": "SOL_USDC_PERP"}
    assert cm.validate_overrides(meta, {"grid_lower_price": 1, "grid_upper_price": 2, "grid_num": 5}) == []
    errs = cm.validate_overrides(meta, {"grid_lower_price": 3, "grid_upper_price": 2, "grid_num": 1})
    assert any("grid_num" in e for e in errs) and any("grid_lower_price: 3" in e for e in errs)
    errs = cm.validate_overrides({**meta, "exchange": "nosuch"}, {"grid_lower_price": 1, "grid_upper_price": 2})
    assert errs and errs[0].startswith('metadata.exchange: "nosuch" is not one of paper')


def test_price_source_may_be_a_string_or_an_object(home):
    cm = ConfigManager(home)
    for source in ("backpack:SOL_USDC_PERP", {"exchange": "backpack", "symbol": "SOL_USDC_PERP"}):
        doc = {"metadata": {"exchange": "paper", "symbol": "SOL_USDC_PERP"},
               "exchange_config": {"price_source": source},
               "strategy_config": {"grid_lower_price": 140, "grid_upper_price": 160, "grid_num": 10}}
        path = home / "config" / "active" / "live_prices.json"
        path.write_text(json.dumps(doc))
        assert cm.load(path).exchange["price_source"] == source
    doc["exchange_config"]["price_source"] = 42
    path.write_text(json.dumps(doc))
    with pytest.raises(ConfigError, match="exchange_config.price_source: 42 must be of type"):
        cm.load(path)


def test_exchange_enum_are_ccxt_ids():
    import ccxt

    enum = load_schema()["properties"]["metadata"]["properties"]["exchange"]["enum"]
    assert "paper" in enum and "backpack" in enum
    assert [e for e in enum if e != "paper" and e not in ccxt.exchanges] == []


def test_account_fingerprint(home):
    cm = ConfigManager(home)
    real = base_config(metadata={"exchange": "backpack"}, exchange_config={"api_key": "k" * 20})
    cfg = cm.load(write(home, real))
    assert cfg.account and "k" * 20 not in cfg.account
    assert cm.load(write(home, base_config(), "p.json")).account is None


def test_templates_active_archived(home):
    cm = ConfigManager(home)
    tpl = base_config()
    del tpl["metadata"]["instance_id"]
    (home / "config" / "templates" / "paper_grid.json").write_text(json.dumps(tpl))
    dest = cm.create_from_template("paper_grid", "paper_sol_07")
    assert dest == home / "config" / "active" / "paper_sol_07.json"
    assert cm.load(dest).instance_id == "paper_sol_07" and cm.list_active() == [dest]
    with pytest.raises(ConfigError):
        cm.create_from_template("paper_grid", "../evil")
    archived = cm.archive("paper_sol_07")
    assert archived.parent == home / "config" / "archived" and not dest.exists()
    assert cm.list_active() == []
