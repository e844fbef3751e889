"""`restart` checks the new config, and the bot's pre-flight, before it stops anything.

A typo in a config being restarted used to stop the bot (orders cancelled) and then exit 2,
leaving it down. Now a bad config leaves the running bot untouched: same supervisor, same bot.
"""
from __future__ import annotations

import json

import psutil
import pytest

from tests.conftest import run_cli
from tests.core.test_preflight import paper_config
from tests.core.util import list_json, start, write_config


def edit(path, section: str, **values) -> None:
    doc = json.loads(path.read_text())
    doc[section].update(values)
    path.write_text(json.dumps(doc))


@pytest.mark.slow
def test_bad_config_or_failed_preflight_leaves_the_running_bot_untouched(home):
    path = paper_config(home, "rs_01")
    assert start(home, path).returncode == 0
    before = list_json(home)["rs_01"]
    assert before["status"] == "running" and before["bot_pid"]

    for section, values, needle in (("strategy_config", {"grid_lower_price": 10_000}, "grid_lower_price"),
                                    ("strategy_config", {"quantity": 0.001}, "minimum")):  # only --check sees it
        good = path.read_text()
        edit(path, section, **values)
        out = run_cli(home, "restart", "-i", "rs_01")
        assert out.returncode == 2, (out.stdout, out.stderr)
        assert needle in out.stderr and "nothing stopped" in out.stderr, out.stderr
        after = list_json(home)["rs_01"]
        assert (after["status"], after["pid"], after["bot_pid"]) == ("running", before["pid"], before["bot_pid"])
        assert psutil.pid_exists(before["bot_pid"])
        path.write_text(good)

    assert run_cli(home, "stop", "-i", "rs_01").returncode == 0


def test_a_conflict_in_the_new_config_leaves_the_running_bot_untouched(home):
    first, second = write_config(home, "rs_a"), write_config(home, "rs_b")
    assert start(home, first).returncode == 0 and start(home, second).returncode == 0
    before = list_json(home)["rs_a"]
    taken = json.loads(second.read_text())["daemon_config"]["web_port"]
    edit(first, "daemon_config", web_port=taken)
    out = run_cli(home, "restart", "-i", "rs_a")
    assert out.returncode == 2 and f"web_port: {taken}" in out.stderr and "nothing stopped" in out.stderr, out.stderr
    after = list_json(home)["rs_a"]
    assert (after["status"], after["pid"], after["bot_pid"]) == ("running", before["pid"], before["bot_pid"])
    assert run_cli(home, "stop-all").returncode == 0
