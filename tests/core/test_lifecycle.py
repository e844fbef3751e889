"""Lifecycle details with real processes: the bot's stop reason, readiness by heartbeat with a
start timeout, backoff growth, bots that never beat, the supervisor's own error path."""
from __future__ import annotations

import json
import re

import psutil
import pytest

from core import proc
from core.paths import InstancePaths
from tests.conftest import run_cli
from tests.core.util import daemon_log, list_json, registry, start, write_config
from tests.conftest import wait_for
pytestmark = pytest.mark.slow

REASON = "cancel failed: 3 orders may remain on the exchange"


def paths(home, iid: str) -> InstancePaths:
    return InstancePaths.for_instance(home, iid)


# -- stop reason ------------------------------------------------------------------------------
def test_a_bot_that_ends_itself_with_a_reason_needs_attention(home):
    secret = "s3cr3t-VALUE-abcdef123456"
    (home / ".env").write_text(f"REASON_SECRET={secret}\n")
    path = write_config(home, "stopped_out", "--mode", "reason-exit", "--after", "0.6",
                        "--reason", f"stop loss hit: unrealized -52.10 <= -50 (key {secret})",  # ${VAR} in bot_args is refused
                        exchange="backpack", exchange_config={"api_key": "pub-key-12345678",
                                                              "secret_key": "${REASON_SECRET}"})
    assert start(home, path).returncode == 0
    wait_for(lambda: registry(home)["stopped_out"]["status"] == "exited", 15, "exited")
    rec = list_json(home)["stopped_out"]  # plain `list`: an exited bot with a reason needs attention
    assert rec["status"] == "exited" and rec["exit_code"] == 0 and rec["restart_count"] == 0
    assert rec["last_error"] == "stop loss hit: unrealized -52.10 <= -50 (key ****3456)"
    assert "stopped_out" in run_cli(home, "list").stdout and "1 need attention" in run_cli(home, "list").stdout
    st = run_cli(home, "status", "-i", "stopped_out")
    body = json.loads(st.stdout)
    assert st.returncode == 3 and body["stop_reason"] == rec["last_error"] and body["needs_attention"] is True
    assert secret not in json.dumps(registry(home))


def test_stop_warns_when_the_bot_left_a_stop_reason_and_still_exits_0(home):
    path = write_config(home, "leftover", "--mode", "reason-on-term")
    assert start(home, path).returncode == 0
    out = run_cli(home, "stop", "-i", "leftover")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["leftover stopped", f"warning: leftover: {REASON}"]
    rec = registry(home)["leftover"]
    assert rec["status"] == "stopped" and rec["last_error"] == REASON and rec["stop_reason"] == REASON


def test_a_stale_stop_reason_is_deleted_before_each_spawn(home):
    path = write_config(home, "fresh")
    stale = paths(home, "fresh").stop_reason
    stale.parent.mkdir(parents=True)
    stale.write_text("stop loss hit yesterday\n")
    assert start(home, path).returncode == 0
    out = run_cli(home, "stop", "-i", "fresh")
    assert out.returncode == 0 and out.stdout.strip() == "fresh stopped"
    assert registry(home)["fresh"]["last_error"] is None and not stale.exists()


# -- readiness -------------------------------------------------------------------------------
def test_heartbeat_readiness_gives_up_after_start_timeout_and_stops_the_bot_gracefully(home):
    """ready_on heartbeat (run.py's default) ignores startsecs; no beat within start_timeout is fatal."""
    path = write_config(home, "silent", "--no-beat", "--mode", "reason-on-term", "--reason", "orders cancelled",
                        ready_on="heartbeat", start_timeout=1, startsecs=0.2)
    out = start(home, path)
    assert out.returncode == 1 and "failed: " in out.stderr and "no heartbeat within 1 s" in out.stderr, out.stderr
    rec = registry(home)["silent"]
    assert rec["status"] == "fatal" and "no heartbeat within 1 s" in rec["last_error"]
    assert not proc.is_alive(rec["pid"], rec["pid_create_time"]) or wait_for(
        lambda: not proc.is_alive(rec["pid"], rec["pid_create_time"]), 15, "daemon exit")
    log = daemon_log(home, "silent")
    assert "bot exited with code 143" in log and "SIGKILL" not in log  # SIGTERM handled: orders cancelled
    assert rec["stop_reason"] == "orders cancelled"  # written by the bot's SIGTERM handler


