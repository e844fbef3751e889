"""An instance whose venue is down is up but waiting: the dashboard lists it first, coloured
waiting, with the bot's own reason (issue 14, item 1: needs attention first, last error)."""
from __future__ import annotations

import pytest

from tests.conftest import free_port, kill_home_processes, run_cli, wait_for
from tests.dashboard.conftest import start_dashboard
from tests.exchanges.test_bot_outages_on_backpack import IID, config
from tests.web.paper_bot import terminate

pytestmark = pytest.mark.slow


def test_a_waiting_instance_comes_first_with_its_reason(home):
    dash = None
    try:
        done = run_cli(home, "start", "-c", str(config(home, f"http://127.0.0.1:{free_port()}")), "-d", timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        dash = start_dashboard(home, free_port())
        row = wait_for(lambda: next((r for r in dash.get("/api/fleet").json()["instances"]
                                     if r["state"] == "waiting"), None), 60, "the instance to read as waiting")
        assert row["instance_id"] == IID and row["alive"]
        assert "waiting" in row["attention"]
        assert "exchange not available at start-up" in row["last_error"]
    finally:
        if dash is not None:
            terminate(dash.proc)
        run_cli(home, "stop-all", timeout=120)
        kill_home_processes(home)
