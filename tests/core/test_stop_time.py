"""A stopping bot gets the time its orders need, and a stop that leaves orders says so (core/stop_time.py)."""
from __future__ import annotations

from core.bot_status import write_bot_status
from core.paths import InstancePaths
from core.stop_time import MAX_STOP_SECONDS, stop_seconds, write_stop_seconds
from tests.conftest import run_cli, wait_for
from tests.core.util import daemon_log, registry, start, write_config


def test_the_bots_need_counts_only_above_stop_timeout_and_up_to_the_cap(tmp_path):
    path = tmp_path / "stop_seconds"
    assert stop_seconds(path, 10) == 10                     # nothing asked
    write_stop_seconds(path, 3.2)
    assert path.read_text() == "4\n" and stop_seconds(path, 10) == 10
    write_stop_seconds(path, 42)
    assert stop_seconds(path, 10) == 42
    write_stop_seconds(path, 1e9)
    assert stop_seconds(path, 10) == MAX_STOP_SECONDS
    for junk in ("", "soon\n", "nan\n", "inf\n"):
        path.write_text(junk)
        assert stop_seconds(path, 7) == 7


def test_a_bot_that_asked_for_more_time_is_not_killed_while_it_cancels(home):
    """stop_timeout 0.5 s, a bot that needs 1.5 s to clear its orders and asked for 30: it ends by
    itself (exit 143, a handled SIGTERM), where a fixed stop_timeout SIGKILLed it halfway."""
    path = write_config(home, "patient", "--mode", "slow-term", "--term-delay", "1.5", stop_timeout=0.5)
    assert start(home, path).returncode == 0
    paths = InstancePaths.for_instance(home, "patient")
    # `start` may answer before the fake bot's interpreter installed its SIGTERM handler (a loaded
    # machine: exit -15, not 143); its first heartbeat comes after the handler.
    wait_for(paths.heartbeat.exists, 30, "the fake bot's first heartbeat")
    write_stop_seconds(paths.stop_seconds, 30)
    out = run_cli(home, "stop", "-i", "patient")
    assert out.returncode == 0 and out.stdout.strip() == "patient stopped", out.stdout + out.stderr
    assert registry(home)["patient"]["exit_code"] == 143  # 128 + SIGTERM: it ended by itself, cleanly
    assert "SIGKILL" not in daemon_log(home, "patient")


def test_a_bot_killed_while_stopping_leaves_its_last_order_count_as_the_stop_reason(home):
    path = write_config(home, "stubborn", "--mode", "ignore-term", stop_timeout=0.5)
    assert start(home, path).returncode == 0
    status = InstancePaths.for_instance(home, "stubborn").bot_status
    write_bot_status(status, {"instance_id": "stubborn", "state": "trading", "open_order_count": 7})
    wait_for(status.exists, 5, "the published books")
    out = run_cli(home, "stop", "-i", "stubborn")
    said = out.stdout + out.stderr
    assert out.returncode == 1, said
    assert "stubborn stopped, but not cleanly" in said and "7 orders may remain on the exchange" in said, said
    rec = registry(home)["stubborn"]
    assert rec["status"] == "stopped" and "7 orders may remain" in rec["stop_reason"]


def test_a_clean_stop_of_a_bot_that_published_no_orders_still_exits_0(home):
    path = write_config(home, "calm", "--mode", "ignore-term", stop_timeout=0.5)
    assert start(home, path).returncode == 0
    write_bot_status(InstancePaths.for_instance(home, "calm").bot_status,
                     {"instance_id": "calm", "state": "trading", "open_order_count": 0})
    out = run_cli(home, "stop", "-i", "calm")
    assert out.returncode == 0 and out.stdout.strip() == "calm stopped", out.stdout + out.stderr
