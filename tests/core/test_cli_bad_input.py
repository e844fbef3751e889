"""Bad input at `start`: exit 2 with a message naming field and value, nothing started, registry unchanged."""
from __future__ import annotations

import json

import pytest

from tests.conftest import _processes_of, run_cli
from tests.core.util import registry, start, write_config


def assert_refused(home, path, *needles, code=2, extra=()):
    """Live daemons keep updating their own records, so 'unchanged' = same instances, same daemons."""
    before = {k: (v.get("pid"), v.get("status")) for k, v in registry(home).items()}
    out = start(home, path, *extra)
    assert out.returncode == code, (out.stdout, out.stderr)
    for needle in needles:
        assert needle in out.stderr, (needle, out.stderr)
    assert {k: (v.get("pid"), v.get("status")) for k, v in registry(home).items()} == before
    return out


def mutate(path, fn):
    doc = json.loads(path.read_text())
    fn(doc)
    path.write_text(json.dumps(doc))
    return path


@pytest.mark.parametrize("change,needles", [
    (lambda d: d["metadata"].update(instance_id="../x"), ["metadata.instance_id", '"../x"']),
    (lambda d: d["metadata"].update(instance_id="my bot"), ["metadata.instance_id", '"my bot"']),
    (lambda d: d["strategy_config"].update(grid_lower_price=170), ["grid_lower_price", "170", "grid_upper_price"]),
    (lambda d: d["metadata"].update(exchange="mtgox"), ["metadata.exchange", "mtgox"]),
    (lambda d: d["metadata"].update(strategy="martingale"), ["metadata.strategy", "martingale"]),
    (lambda d: d["daemon_config"].update(web_port=80), ["daemon_config.web_port", "80", ">= 1024"]),
    (lambda d: d["daemon_config"].update(web_port=70000), ["daemon_config.web_port", "70000"]),
    (lambda d: d["daemon_config"].update(restart_delay=-5), ["daemon_config.restart_delay", "-5"]),
    (lambda d: d["daemon_config"].update(stop_timeout=-1), ["daemon_config.stop_timeout", "-1"]),
    (lambda d: d.pop("strategy_config"), ["strategy_config", "required"]),
    (lambda d: d.pop("metadata"), ["metadata", "required"]),
    (lambda d: d["exchange_config"].update(api_key="${CORE_TEST_UNSET_VAR}"), ["exchange_config.api_key", "CORE_TEST_UNSET_VAR"]),
])
def test_invalid_config_exits_2_and_starts_nothing(home, change, needles):
    path = mutate(write_config(home, "bad_one"), change)
    assert_refused(home, path, *needles)
    assert _processes_of(home) == []
    assert not (home / "logs" / "bad_one").exists()


def test_invalid_json(home):
    path = home / "config" / "active" / "broken.json"
    path.write_text('{"metadata": {"exchange": "paper",}')
    assert_refused(home, path, "invalid JSON", "line 1")


def test_bad_instance_id_flag(home):
    assert_refused(home, write_config(home, "ok_id"), "--instance-id", "'../x'", extra=("--instance-id", "../x"))


def test_missing_config_file(home):
    assert_refused(home, home / "config" / "active" / "nope.json", "nope.json", "cannot read")


@pytest.mark.slow
def test_conflicts_with_a_live_instance(home):
    """Port, db_path, account+symbol held by a live instance: refused, naming both instances."""
    first = write_config(home, "first", exchange="backpack", exchange_config={"api_key": "key-aaaaaaaaaaaa"})
    assert start(home, first).returncode == 0
    port = json.loads(first.read_text())["daemon_config"]["web_port"]
    same_port = write_config(home, "second", web_port=port)
    assert_refused(home, same_port, "web_port", str(port), "first", "second")
    same_db = write_config(home, "third", db_path="database/first.db")
    assert_refused(home, same_db, "db_path", "first.db", "first", "third")
    detour = write_config(home, "third_b", db_path="database/../database/first.db")  # resolved: the same file
    assert_refused(home, detour, "daemon_config.db_path", str(home / "database" / "first.db"), "first", "third_b")
    same_logs = write_config(home, "sixth", log_dir="logs/./first")
    assert_refused(home, same_logs, "daemon_config.log_dir", str(home / "logs" / "first"), "first", "sixth")
    same_account = write_config(home, "fourth", exchange="backpack", exchange_config={"api_key": "key-aaaaaaaaaaaa"})
    assert_refused(home, same_account, "SOL_USDC_PERP", "first", "fourth")
    other_symbol = write_config(home, "fifth", exchange="backpack", symbol="ETH_USDC_PERP",
                                exchange_config={"api_key": "key-aaaaaaaaaaaa"})
    assert start(home, other_symbol).returncode == 0
    again = start(home, first)
    assert again.returncode == 1 and "already running (pid" in again.stderr
    assert run_cli(home, "stop-all").returncode == 0
