"""`stop` of an instance that ended by itself prints why; `validate` reports every conflict with a
running instance at once, so that what `validate` calls OK `start` does not refuse."""
from __future__ import annotations

import json

from tests.conftest import run_cli, wait_for
from tests.core.util import registry, start, write_config


def test_stop_of_an_instance_that_ended_itself_prints_its_reason(home):
    reason = "stop loss hit: unrealized -52.10 <= -50"
    path = write_config(home, "ended_01", "--mode", "reason-exit", "--after", "0.3", "--reason", reason)
    assert start(home, path).returncode == 0
    wait_for(lambda: registry(home)["ended_01"]["status"] == "exited", 15, "ended_01 exited by itself")
    out = run_cli(home, "stop", "ended_01")
    assert out.returncode == 3, (out.stdout, out.stderr)
    assert "ended_01 is not running (exited)" in out.stderr and reason in out.stderr


def test_validate_reports_every_conflict_with_a_running_instance(home):
    keys = {"api_key": "pub-key-12345678", "secret_key": "sec-key-87654321"}
    first = write_config(home, "first_01", exchange="backpack", exchange_config=keys, symbol="SOL_USDC_PERP")
    doc = json.loads(first.read_text())
    assert start(home, first).returncode == 0
    rec = registry(home)["first_01"]
    clash = write_config(home, "clash_01", exchange="backpack", exchange_config=keys, symbol="SOL_USDC_PERP",
                         web_port=rec["web_port"], db_path=rec["db_path"])
    out = run_cli(home, "validate", "clash_01")
    assert out.returncode == 2, out.stdout
    assert "INVALID" in out.stdout
    for needle in (f"daemon_config.web_port: {rec['web_port']}", "daemon_config.db_path", "metadata.symbol: SOL_USDC_PERP"):
        assert needle in out.stdout, (needle, out.stdout)
    assert out.stdout.count("first_01") >= 3
    refused = start(home, clash)
    assert refused.returncode == 2 and "web_port" in refused.stderr and "db_path" in refused.stderr
    # the running instance's own config is no conflict with itself
    assert run_cli(home, "validate", "first_01").returncode == 0
    assert doc["daemon_config"]["web_port"] == rec["web_port"]
    assert run_cli(home, "stop", "first_01").returncode == 0
    assert run_cli(home, "validate", "clash_01").returncode == 0  # nothing runs: nothing to clash with
