"""One account and symbol is traded by one grid on the whole machine, whatever the project home;
the lock and the key's request budget live in the per-user state dir, private to the user."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from core import proc
from tests.conftest import DAEMON_MANAGER, REPO, home_env, kill_home_processes, run_cli, wait_for
from tests.core.util import registry, start, write_config

KEYS = {"api_key": "pub-key-12345678", "secret_key": "sec-key-87654321"}


@pytest.fixture
def other_home(tmp_path):
    h = tmp_path / "other_home"
    for d in ("config/active", "config/templates", "config/archived", "logs", "database"):
        (h / d).mkdir(parents=True)
    yield h
    kill_home_processes(h)


@pytest.mark.slow
def test_two_homes_cannot_trade_one_account_and_symbol(home, other_home, user_state):
    first = write_config(home, "home_a", exchange="backpack", exchange_config=KEYS)
    assert start(home, first).returncode == 0
    second = write_config(other_home, "home_b", exchange="backpack", exchange_config=KEYS)

    valid = run_cli(other_home, "validate", "home_b")
    assert valid.returncode == 2 and "home_a" in valid.stdout and str(home) in valid.stdout, valid.stdout
    refused = start(other_home, second)
    assert refused.returncode == 2, (refused.stdout, refused.stderr)
    assert "SOL_USDC_PERP" in refused.stderr and "home_a" in refused.stderr and str(home) in refused.stderr
    assert "home_b" not in registry(other_home) or registry(other_home)["home_b"]["status"] != "running"
    assert KEYS["api_key"] not in "".join(p.name + p.read_text() for p in user_state.rglob("*") if p.is_file())
    assert oct(user_state.stat().st_mode & 0o777) == "0o700"

    # another symbol on the same account is fine, and so is this pair once the first grid stops
    other_symbol = write_config(other_home, "home_b_eth", exchange="backpack", exchange_config=KEYS,
                                symbol="ETH_USDC_PERP")
    assert start(other_home, other_symbol).returncode == 0
    assert run_cli(home, "stop", "home_a").returncode == 0
    assert run_cli(other_home, "validate", "home_b").returncode == 0
    again = start(other_home, second)
    assert again.returncode == 0, again.stderr
    # and now the first home is the one refused
    back = start(home, first)
    assert back.returncode == 2 and "home_b" in back.stderr and str(other_home) in back.stderr
    run_cli(other_home, "stop-all")


@pytest.mark.slow
def test_the_lock_ends_with_the_supervisor_even_on_sigkill(home, other_home):
    first = write_config(home, "killed_a", exchange="backpack", exchange_config=KEYS)
    assert start(home, first).returncode == 0
    rec = registry(home)["killed_a"]
    os.kill(rec["pid"], signal.SIGKILL)  # power loss of the supervisor: nobody cleans up
    wait_for(lambda: not proc.is_alive(rec["pid"], rec["pid_create_time"]), 15, "the supervisor's death")
    wait_for(lambda: not proc.is_alive(rec["bot_pid"], rec["bot_create_time"]), 15, "the bot's death")
    second = write_config(other_home, "after_kill", exchange="backpack", exchange_config=KEYS)
    out = start(other_home, second)
    assert out.returncode == 0, out.stderr
    run_cli(other_home, "stop-all")
    assert json.loads(run_cli(other_home, "status", "after_kill").stdout)["state"] == "stopped"


def test_a_foreground_start_keeps_the_account_lock_through_its_exec(home, other_home):
    """A foreground `start` execs the supervisor in its own place: the lock it took must survive that."""
    first = write_config(home, "fg_lock", exchange="backpack", exchange_config=KEYS)
    cli = subprocess.Popen([sys.executable, str(DAEMON_MANAGER), "--home", str(home), "start", "-c", str(first)],
                           cwd=str(REPO), env=home_env(home), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True)
    try:
        assert cli.stdout.readline().startswith("ready pid="), cli.stderr.read() if cli.poll() is not None else ""
        refused = start(other_home, write_config(other_home, "fg_lock_b", exchange="backpack", exchange_config=KEYS))
        assert refused.returncode == 2 and "fg_lock" in refused.stderr and str(home) in refused.stderr, refused.stderr
        cli.send_signal(signal.SIGTERM)
        assert cli.wait(timeout=30) == 0
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()
