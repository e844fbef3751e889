"""Issue 12, goals 1 and 2: a supervisor runs 200 times over, so it must stay lean and quiet.

Behaviour only (the figures are bench/bench_supervisor.py's): what a running supervisor has
imported, and that an idle one checks in without rewriting its record.
"""
from __future__ import annotations

import os
import signal
import time

from tests.conftest import run_cli, wait_for
from tests.core.util import daemon_log, list_json, registry, start, write_config

HEAVY = ("subprocess", "pathlib", "ctypes", "flask", "ccxt", "numpy")
# What the supervisor's boot paid ~25 ms of CPU for (issue 12, goal 3): `re` (and `enum`, which it
# and `signal` load), json's pure-Python layer and `collections`. core/cjson.py, `_signal` and
# `_collections` stand in; a reload (SIGHUP) may still load them, so the test sends none.
BOOT_HEAVY = ("re", "enum", "json", "collections", "signal")


def loaded_modules(home, iid: str, pid: int) -> set[str]:
    """Ask the supervisor: on SIGUSR1 it logs its sys.modules."""
    before = daemon_log(home, iid).count("loaded modules (")
    os.kill(pid, signal.SIGUSR1)
    wait_for(lambda: daemon_log(home, iid).count("loaded modules (") > before, what="the supervisor's module list")
    line = [ln for ln in daemon_log(home, iid).splitlines() if "loaded modules (" in ln][-1]
    return set(line.split("): ", 1)[1].split())


def test_a_running_supervisor_that_respawned_its_bot_has_no_heavy_import(home):
    path = write_config(home, "lean", "--mode", "crash", "--after", "0.3", "--crash-times", "1", stable_uptime=0)
    assert start(home, path).returncode == 0
    wait_for(lambda: registry(home)["lean"].get("restart_count") == 1 and "bot started" in
             daemon_log(home, "lean").split("restarting in")[-1], what="the respawn after the crash")
    checked = registry(home)["lean"]["checked_at"]
    wait_for(lambda: registry(home)["lean"].get("memory_mb") is not None
             and os.stat(home / "logs" / "lean" / "instance.json").st_mtime > checked,
             what="a health check of the respawned bot")  # it reads bot_status.json and samples the bot
    mods = loaded_modules(home, "lean", registry(home)["lean"]["pid"])
    assert {"core.supervision", "core.spawn", "core.cjson"} <= mods  # its real list, after a spawn and a respawn
    assert not {m for m in mods if m.split(".")[0] in HEAVY}, sorted(mods)
    assert not {m for m in mods if m.split(".")[0] in BOOT_HEAVY}, sorted(mods)
    assert run_cli(home, "stop", "-i", "lean").returncode == 0


def test_an_idle_supervisor_checks_in_without_rewriting_its_record(home):
    """Nothing changed: the record's content stays, its mtime (the check-in) moves, and `list`
    still calls the instance running long after the record's own checked_at went stale."""
    path = write_config(home, "quiet", "--no-beat", "--interval", "100", ready_on="startsecs",
                        health_check_interval=0.2)
    assert start(home, path).returncode == 0
    record = home / "logs" / "quiet" / "instance.json"
    wait_for(lambda: registry(home)["quiet"].get("memory_mb") is not None, what="the first health sample")
    time.sleep(0.5)  # a second sample may still differ from the first (start-up CPU)
    text, touched = record.read_text(), record.stat().st_mtime
    checked = registry(home)["quiet"]["checked_at"]
    wait_for(lambda: time.time() - checked > 4 * 0.2 * 3 and record.stat().st_mtime > touched,
             what="several health checks")
    assert record.read_text() == text  # no rewrite: the same record, byte for byte
    assert list_json(home)["quiet"]["status"] == "running"  # not unresponsive: the mtime is the check-in
    assert "quiet" in run_cli(home, "list").stdout
    assert run_cli(home, "stop", "-i", "quiet").returncode == 0


def test_a_bot_that_says_it_is_ready_needs_no_heartbeat_and_names_its_port(home):
    """The readiness pipe (core/ready_fd.py): READY=1 counts at once, PORT=N is the page's port."""
    path = write_config(home, "told", "--no-beat", "--mode", "notify,bind", ready_on="heartbeat", start_timeout=5)
    out = start(home, path)
    assert out.returncode == 0, out.stdout + out.stderr
    bound = int((home / "logs" / "told" / "web.port").read_text())
    assert f"port={bound}" in out.stdout
    assert "ready (it said so)" in daemon_log(home, "told") and registry(home)["told"]["status"] == "running"
    assert run_cli(home, "stop", "-i", "told").returncode == 0


def test_exit_descriptions_name_signals_as_the_signal_module_does():
    """describe_exit reads _signal's names (no enum): the same words signal.Signals gave, aliases included."""
    from core.supervision import describe_exit

    for num in range(1, 65):
        try:
            expected = f"killed by {signal.Signals(num).name}"
        except ValueError:
            expected = f"killed by signal {num}"
        assert describe_exit(-num) == expected
    assert describe_exit(-200) == "killed by signal 200" and describe_exit(3) == "exited with code 3"