def test_a_bot_that_never_beats_is_never_restarted_as_hung(home):
    path = write_config(home, "mute", "--no-beat", ready_on="startsecs", startsecs=0.2, heartbeat_timeout=0.3,
                        health_check_interval=0.1)
    assert start(home, path).returncode == 0
    first = registry(home)["mute"]
    # each health check checks in (the record's mtime): wait until several heartbeat_timeouts of them went by
    record = home / "logs" / "mute" / "instance.json"
    wait_for(lambda: record.stat().st_mtime > first["started_at"] + 10 * 0.3, 30, "health checks")
    rec = registry(home)["mute"]
    assert rec["status"] == "running" and rec["restart_count"] == 0 and rec["bot_pid"] == first["bot_pid"]
    assert "hung" not in daemon_log(home, "mute")
    assert run_cli(home, "stop", "-i", "mute").returncode == 0


def test_backoff_grows_exponentially_and_is_capped(home):
    path = write_config(home, "flappy", "--mode", "crash", restart_delay=0.1, max_backoff=0.4,
                        max_restart_attempts=5, stable_uptime=30)
    out = start(home, path)
    assert out.returncode == 1 and "gave up after 6 quick failures" in out.stderr, out.stderr
    delays = [float(x) for x in re.findall(r"restarting in ([0-9.]+) ?s", daemon_log(home, "flappy"))]
    assert delays == [0.1, 0.2, 0.4, 0.4, 0.4]
    assert registry(home)["flappy"]["restart_count"] == 5


# -- supervision never depends on shared state -----------------------------------------------
def test_a_broken_shared_registry_never_touches_supervision(home):
    """Issue 12: supervisors write only their own record, so an unusable claims lock and a corrupt
    claims file neither crash a supervisor nor delay its bot's respawn."""
    path = write_config(home, "sturdy", "--mode", "crash", "--after", "0.8", health_check_interval=0.2)
    assert start(home, path).returncode == 0
    daemon = psutil.Process(registry(home)["sturdy"]["pid"])
    lock = home / "logs" / "instances.lock"
    lock.unlink()
    lock.mkdir()  # nobody can take the claims lock any more
    (home / "logs" / "instances.json").write_text("{torn")
    try:
        wait_for(lambda: registry(home)["sturdy"]["restart_count"] >= 2, what="two respawns without the shared lock")
        assert daemon.is_running() and registry(home)["sturdy"]["status"] in ("starting", "running", "backoff")
        assert "supervisor crashed" not in daemon_log(home, "sturdy")
        assert list_json(home)["sturdy"]["pid"] == daemon.pid  # `list` reads the records
    finally:
        lock.rmdir()
    assert run_cli(home, "stop", "-i", "sturdy").returncode == 0


def test_an_outside_sigterm_to_the_bot_is_an_unexpected_exit_and_restarted(home):
    """Issue 10 item 6: only a stop the supervisor asked for is `stopped`."""
    path = write_config(home, "termed")
    assert start(home, path).returncode == 0
    first = registry(home)["termed"]["bot_pid"]
    psutil.Process(first).terminate()
    rec = wait_for(lambda: (r := registry(home)["termed"])["restart_count"] == 1 and r["status"] == "running" and r,
                   what="a restart after the outside SIGTERM")
    assert rec["bot_pid"] != first and list_json(home)["termed"]["status"] == "running"
    assert "ended by a SIGTERM the supervisor did not send" in daemon_log(home, "termed")
    assert run_cli(home, "stop", "-i", "termed").returncode == 0
    assert registry(home)["termed"]["status"] == "stopped"

