"""Issue 10 item 5: a frozen supervisor is noticed, and its bot still gets a graceful stop."""
from __future__ import annotations

import json
import os
import signal

import pytest

from core.events import read_events
from core.paths import InstancePaths
from tests.conftest import run_cli, wait_for
from tests.core.util import list_json, read_int, start, write_config

pytestmark = pytest.mark.slow


def test_a_sigstopped_supervisor_is_unresponsive_and_stop_still_lets_the_bot_cancel(home):
    path = write_config(home, "frozen2", "--mode", "reason-on-term", "--reason", "20 orders cancelled",
                        health_check_interval=0.3, stop_timeout=5)
    assert start(home, path).returncode == 0
    paths = InstancePaths.for_instance(home, "frozen2")
    supervisor = read_int(paths.daemon_pid)
    os.kill(supervisor, signal.SIGSTOP)
    try:
        wait_for(lambda: list_json(home).get("frozen2", {}).get("status") == "unresponsive",
                 what="list to call the frozen supervisor unresponsive")
        out = run_cli(home, "list")
        assert "unresponsive" in out.stdout and "1 need attention" in out.stdout, out.stdout
        status = run_cli(home, "status", "-i", "frozen2")
        assert json.loads(status.stdout)["state"] == "unresponsive"
        assert json.loads(status.stdout)["needs_attention"] is True
        run_cli(home, "list")  # said once per silence, however often the trader looks
        kinds = [e["kind"] for e in read_events(paths.events)[0]]
        assert kinds.count("unresponsive") == 1, kinds
        out = run_cli(home, "stop", "-i", "frozen2")
        assert out.returncode == 0, out.stdout + out.stderr
    finally:
        try:
            os.kill(supervisor, signal.SIGCONT)
        except ProcessLookupError:
            pass
    # the bot's SIGTERM handler ran (it cancels its orders there) instead of an immediate SIGKILL
    assert paths.stop_reason.read_text().strip() == "20 orders cancelled"
    assert list_json(home, "--all")["frozen2"]["status"] == "stopped"
